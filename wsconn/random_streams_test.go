package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// Randomized, seeded streams of client frames against an echo server,
// checked against an oracle written from RFC 6455 (§5.2, §5.4, §5.5,
// §7.1.5, §7.4, §8.1) and the choices docs/closing.md documents where the
// RFC leaves room.

const (
	rsLimit = 100 // MaxMessageSize of the server under test
	rsSeeds = 300
)

// rsFrame is one frame as the client sends it.
type rsFrame struct {
	op      frames.Opcode
	fin     bool
	rsv     byte
	masked  bool
	payload []byte
}

func (f rsFrame) String() string {
	p := f.payload
	more := ""
	if len(p) > 24 {
		p, more = p[:24], "..."
	}
	return fmt.Sprintf("{op=%d fin=%v rsv=%d masked=%v len=%d %x%s}", f.op, f.fin, f.rsv, f.masked, len(f.payload), p, more)
}

func (f rsFrame) encode(r *rand.Rand) []byte {
	h := frames.Header{Op: f.op, Fin: f.fin, Rsv: f.rsv, Masked: f.masked, Length: int64(len(f.payload))}
	if f.masked {
		for i := range h.Mask {
			h.Mask[i] = byte(r.Uint32())
		}
	}
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h)
	p := append([]byte(nil), f.payload...)
	if f.masked {
		frames.Mask(p, h.Mask, 0)
	}
	return append(hb[:n:n], p...)
}

// ---- the oracle ----

type rsEnd int

const (
	rsEndViolation rsEnd = iota // the server fails the connection
	rsEndPeerClose              // a valid CLOSE from the client
	rsEndHalfClose              // the client stops sending without a CLOSE
)

type rsMsg struct {
	op      frames.Opcode
	payload []byte
}

// rsStep is what the server owes for one frame before the end.
type rsStep struct {
	msg  *rsMsg // a message this frame completes
	ping []byte // a PING to answer
	isPi bool   // ping != nil is ambiguous for empty payloads
}

type rsExpect struct {
	steps   []rsStep // one per frame before endAt
	endAt   int      // index of the frame that ends the stream (len(frames) for a half-close)
	end     rsEnd
	code    frames.CloseCode // the CLOSE the server sends (1005: one without payload)
	reasons []string         // acceptable reasons
}

// Reasons documented in docs/closing.md, "Protocol violations".
const (
	rReservedOp   = "reserved opcode"
	rReservedBits = "reserved bits set without a negotiated extension"
	rFragControl  = "fragmented control frame"
	rControlLong  = "control frame payload over 125 bytes"
	rUnmasked     = "client frame not masked"
	rNoStart      = "continuation frame without a message to continue"
	rNewInside    = "new data frame inside a fragmented message"
	rCloseOneByte = "close payload of one byte"
	rCloseCode    = "invalid close code"
	rBadUTF8      = "invalid UTF-8 in text message"
	rBadReason    = "close reason is not valid UTF-8"
	rTooLarge     = "message too large"
)

// rsCodeValid: may code appear in a CLOSE on the wire? RFC 6455 §7.4.1
// defines 1000-1003 and 1007-1011 (1004 reserved; 1005, 1006, 1015 never
// on the wire), §7.4.2 reserves the rest of 0-2999 and gives 3000-4999 to
// registered and private use. 1012-1014 are registered with IANA since,
// and docs/closing.md accepts them.
func rsCodeValid(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011:
		return true
	case c >= 1012 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// rsUTF8Viable reports whether b is valid UTF-8 or the start of some valid
// UTF-8 text: RFC 6455 §8.1 fails a connection as soon as the bytes
// cannot be valid, which docs/security.md promises ("checked as it
// arrives").
func rsUTF8Viable(b []byte) bool {
	cut := len(b)
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			break
		}
		if c >= 0xC0 {
			if n := rsSeqLen(c); n > k {
				cut = len(b) - k
			}
			break
		}
	}
	if !utf8.Valid(b[:cut]) {
		return false
	}
	t := b[cut:]
	if len(t) == 0 {
		return true
	}
	if len(t) >= 2 {
		lo, hi := byte(0x80), byte(0xBF)
		switch t[0] {
		case 0xE0:
			lo = 0xA0
		case 0xED:
			hi = 0x9F
		case 0xF0:
			lo = 0x90
		case 0xF4:
			hi = 0x8F
		}
		if t[1] < lo || t[1] > hi {
			return false
		}
	}
	if len(t) >= 3 && (t[2] < 0x80 || t[2] > 0xBF) {
		return false
	}
	return true
}

// rsSeqLen is the length of the sequence a lead byte starts, 0 for bytes
// that start none (RFC 3629 §4).
func rsSeqLen(c byte) int {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2
	case c >= 0xE0 && c <= 0xEF:
		return 3
	case c >= 0xF0 && c <= 0xF4:
		return 4
	}
	return 0
}

func rsReserved(op frames.Opcode) bool {
	return (op >= 3 && op <= 7) || op >= 0xB
}

func rsControl(op frames.Opcode) bool { return op >= 8 }

// rsOracle computes what a conforming server, making colibri's documented
// choices, answers to fs.
func rsOracle(fs []rsFrame, limit int) rsExpect {
	var e rsExpect
	open := false
	var kind frames.Opcode
	var buf []byte
	fail := func(i int, code frames.CloseCode, reasons ...string) rsExpect {
		e.endAt, e.end, e.code, e.reasons = i, rsEndViolation, code, reasons
		return e
	}
	for i, f := range fs {
		// Frame-level checks (§5.2, §5.5, §5.3): all are 1002; the RFC
		// orders none of them, so any of the frame's faults may be named.
		var header []string
		if rsReserved(f.op) {
			header = append(header, rReservedOp)
		} else if rsControl(f.op) {
			if f.rsv != 0 {
				header = append(header, rReservedBits)
			}
			if !f.fin {
				header = append(header, rFragControl)
			}
			if len(f.payload) > 125 {
				header = append(header, rControlLong)
			}
		} else if f.rsv != 0 {
			header = append(header, rReservedBits)
		}
		if !f.masked {
			header = append(header, rUnmasked)
		}
		if len(header) > 0 {
			return fail(i, frames.CloseProtocolError, header...)
		}
		var st rsStep
		switch f.op {
		case frames.OpPing:
			st.ping, st.isPi = f.payload, true
		case frames.OpPong:
		case frames.OpClose:
			p := f.payload
			switch {
			case len(p) == 0:
				e.endAt, e.end, e.code = i, rsEndPeerClose, frames.CloseNoStatus
				e.reasons = []string{""}
				return e
			case len(p) == 1:
				return fail(i, frames.CloseProtocolError, rCloseOneByte)
			case !rsCodeValid(uint16(p[0])<<8 | uint16(p[1])):
				return fail(i, frames.CloseProtocolError, rCloseCode)
			case !utf8.Valid(p[2:]):
				return fail(i, frames.CloseInvalidPayload, rBadReason)
			}
			e.endAt, e.end = i, rsEndPeerClose
			e.code = frames.CloseCode(uint16(p[0])<<8 | uint16(p[1]))
			e.reasons = []string{string(p[2:])}
			return e
		default: // data
			// §5.4: sequencing first; a frame that cannot belong where it
			// is has no message to be measured against.
			if f.op == frames.OpContinuation && !open {
				return fail(i, frames.CloseProtocolError, rNoStart)
			}
			if f.op != frames.OpContinuation && open {
				return fail(i, frames.CloseProtocolError, rNewInside)
			}
			if f.op != frames.OpContinuation {
				kind, buf, open = f.op, nil, true
			}
			// The size is known from the header, before the payload.
			if len(buf)+len(f.payload) > limit {
				return fail(i, frames.CloseMessageTooBig, rTooLarge)
			}
			buf = append(buf, f.payload...)
			if kind == frames.OpText && !rsUTF8Viable(buf) {
				return fail(i, frames.CloseInvalidPayload, rBadUTF8)
			}
			if f.fin {
				if kind == frames.OpText && !utf8.Valid(buf) {
					return fail(i, frames.CloseInvalidPayload, rBadUTF8)
				}
				st.msg = &rsMsg{op: kind, payload: buf}
				open, buf = false, nil
			}
		}
		e.steps = append(e.steps, st)
	}
	// Documented: a peer that stops sending without a CLOSE gets 1000.
	e.endAt, e.end, e.code, e.reasons = len(fs), rsEndHalfClose, frames.CloseNormal, []string{""}
	return e
}

// ---- the generator ----

var rsRunes = []rune{'a', 'b', 'z', ' ', '0', 0x7F, 0x80, 'é', 0x7FF, 0x800, '€', 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, '😀', 0x10000, 0x10FFFF}

// Byte sequences that are not UTF-8 wherever they stand.
var rsBadUTF8 = [][]byte{
	{0xFF}, {0xFE}, {0x80}, {0xBF}, {0xC0, 0x80}, {0xC1, 0xBF}, {0xE0, 0x80, 0x80}, {0xE0, 0x9F, 0xBF},
	{0xED, 0xA0, 0x80}, {0xED, 0xBF, 0xBF}, {0xF0, 0x80, 0x80, 0x80}, {0xF4, 0x90, 0x80, 0x80},
	{0xF5, 0x80, 0x80, 0x80}, {0xF8, 0x88, 0x80, 0x80, 0x80}, {0xE2, 0x82, 'x'}, {0xF0, 0x9F, 0x98, 'x'},
	{0xC3, 0xC3},
}

type rsGen struct {
	r  *rand.Rand
	fs []rsFrame
}

func (g *rsGen) chance(p float64) bool { return g.r.Float64() < p }

func (g *rsGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g *rsGen) text(n int) []byte {
	var b []byte
	for len(b) < n {
		b = utf8.AppendRune(b, rsRunes[g.r.IntN(len(rsRunes))])
	}
	return b
}

// size is a message size, mostly small, sometimes around the limit.
func (g *rsGen) size() int {
	switch g.r.IntN(10) {
	case 0:
		return rsLimit - 3 + g.r.IntN(7)
	case 1:
		return 0
	}
	return g.r.IntN(40)
}

func (g *rsGen) add(f rsFrame) { g.fs = append(g.fs, f) }

func (g *rsGen) control() {
	n := g.r.IntN(20)
	if g.chance(0.1) {
		n = 120 + g.r.IntN(6)
	}
	op := frames.OpPing
	if g.chance(0.3) {
		op = frames.OpPong
	}
	g.add(rsFrame{op: op, fin: true, masked: true, payload: g.bytes(n)})
}

// message adds a text or binary message, cut into fragments at random
// bytes (so code points are split across frames), with control frames
// between them, and now and then broken UTF-8.
func (g *rsGen) message() {
	op := frames.OpText
	if g.chance(0.4) {
		op = frames.OpBinary
	}
	var p []byte
	if op == frames.OpText {
		p = g.text(g.size())
		if g.chance(0.08) {
			bad := rsBadUTF8[g.r.IntN(len(rsBadUTF8))]
			at := g.r.IntN(len(p) + 1)
			p = slices.Insert(slices.Clone(p), at, bad...)
		} else if g.chance(0.04) && len(p) > 0 {
			// Cut inside the last code point: the message ends mid-sequence.
			_, n := utf8.DecodeLastRune(p)
			if n > 1 {
				p = p[:len(p)-1-g.r.IntN(n-1)]
			}
		}
	} else {
		p = g.bytes(g.size())
	}
	parts := 1
	if g.chance(0.5) {
		parts += g.r.IntN(4)
	}
	cuts := []int{0, len(p)}
	for range parts - 1 {
		cuts = append(cuts, g.r.IntN(len(p)+1))
	}
	slices.Sort(cuts)
	for i := 0; i+1 < len(cuts); i++ {
		fop := op
		if i > 0 {
			fop = frames.OpContinuation
		}
		g.add(rsFrame{op: fop, fin: i+2 == len(cuts), masked: true, payload: p[cuts[i]:cuts[i+1]]})
		if i+2 < len(cuts) && g.chance(0.3) {
			g.control()
		}
	}
}

// closeFrame adds a CLOSE, valid or not.
func (g *rsGen) closeFrame() {
	valid := []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4321, 4999}
	invalid := []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	var p []byte
	switch g.r.IntN(10) {
	case 0:
		p = nil
	case 1:
		p = []byte{byte(g.r.Uint32())}
	case 2:
		c := invalid[g.r.IntN(len(invalid))]
		p = append([]byte{byte(c >> 8), byte(c)}, g.text(g.r.IntN(10))...)
	default:
		c := valid[g.r.IntN(len(valid))]
		p = []byte{byte(c >> 8), byte(c)}
		switch g.r.IntN(6) {
		case 0:
			p = append(p, rsBadUTF8[g.r.IntN(len(rsBadUTF8))]...)
		case 1:
			r := g.text(g.r.IntN(123))
			for len(r) > 123 {
				_, n := utf8.DecodeLastRune(r)
				r = r[:len(r)-n]
			}
			p = append(p, r...)
		case 2:
			p = append(p, g.text(124)...) // over 125 bytes in all
		default:
			p = append(p, g.text(g.r.IntN(12))...)
		}
	}
	g.add(rsFrame{op: frames.OpClose, fin: true, masked: true, payload: p})
}

// mutate breaks the frame at i in one of the ways the RFC forbids.
func (g *rsGen) mutate(i int) {
	f := &g.fs[i]
	switch g.r.IntN(7) {
	case 0:
		f.masked = false
	case 1:
		f.rsv = byte(1 + g.r.IntN(7))
	case 2:
		ops := []frames.Opcode{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}
		f.op = ops[g.r.IntN(len(ops))]
	case 3:
		if rsControl(f.op) {
			f.fin = false
		} else {
			f.op = frames.OpContinuation // a start without its message
		}
	case 4:
		if rsControl(f.op) {
			f.payload = g.bytes(126 + g.r.IntN(10))
		} else if f.op == frames.OpContinuation {
			f.op = frames.Opcode(1 + g.r.IntN(2)) // a new message inside one
		} else {
			f.fin = !f.fin
		}
	case 5:
		f.fin = !f.fin
	case 6:
		// A fragmented PING, PONG or CLOSE.
		ops := []frames.Opcode{frames.OpPing, frames.OpPong, frames.OpClose}
		g.fs = slices.Insert(g.fs, i, rsFrame{op: ops[g.r.IntN(3)], fin: false, masked: true, payload: g.bytes(g.r.IntN(5))})
	}
}

func rsGenerate(r *rand.Rand) []rsFrame {
	g := &rsGen{r: r}
	for range r.IntN(7) {
		if g.chance(0.25) {
			g.control()
		} else {
			g.message()
		}
	}
	if g.chance(0.85) {
		g.closeFrame()
	}
	// Frames after the end, which the server must ignore.
	for range r.IntN(3) {
		g.message()
	}
	if len(g.fs) > 0 && g.chance(0.35) {
		g.mutate(r.IntN(len(g.fs)))
	}
	return g.fs
}

// ---- the client side ----

type rsEvent struct {
	op      frames.Opcode
	payload []byte
}

// rsRead returns the next message, PONG or CLOSE from the server, with
// io.EOF once the server closed the connection.
func rsRead(c *rawClient) (rsEvent, error) {
	var msg *rsEvent
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		hb := make([]byte, 2, frames.MaxHeaderSize)
		if _, err := io.ReadFull(c.br, hb); err != nil {
			if errors.Is(err, io.EOF) && msg == nil {
				return rsEvent{}, io.EOF
			}
			return rsEvent{}, fmt.Errorf("read header: %w", err)
		}
		hb = hb[:frames.HeaderSize(hb[0], hb[1])]
		if _, err := io.ReadFull(c.br, hb[2:]); err != nil {
			return rsEvent{}, fmt.Errorf("read header: %w", err)
		}
		h, err := frames.ParseHeader(hb)
		if err != nil {
			return rsEvent{}, err
		}
		if err := h.Check(false, 0); err != nil {
			return rsEvent{}, fmt.Errorf("server frame %+v: %w", h, err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return rsEvent{}, fmt.Errorf("read payload: %w", err)
		}
		switch {
		case h.Op.IsControl():
			if h.Op == frames.OpPing {
				return rsEvent{}, fmt.Errorf("unexpected PING from the server")
			}
			return rsEvent{op: h.Op, payload: p}, nil // between fragments too
		case h.Op == frames.OpContinuation:
			if msg == nil {
				return rsEvent{}, fmt.Errorf("server sent a continuation without a message")
			}
			msg.payload = append(msg.payload, p...)
		default:
			if msg != nil {
				return rsEvent{}, fmt.Errorf("server started a message inside another")
			}
			msg = &rsEvent{op: h.Op, payload: p}
		}
		if h.Fin && msg != nil {
			return *msg, nil
		}
	}
}

func rsDescribe(fs []rsFrame, e rsExpect) string {
	var b bytes.Buffer
	for i, f := range fs {
		mark := " "
		if i == e.endAt {
			mark = ">"
		}
		fmt.Fprintf(&b, "\n  %s%2d %v", mark, i, f)
	}
	fmt.Fprintf(&b, "\n  expect end=%d at %d code=%d reasons=%q", e.end, e.endAt, e.code, e.reasons)
	return b.String()
}

// rsRun sends fs to the server at url and checks the answer against the
// oracle. sync waits for each answer before the next frame; otherwise the
// rest of the stream goes out at once, in one write or in small pieces.
func rsRun(t *testing.T, url string, r *rand.Rand, fs []rsFrame, sync bool) {
	e := rsOracle(fs, rsLimit)
	sent := fs
	if e.end == rsEndPeerClose {
		// Nothing after a CLOSE (§5.5.1): the server may close TCP with
		// bytes unread, and a reset could destroy its CLOSE in flight.
		sent = fs[:e.endAt+1]
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s (sync=%v)%s", fmt.Sprintf(format, args...), sync, rsDescribe(fs, e))
	}
	c := dialRaw(t, url)
	defer c.nc.Close()
	var got []rsEvent
	next := func() rsEvent {
		t.Helper()
		ev, err := rsRead(c)
		if err != nil {
			fail("reading: %v", err)
		}
		return ev
	}
	if sync {
		for i, st := range e.steps {
			c.write(fs[i].encode(r))
			switch {
			case st.msg != nil:
				ev := next()
				if ev.op != st.msg.op || !bytes.Equal(ev.payload, st.msg.payload) {
					fail("frame %d: got op %d %x, want the echo op %d %x", i, ev.op, ev.payload, st.msg.op, st.msg.payload)
				}
			case st.isPi:
				ev := next()
				if ev.op != frames.OpPong || !bytes.Equal(ev.payload, st.ping) {
					fail("frame %d: got op %d %x, want PONG %x", i, ev.op, ev.payload, st.ping)
				}
			}
		}
		sent = sent[len(e.steps):]
	}
	var out []byte
	for _, f := range sent {
		out = append(out, f.encode(r)...)
	}
	if r.IntN(3) == 0 {
		// In small pieces: headers and code points cut across reads.
		for len(out) > 0 {
			n := min(len(out), 1+r.IntN(16))
			c.write(out[:n])
			out = out[n:]
		}
	} else if len(out) > 0 {
		c.write(out)
	}
	tcp := c.nc.(*net.TCPConn)
	if e.end == rsEndHalfClose {
		_ = tcp.CloseWrite()
	}
	// Everything up to the server's CLOSE.
	var closeEv *rsEvent
	for closeEv == nil {
		ev := next()
		if ev.op == frames.OpClose {
			closeEv = &ev
			break
		}
		got = append(got, ev)
	}
	if e.end == rsEndViolation {
		_ = tcp.CloseWrite()
	}
	// Nothing after the CLOSE, then the end of the transport.
	if ev, err := rsRead(c); err != io.EOF {
		fail("after the CLOSE: got %+v, %v; want the server to close the connection", ev, err)
	}

	// The CLOSE.
	p := closeEv.payload
	if e.code == frames.CloseNoStatus {
		if len(p) != 0 {
			fail("server CLOSE %x, want an empty one", p)
		}
	} else {
		code, reason, err := frames.ParseClose(p)
		if err != nil {
			fail("server CLOSE %x: %v", p, err)
		}
		if code != e.code || !slices.Contains(e.reasons, reason) {
			fail("server CLOSE %d %q, want %d %q", code, reason, e.code, e.reasons)
		}
	}

	// Echoes and PONGs. In sync mode all were checked already; in one
	// write, CLOSEs for violations and peer CLOSEs go ahead of data, so
	// the echoes are a prefix of the messages, in order; PONGs are a
	// subsequence of the PINGs (a newer PING may replace an unanswered
	// one, §5.5.3), and the last PING before the end is answered, as its
	// PONG goes out before the CLOSE.
	if sync {
		if len(got) != 0 {
			fail("unexpected frames before the CLOSE: %+v", got)
		}
		return
	}
	var wantMsgs []rsMsg
	var pings [][]byte
	for _, st := range e.steps {
		if st.msg != nil {
			wantMsgs = append(wantMsgs, *st.msg)
		}
		if st.isPi {
			pings = append(pings, st.ping)
		}
	}
	var gotMsgs []rsEvent
	var pongs [][]byte
	for _, ev := range got {
		if ev.op == frames.OpPong {
			pongs = append(pongs, ev.payload)
		} else {
			gotMsgs = append(gotMsgs, ev)
		}
	}
	if len(gotMsgs) > len(wantMsgs) {
		fail("%d messages echoed, want at most %d: %+v", len(gotMsgs), len(wantMsgs), gotMsgs)
	}
	for i, m := range gotMsgs {
		if m.op != wantMsgs[i].op || !bytes.Equal(m.payload, wantMsgs[i].payload) {
			fail("echo %d: op %d %x, want op %d %x", i, m.op, m.payload, wantMsgs[i].op, wantMsgs[i].payload)
		}
	}
	j := 0
	for _, pg := range pongs {
		for j < len(pings) && !bytes.Equal(pings[j], pg) {
			j++
		}
		if j == len(pings) {
			fail("PONG %x answers no PING sent before the end (pongs %x, pings %x)", pg, pongs, pings)
		}
		j++
	}
	if len(pings) > 0 && (len(pongs) == 0 || !bytes.Equal(pongs[len(pongs)-1], pings[len(pings)-1])) {
		fail("last PONG of %x, want the last PING's %x", pongs, pings[len(pings)-1])
	}
}

func rsConfig() *wsconn.Config {
	return &wsconn.Config{MaxMessageSize: rsLimit, PingInterval: -1, CloseTimeout: 2 * time.Second}
}

func TestRandomStreams(t *testing.T) {
	url, _ := testServer(t, rsConfig(), echo)
	for seed := range uint64(rsSeeds) {
		r := rand.New(rand.NewPCG(seed, 0xC011B121))
		fs := rsGenerate(r)
		sync := r.IntN(2) == 0
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rsRun(t, url, r, fs, sync)
		})
	}
}

// The oracle's own UTF-8 prefix rule, against the standard library: a
// prefix is viable exactly when some completion makes it valid.
func TestRandomStreamsOracleUTF8(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tails := [][]byte{nil, {0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0xA0, 0x80}, {0x90, 0x80, 0x80}, {0x8F, 0xBF, 0xBF}}
	for range 20000 {
		b := make([]byte, r.IntN(5))
		for i := range b {
			b[i] = byte(r.Uint32())
			if r.IntN(2) == 0 {
				b[i] = 'a'
			}
		}
		want := false
		for _, tl := range tails {
			if utf8.Valid(append(slices.Clone(b), tl...)) {
				want = true
			}
		}
		if got := rsUTF8Viable(b); got != want {
			t.Fatalf("rsUTF8Viable(%x) = %v, want %v", b, got, want)
		}
	}
}

// A protocol violation in data that the background reader kept while a
// loop body was busy, followed by the peer's CLOSE, must still fail the
// connection with the violation's code (RFC 6455 §5.4, §7.1.7, §8.1;
// docs/closing.md: "colibri checks every frame the peer sends"). colibri
// takes the CLOSE first, and the violation found afterwards is dropped:
// it echoes the peer's 1000 and the handler sees a clean close.
func TestRandomStreamsBusyBodyViolationBeforeClose(t *testing.T) {
	errc := make(chan error, 1)
	busy := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			time.Sleep(150 * time.Millisecond) // long enough for the background reader
			_ = out.WriteMessage(ctx, m)
		}
		errc <- in.Err()
		return in.Err()
	}
	url, _ := testServer(t, rsConfig(), busy)
	for _, tc := range []struct {
		name string
		bad  rsFrame
		code frames.CloseCode
	}{
		{"invalid utf-8", rsFrame{op: frames.OpText, fin: true, masked: true, payload: []byte{0xFF}}, frames.CloseInvalidPayload},
		{"message too large", rsFrame{op: frames.OpBinary, fin: true, masked: true, payload: make([]byte, rsLimit+1)}, frames.CloseMessageTooBig},
		{"continuation without start", rsFrame{op: frames.OpContinuation, fin: true, masked: true, payload: []byte("x")}, frames.CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("a"))
			time.Sleep(50 * time.Millisecond) // the body is busy with "a"
			c.write(tc.bad.encode(r))
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, "bye"))
			for {
				ev, err := rsRead(c)
				if err != nil {
					t.Fatalf("no CLOSE from the server: %v", err)
				}
				if ev.op != frames.OpClose {
					continue
				}
				code, reason, _ := frames.ParseClose(ev.payload)
				if code != tc.code {
					t.Errorf("server CLOSE %d %q, want %d", code, reason, tc.code)
				}
				break
			}
			if err := <-errc; wsconn.CloseStatus(err) != tc.code {
				t.Errorf("in.Err() = %v, want close code %d", err, tc.code)
			}
		})
	}
}

// The other side of TestRandomStreamsBusyBodyViolationBeforeClose: valid
// data kept ahead of the peer's CLOSE while the body is busy (a text
// message whose code point is split across fragments, an empty final
// fragment, a binary message) is judged valid, every message reaches the
// loop, and the peer's own code is echoed.
func TestRandomStreamsBusyBodyValidDataBeforeClose(t *testing.T) {
	got := make(chan []string, 1)
	busy := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		var texts []string
		for m := range in.Messages(0) {
			texts = append(texts, string(m.Payload))
			time.Sleep(150 * time.Millisecond) // long enough for the background reader
		}
		got <- texts
		return in.Err()
	}
	url, _ := testServer(t, rsConfig(), busy)
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("a"))
	time.Sleep(50 * time.Millisecond) // the body is busy with "a"
	euro := []byte("€")
	c.frame(frames.OpText, false, euro[:1])
	c.frame(frames.OpContinuation, false, euro[1:])
	c.frame(frames.OpContinuation, true, nil)
	c.frame(frames.OpBinary, true, []byte{0xFF, 0xFE})
	c.frame(frames.OpClose, true, closePayload(4001, "bye"))
	if code := c.expectClose(4001); code != "bye" {
		t.Errorf("server CLOSE reason %q, want the peer's", code)
	}
	texts := waitFor(t, got, "the loop")
	if want := []string{"a", "€", "\xff\xfe"}; !slices.Equal(texts, want) {
		t.Errorf("the loop got %q, want %q", texts, want)
	}
}

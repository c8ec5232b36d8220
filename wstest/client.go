package wstest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// maxReadFrame is the largest frame payload a Client reads; a larger
// announced length fails the test rather than the allocation.
const maxReadFrame = 1 << 30

// Client is a WebSocket client made for tests: it speaks the protocol one
// frame at a time, under the test's control, and fails the test with a
// clear message when the server does not do what the test expects.
//
// Send methods write frames: well-formed ones (SendText, SendBinary,
// SendClose), any frame at all, masked as RFC 6455 §5.3 requires
// (SendFrame: reserved opcodes, RSV bits, oversized or fragmented control
// frames, invalid UTF-8), a header exactly as given (SendHeader: unmasked,
// lying about its length) and raw bytes (SendRaw).
//
// Expect methods read frames until they find what they expect, within
// Timeout, and fail the test otherwise. On the way they answer the
// server's PINGs with PONGs (unless IgnorePings is set), skip PONGs,
// reassemble fragmented messages and check that the server keeps to the
// protocol: unmasked frames, no reserved bits or opcodes, valid UTF-8.
// ReadFrame returns the next frame as it came, with no checks and no
// answers; do not mix it with Expect methods inside one fragmented message.
//
// A Client has no goroutines of its own: nothing happens between calls, so
// a PING from the server is answered only while an Expect method reads.
// Its methods must be called from the test's goroutine, since they fail
// the test with Fatalf. The test's cleanup closes the transport.
type Client struct {
	// Timeout bounds each Send and Expect call and ReadFrame. Default
	// DefaultTimeout (5 s).
	Timeout time.Duration
	// IgnorePings stops Expect methods from answering PINGs; they still
	// skip them. Set it to test what the server does about a silent peer.
	// Default false: every PING an Expect method reads is answered.
	IgnorePings bool

	tb          testing.TB
	conn        net.Conn
	r           *bufio.Reader
	resp        *http.Response
	subprotocol string
	asm         messages.Assembler
	closeSent   bool
	closeRead   bool // the server's CLOSE was read
	gone        bool // the transport is closed
}

func newClient(tb testing.TB, u wsconn.Upgraded, resp *http.Response) *Client {
	c := &Client{
		tb:          tb,
		conn:        u.Conn,
		resp:        resp,
		subprotocol: u.Subprotocol,
		r:           bufio.NewReader(io.MultiReader(bytes.NewReader(u.Buffered), u.Conn)),
	}
	tb.Cleanup(c.CloseNow)
	return c
}

// Response returns the server's 101 response to the handshake.
func (c *Client) Response() *http.Response { return c.resp }

// Subprotocol returns the subprotocol the server chose, or "".
func (c *Client) Subprotocol() string { return c.subprotocol }

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// WaitServerReading blocks until the server has read everything the
// client sent and is waiting for more: a goroutine is blocked reading the
// server's end of the connection. Call it before Clock.Advance in
// keep-alive and idle-timeout tests. wsconn runs its pong and idle
// timeouts only while it is waiting for the peer, since bytes that nobody reads prove nothing, and goroutines
// may not have got there yet when a fake clock jumps; after
// WaitServerReading they have. Right after Dial it also means the server's
// connection is running, its keep-alive timer armed.
//
// It needs a server from NewMemoryServer, whose connections it can see
// into, and fails the test otherwise, or if the server is still busy after
// Timeout.
func (c *Client) WaitServerReading() {
	c.tb.Helper()
	mc, ok := c.conn.(*memConn)
	if !ok {
		c.tb.Fatalf("wstest: WaitServerReading needs a server from NewMemoryServer")
	}
	timeout := time.NewTimer(c.timeout())
	defer timeout.Stop()
	for {
		idle, changed := mc.out.idleReader()
		if idle {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			c.tb.Fatalf("wstest: the server was not waiting to read within %v", c.timeout())
		}
	}
}

// ---- sending ----

// SendText sends s as one text frame.
func (c *Client) SendText(s string) {
	c.tb.Helper()
	c.send("text", frames.Text([]byte(s)))
}

// SendBinary sends p as one binary frame.
func (c *Client) SendBinary(p []byte) {
	c.tb.Helper()
	c.send("binary", frames.Binary(p))
}

// SendFrame sends f masked with a fresh random key and with the correct
// length, whatever its opcode, FIN and RSV bits and payload: a reserved
// opcode, a PING with 200 bytes, a text frame of invalid UTF-8 or a
// continuation out of place go out as given.
func (c *Client) SendFrame(f frames.Frame) {
	c.tb.Helper()
	c.send(f.Op.String(), f)
}

func (c *Client) send(what string, f frames.Frame) {
	c.tb.Helper()
	c.write(what+" frame", maskedHeader(f.Op, f.Fin, f.Rsv, f.Payload), f.Payload)
	if f.Op == frames.OpClose {
		c.closeSent = true
	}
}

// SendHeader sends a frame header exactly as h says, followed by payload,
// which is masked with h.Mask when h.Masked is set. h.Length is written as
// given, so a frame may announce more or fewer bytes than payload holds;
// h.Length must not be negative. Use SendRaw for encodings PutHeader does
// not produce, such as a length in more bytes than needed.
func (c *Client) SendHeader(h frames.Header, payload []byte) {
	c.tb.Helper()
	c.write("frame header", h, payload)
	if h.Op == frames.OpClose {
		c.closeSent = true
	}
}

func (c *Client) write(what string, h frames.Header, payload []byte) {
	c.tb.Helper()
	c.writeBytes(what, encode(h, payload))
}

// maskedHeader returns the header of a client frame with a fresh key.
func maskedHeader(op frames.Opcode, fin bool, rsv byte, payload []byte) frames.Header {
	h := frames.Header{Op: op, Fin: fin, Rsv: rsv, Masked: true, Length: int64(len(payload))}
	_, _ = rand.Read(h.Mask[:])
	return h
}

// encode returns h followed by payload, masked with h.Mask if h.Masked.
func encode(h frames.Header, payload []byte) []byte {
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h)
	b := make([]byte, n+len(payload))
	copy(b, hb[:n])
	copy(b[n:], payload)
	if h.Masked {
		frames.Mask(b[n:], h.Mask, 0)
	}
	return b
}

// SendRaw writes b to the connection as it is.
func (c *Client) SendRaw(b []byte) {
	c.tb.Helper()
	c.writeBytes("raw bytes", b)
}

func (c *Client) writeBytes(what string, b []byte) {
	c.tb.Helper()
	if c.gone {
		c.tb.Fatalf("wstest: send %s: the client is closed", what)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	if _, err := c.conn.Write(b); err != nil {
		c.tb.Fatalf("wstest: send %s: %v", what, err)
	}
}

// SendClose sends a CLOSE frame with code and reason, unchecked, so that
// codes that may not be sent (1005, 999) and reasons that are too long or
// not UTF-8 can be tried. Follow it with ExpectClose to see the answer.
func (c *Client) SendClose(code frames.CloseCode, reason string) {
	c.tb.Helper()
	p := append([]byte{byte(code >> 8), byte(code)}, reason...)
	c.send("close", frames.Frame{Op: frames.OpClose, Fin: true, Payload: p})
}

// ---- reading ----

// ReadFrame returns the next frame from the server as it came: its header
// and its payload, unmasked if it was masked. Control frames are returned
// too and nothing is answered or checked. The test fails if no frame
// arrives within Timeout or the transport ends.
func (c *Client) ReadFrame() (frames.Header, []byte) {
	c.tb.Helper()
	c.setReadDeadline()
	h, p, err := c.readFrame()
	if err != nil {
		c.tb.Fatalf("wstest: read frame: %v", c.readErr(err))
	}
	return h, p
}

func (c *Client) setReadDeadline() {
	_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout()))
}

func (c *Client) readFrame() (frames.Header, []byte, error) {
	if c.gone {
		return frames.Header{}, nil, errors.New("the client is closed")
	}
	var hb [frames.MaxHeaderSize]byte
	if _, err := io.ReadFull(c.r, hb[:2]); err != nil {
		return frames.Header{}, nil, err
	}
	n := frames.HeaderSize(hb[0], hb[1])
	if _, err := io.ReadFull(c.r, hb[2:n]); err != nil {
		return frames.Header{}, nil, unexpected(err)
	}
	h, err := frames.ParseHeader(hb[:n])
	if err != nil {
		return h, nil, fmt.Errorf("server sent a bad frame header % x: %w", hb[:n], err)
	}
	if h.Length > maxReadFrame {
		return h, nil, fmt.Errorf("server announced a %v frame of %d bytes, more than the test client reads", h.Op, h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return h, nil, unexpected(err)
	}
	if h.Masked {
		frames.Mask(p, h.Mask, 0)
	}
	if h.Op == frames.OpClose {
		c.closeRead = true
	}
	return h, p, nil
}

// unexpected turns an EOF inside a frame into ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readErr explains a failed read.
func (c *Client) readErr(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("nothing arrived within %v", c.timeout())
	case errors.Is(err, io.EOF):
		return errors.New("the server closed the connection without a CLOSE frame")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the server closed the connection in the middle of a frame")
	}
	return err
}

// event is what the Expect methods read next: a whole data message or a
// control frame.
type event struct {
	msg     messages.Message
	control frames.Header
	payload []byte // of the control frame
}

// next reads frames until a whole message or a control frame other than
// an answered PING, checking the server's frames on the way. want says
// what the caller expects, for failure messages.
func (c *Client) next(want string, answerPings bool) event {
	c.tb.Helper()
	for {
		h, p, err := c.readFrame()
		if err != nil {
			c.tb.Fatalf("wstest: want %s: %v", want, c.readErr(err))
		}
		if err := h.Check(false, 0); err != nil {
			c.tb.Fatalf("wstest: want %s: server broke the protocol: %v (header %+v)", want, err, h)
		}
		if h.Op.IsControl() {
			if h.Op == frames.OpPing && answerPings && !c.IgnorePings {
				c.send("pong", frames.Pong(p))
				continue
			}
			return event{control: h, payload: p}
		}
		m, done, err := c.asm.Push(frames.Frame{Op: h.Op, Fin: h.Fin, Payload: p})
		if err != nil {
			c.tb.Fatalf("wstest: want %s: server sent an invalid message: %v", want, err)
		}
		if done {
			return event{msg: m.Clone()}
		}
	}
}

// nextMessage returns the next whole message, skipping PONGs.
func (c *Client) nextMessage(want string) messages.Message {
	c.tb.Helper()
	c.setReadDeadline()
	for {
		e := c.next(want, true)
		switch e.control.Op {
		case frames.OpPong, frames.OpPing:
			continue
		case frames.OpClose:
			c.tb.Fatalf("wstest: want %s, got %s", want, describeClose(e.payload))
		}
		return e.msg
	}
}

// nextControl returns the next event other than a PING, skipping PONGs
// too unless keepPongs is set.
func (c *Client) nextControl(want string, keepPongs bool) event {
	c.tb.Helper()
	for {
		e := c.next(want, true)
		switch {
		case e.control.Op == frames.OpPing:
		case e.control.Op == frames.OpPong && !keepPongs:
		default:
			return e
		}
	}
}

// ExpectText reads the next message and fails the test unless it is a
// text message equal to want.
func (c *Client) ExpectText(want string) {
	c.tb.Helper()
	w := "text " + quote(want)
	m := c.nextMessage(w)
	if m.Kind != messages.KindText || string(m.Payload) != want {
		c.tb.Fatalf("wstest: want %s, got %s%s", w, describe(m), difference(m.Payload, []byte(want), m.Kind == messages.KindText))
	}
}

// ExpectBinary reads the next message and fails the test unless it is a
// binary message equal to want.
func (c *Client) ExpectBinary(want []byte) {
	c.tb.Helper()
	w := describe(messages.Binary(want))
	m := c.nextMessage(w)
	if m.Kind != messages.KindBinary || !bytes.Equal(m.Payload, want) {
		c.tb.Fatalf("wstest: want %s, got %s%s", w, describe(m), difference(m.Payload, want, m.Kind == messages.KindBinary))
	}
}

// ExpectMessage reads the next message, text or binary, and returns it
// for the test to inspect. The payload is the caller's.
func (c *Client) ExpectMessage() messages.Message {
	c.tb.Helper()
	return c.nextMessage("a message")
}

// ExpectPing reads the next frame, skipping PONGs, and fails the test
// unless it is a PING. It returns the PING's payload and does not answer
// it: send frames.Pong(payload) to do so, or stay silent to test the
// server's pong timeout.
func (c *Client) ExpectPing() []byte {
	c.tb.Helper()
	c.setReadDeadline()
	for {
		e := c.next("ping", false)
		switch e.control.Op {
		case frames.OpPing:
			return e.payload
		case frames.OpPong:
			continue
		case frames.OpClose:
			c.tb.Fatalf("wstest: want ping, got %s", describeClose(e.payload))
		default:
			c.tb.Fatalf("wstest: want ping, got %s", describe(e.msg))
		}
	}
}

// ExpectPong reads the next frame, answering PINGs, and fails the test
// unless it is a PONG carrying payload, as the answer to
// SendFrame(frames.Ping(payload)) must (RFC 6455 §5.5.3).
func (c *Client) ExpectPong(payload []byte) {
	c.tb.Helper()
	c.setReadDeadline()
	want := fmt.Sprintf("pong %q", payload)
	e := c.nextControl(want, true)
	switch e.control.Op {
	case frames.OpPong:
		if !bytes.Equal(e.payload, payload) {
			c.tb.Fatalf("wstest: want %s, got pong %q", want, e.payload)
		}
	case frames.OpClose:
		c.tb.Fatalf("wstest: want %s, got %s", want, describeClose(e.payload))
	default:
		c.tb.Fatalf("wstest: want %s, got %s", want, describe(e.msg))
	}
}

// ExpectClose reads the next frame, answering PINGs and skipping PONGs,
// and fails the test unless it is a CLOSE with code and reason. A data
// message before it fails the test too. Unless the client already sent
// one, it answers with a CLOSE echoing the code, completing the closing
// handshake (RFC 6455 §5.5.1). Then it waits for the server to close the
// transport (RFC 6455 §7.1.1), failing the test if anything else arrives.
// An empty CLOSE payload reads as code 1005 (frames.CloseNoStatus).
func (c *Client) ExpectClose(code frames.CloseCode, reason string) {
	c.tb.Helper()
	c.setReadDeadline()
	want := fmt.Sprintf("close %v %q", code, reason)
	e := c.nextControl(want, false)
	if e.control.Op != frames.OpClose {
		c.tb.Fatalf("wstest: want %s, got %s", want, describe(e.msg))
	}
	got, gotReason, err := frames.ParseClose(e.payload)
	if err != nil {
		c.tb.Fatalf("wstest: want %s, got a CLOSE with an invalid payload % x: %v", want, e.payload, err)
	}
	if got != code || gotReason != reason {
		c.tb.Fatalf("wstest: want %s, got %s", want, describeClose(e.payload))
	}
	if !c.closeSent {
		// The answer is best effort: a server that failed the connection
		// may close the transport right after its CLOSE (RFC 6455 §7.1.7).
		var echo []byte
		if got != frames.CloseNoStatus {
			echo = []byte{byte(got >> 8), byte(got)}
		}
		c.closeSent = true
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout()))
		_, _ = c.conn.Write(encode(maskedHeader(frames.OpClose, true, 0, echo), echo))
	}
	c.expectEOF(want)
}

// expectEOF waits for the server to close the transport after its CLOSE.
func (c *Client) expectEOF(after string) {
	c.tb.Helper()
	// Within the deadline its caller set: Timeout bounds the whole call.
	var one [1]byte
	n, err := io.ReadFull(c.r, one[:])
	c.CloseNow()
	switch {
	case n > 0:
		c.tb.Fatalf("wstest: after %s: the server sent more bytes after its CLOSE frame", after)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.tb.Fatalf("wstest: after %s: the server did not close the connection within %v", after, c.timeout())
	}
}

// Close performs a closing handshake started by the client: it sends a
// CLOSE with 1000 unless one was sent already (best effort: the server may
// have closed first), reads past any data the server still sends until the
// server's CLOSE (unless a read returned it already, as ReadFrame can),
// and waits for the server to close the transport. The test fails if the
// server does not answer within Timeout. Close does nothing on a client
// that is already closed; use ExpectClose instead to check the server's
// code.
func (c *Client) Close() {
	c.tb.Helper()
	if c.gone {
		return
	}
	if !c.closeSent {
		// Best effort: a server that closed first may have closed the
		// transport after its CLOSE, which is then still there to read.
		c.closeSent = true
		p := []byte{byte(frames.CloseNormal >> 8), byte(frames.CloseNormal & 0xff)}
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout()))
		_, _ = c.conn.Write(encode(maskedHeader(frames.OpClose, true, 0, p), p))
	}
	c.setReadDeadline()
	for !c.closeRead {
		if _, _, err := c.readFrame(); err != nil {
			c.CloseNow()
			c.tb.Fatalf("wstest: close: no CLOSE from the server: %v", c.readErr(err))
		}
	}
	c.expectEOF("close")
}

// CloseNow closes the transport without a closing handshake, as a peer
// that crashes would. It is safe to call more than once.
func (c *Client) CloseNow() {
	if !c.gone {
		c.gone = true
		_ = c.conn.Close()
	}
}

// ---- failure messages ----

const maxShown = 64

func quote(s string) string {
	if len(s) <= maxShown {
		return fmt.Sprintf("%q", s)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// describe renders a message for a failure message.
func describe(m messages.Message) string {
	if m.Kind == messages.KindText {
		return "text " + quote(string(m.Payload))
	}
	if len(m.Payload) <= maxShown/2 {
		return fmt.Sprintf("binary [% x]", m.Payload)
	}
	return fmt.Sprintf("binary [% x …] (%d bytes)", m.Payload[:maxShown/2], len(m.Payload))
}

func describeClose(p []byte) string {
	code, reason, err := frames.ParseClose(p)
	if err != nil {
		return fmt.Sprintf("a CLOSE with an invalid payload % x (%v)", p, err)
	}
	return fmt.Sprintf("close %v %q", code, reason)
}

// difference points at where two long payloads of the same kind part.
func difference(got, want []byte, sameKind bool) string {
	if !sameKind || (len(got) <= maxShown && len(want) <= maxShown) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf(" (lengths %d and %d, first difference at byte %d)", len(got), len(want), i)
}

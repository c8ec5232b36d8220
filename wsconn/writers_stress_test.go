package wsconn_test

// Property-style stress tests of the writing side of a connection: many
// goroutines (tasks started with Session.Go, goroutines of the handler's
// own, and goroutines outside the connection that hold its Outbound) write
// with every method, at random sizes around a small FragmentSize, while a
// raw peer reads every frame off a loopback socket and checks the wire
// itself. The connection ends in one of several ways (the peer's CLOSE,
// the handler's return, out.Close, a failed task, a shutdown, or several
// of them at once), and each scenario runs with several fixed seeds: the
// interleaving varies from run to run, the properties must hold every
// time.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// wsFrag is the FragmentSize of every connection here.
const wsFrag = 64

var errWsBoom = errors.New("writers stress: task failed")

// wsEnding is how a run ends the connection.
type wsEnding int

const (
	wsEndPeer     wsEnding = iota // the peer sends CLOSE 4001 mid-stream
	wsEndReturn                   // the handler returns (nil: 1000, or a *CloseError 4002)
	wsEndOutClose                 // out.Close(4003) from a goroutine
	wsEndTask                     // a task fails (errWsBoom: 1011, or a *CloseError 4004)
	wsEndShutdown                 // the server's group shuts down: 1001
	wsEndRace                     // several of the above at once
)

func (e wsEnding) String() string {
	return [...]string{"peer-close", "handler-return", "out-close", "task-error", "shutdown", "race"}[e]
}

// The enders a race may fire at once.
const (
	wsFirePeer = 1 << iota
	wsFireReturn
	wsFireOutClose
	wsFireTask
	wsFireShutdown
)

// wsWrite is one call that starts a message (or a PING) and what it
// returned.
type wsWrite struct {
	method   string
	ids      []string // the messages it carried (a batch: several; a Ping: its payload)
	n        int      // WritePreparedBatch: the n it returned
	err      error
	mustFail bool // closing was known to have begun before the call
	ping     bool
	stage    string // Writer: the call that failed first (open, Write, Close)
}

// wsObserver keeps the CloseInfo of its one connection.
type wsObserver struct {
	wsconn.NopObserver
	closed chan wsconn.CloseInfo
}

func (o *wsObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }
func (o *wsObserver) Closed(info wsconn.CloseInfo)                { o.closed <- info }

// wsRun is one connection of a stress scenario.
type wsRun struct {
	t         *testing.T
	seed      uint64
	ending    wsEnding
	opts      wsOpts
	fire      int   // the enders it fires (a race: several)
	threshold int64 // successful writes before the ending fires (peer: data messages read)

	retCode   frames.CloseCode // the handler's return, 0: nil
	taskCode  frames.CloseCode // the failing task's *CloseError, 0: errWsBoom
	peerReply frames.CloseCode // the peer's answer to the server's CLOSE, 0: echo

	connCtx   atomic.Pointer[context.Context]
	outClosed atomic.Bool // out.Close has returned: closing has begun
	okWrites  atomic.Int64
	trigger   chan struct{}
	fireOnce  sync.Once

	mu       sync.Mutex
	writes   []wsWrite
	outErr   []error // out.Close's results
	ctxCause error   // the cause of the handler's context
}

func (r *wsRun) fireNow() { r.fireOnce.Do(func() { close(r.trigger) }) }

// closingKnown reports whether a write starting now must fail: the
// handler's context ended (which it does only after closing began) or
// out.Close returned.
func (r *wsRun) closingKnown() bool {
	if p := r.connCtx.Load(); p != nil && (*p).Err() != nil {
		return true
	}
	return r.outClosed.Load()
}

// wsPayload is id, '|', then filler that depends on the position only,
// n bytes in all (at least the id and '|'): ASCII, so valid text.
func wsPayload(id string, n int) []byte {
	b := make([]byte, 0, max(n, len(id)+1))
	b = append(b, id...)
	b = append(b, '|')
	for i := len(b); i < n; i++ {
		b = append(b, 'a'+byte(i*7%26))
	}
	return b
}

// wsSize picks a payload size, mostly around the fragment boundaries.
func wsSize(rng *mrand.Rand) int {
	switch rng.IntN(12) {
	case 0:
		return 0
	case 1:
		return wsFrag - 1
	case 2:
		return wsFrag
	case 3:
		return wsFrag + 1
	case 4:
		return 2*wsFrag - 1
	case 5:
		return 2 * wsFrag
	case 6:
		return 3*wsFrag + 1
	case 7:
		return 2500 + rng.IntN(1000) // written with writev
	default:
		return rng.IntN(4 * wsFrag)
	}
}

func wsKind(rng *mrand.Rand) (messages.Kind, string) {
	if rng.IntN(2) == 0 {
		return messages.KindText, "t"
	}
	return messages.KindBinary, "b"
}

// write makes one random call on out. base names it uniquely.
func (r *wsRun) write(ctx context.Context, out *wsconn.Outbound, rng *mrand.Rand, base string) wsWrite {
	size := wsSize(rng)
	known := r.closingKnown()
	var w wsWrite
	switch rng.IntN(7) {
	case 0:
		id := "Tt" + base
		w = wsWrite{method: "WriteText", ids: []string{id}}
		w.err = out.WriteText(ctx, string(wsPayload(id, size)))
	case 1:
		id := "Bb" + base
		w = wsWrite{method: "WriteBinary", ids: []string{id}}
		w.err = out.WriteBinary(ctx, wsPayload(id, size))
	case 2:
		kind, k := wsKind(rng)
		id := "M" + k + base
		w = wsWrite{method: "WriteMessage", ids: []string{id}}
		w.err = out.WriteMessage(ctx, messages.Message{Kind: kind, Payload: wsPayload(id, size)})
	case 3:
		kind, k := wsKind(rng)
		id := "W" + k + base
		w = wsWrite{method: "Writer", ids: []string{id}}
		wr, err := out.Writer(ctx, kind)
		if err != nil {
			w.err, w.stage = err, "open"
			break
		}
		w.stage = "Write"
		p := wsPayload(id, size)
		for len(p) > 0 && err == nil {
			var k int
			switch rng.IntN(4) {
			case 0:
				k = 0
			case 1:
				k = wsFrag
			default:
				k = 1 + rng.IntN(2*wsFrag)
			}
			k = min(k, len(p))
			_, err = wr.Write(p[:k])
			p = p[k:]
		}
		if cerr := wr.Close(); err == nil {
			err, w.stage = cerr, "Close"
		}
		w.err = err
	case 4:
		kind, k := wsKind(rng)
		id := "P" + k + base
		w = wsWrite{method: "WritePrepared", ids: []string{id}}
		w.err = out.WritePrepared(ctx, wsconn.Prepare(messages.Message{Kind: kind, Payload: wsPayload(id, size)}))
	case 5:
		var ps []*wsconn.Prepared
		w = wsWrite{method: "WritePreparedBatch"}
		count := 1 + rng.IntN(4)
		if rng.IntN(16) == 0 {
			count = 60 + rng.IntN(80) // more than one writev of 64
		}
		for i := range count {
			kind, k := wsKind(rng)
			id := fmt.Sprintf("Q%s%s.%03d", k, base, i)
			w.ids = append(w.ids, id)
			size := wsSize(rng)
			if count > 4 {
				size = rng.IntN(2 * wsFrag)
			}
			ps = append(ps, wsconn.Prepare(messages.Message{Kind: kind, Payload: wsPayload(id, size)}))
		}
		w.n, w.err = out.WritePreparedBatch(ctx, ps)
	case 6:
		id := "!" + base
		w = wsWrite{method: "Ping", ids: []string{id}, ping: true}
		w.err = out.Ping(ctx, []byte(id))
	}
	w.mustFail = known
	return w
}

// writer writes until a write fails, then makes two more calls (which must
// fail too) and returns.
func (r *wsRun) writer(ctx context.Context, out *wsconn.Outbound, wid int) {
	rng := mrand.New(mrand.NewPCG(r.seed, uint64(wid)))
	failed := 0
	for seq := 0; seq < 4000 && failed < 3; seq++ {
		w := r.write(ctx, out, rng, fmt.Sprintf("%02d.%05d", wid, seq))
		r.mu.Lock()
		r.writes = append(r.writes, w)
		r.mu.Unlock()
		if w.err != nil {
			failed++
			continue
		}
		if r.okWrites.Add(1) == r.threshold && r.ending != wsEndPeer {
			r.fireNow()
		}
	}
}

// wsPeer reads the server's frames and checks the wire.
type wsPeer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader

	wmu       sync.Mutex
	closeSent bool

	// what arrived
	messages  map[string]int // id -> frames, for whole messages
	order     []string
	partial   string // the message left unfinished by the server's CLOSE, if any
	pings     map[string]bool
	pongs     []string
	dataBytes int64
	closeCode frames.CloseCode
	sentPings map[string]bool
	eofErr    error // the server closed TCP before its CLOSE
}

func wsDial(t *testing.T, url string) *wsPeer {
	t.Helper()
	c := dialRaw(t, url)
	return &wsPeer{t: t, nc: c.nc, br: c.br, messages: map[string]int{}, pings: map[string]bool{}, sentPings: map[string]bool{}}
}

// send sends a masked frame; nothing after the peer's CLOSE.
func (p *wsPeer) send(op frames.Opcode, payload []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closeSent {
		return nil
	}
	if op == frames.OpClose {
		p.closeSent = true
	}
	if op == frames.OpPing {
		p.sentPings[string(payload)] = true
	}
	h := frames.Header{Op: op, Fin: true}
	_, _ = rand.Read(h.Mask[:])
	_ = p.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := p.nc.Write(maskedFrame(h, payload))
	return err
}

// frame reads one frame and checks its header: unmasked, the shortest
// length encoding, no RSV bit, a known opcode, whole short control frames.
func (p *wsPeer) frame() (fin bool, op frames.Opcode, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(p.br, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, frames.Opcode(h[0]&0x0f)
	if rsv := h[0] & 0x70; rsv != 0 {
		p.t.Fatalf("server frame with RSV bits %#x", rsv)
	}
	if h[1]&0x80 != 0 {
		p.t.Fatal("server frame masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(p.br, b[:]); err != nil {
			return
		}
		if n = uint64(binary.BigEndian.Uint16(b[:])); n < 126 {
			p.t.Fatalf("length %d in the 16-bit form", n)
		}
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(p.br, b[:]); err != nil {
			return
		}
		if n = binary.BigEndian.Uint64(b[:]); n <= 0xffff || n>>63 != 0 {
			p.t.Fatalf("length %d in the 64-bit form", n)
		}
	}
	switch op {
	case frames.OpContinuation, frames.OpText, frames.OpBinary:
	case frames.OpClose, frames.OpPing, frames.OpPong:
		if !fin || n > frames.MaxControlPayload {
			p.t.Fatalf("control frame %v fin=%v length %d", op, fin, n)
		}
	default:
		p.t.Fatalf("server frame with opcode %v", op)
	}
	if n > 1<<20 {
		p.t.Fatalf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(p.br, payload)
	return
}

// wsPeerPlan says when the peer acts on its own.
type wsPeerPlan struct {
	closeAfter int              // send CLOSE 4001 after this many whole messages (0: never)
	pingEvery  int              // send a PING every this many whole messages
	reply      frames.CloseCode // the answer to the server's CLOSE (0: its code)
}

// run reads until the server closes TCP, checking every frame and the
// order of frames, and answers the server's CLOSE.
func (p *wsPeer) run(plan wsPeerPlan) {
	t := p.t
	var (
		cur       strings.Builder // the message being assembled
		curOp     frames.Opcode
		curFrames []int
		inMsg     bool
		closeSeen bool
		whole     int
	)
	for {
		_ = p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		fin, op, payload, err := p.frame()
		if err != nil {
			if closeSeen && errors.Is(err, io.EOF) {
				return
			}
			if inMsg {
				p.partial = wsID(cur.String())
			}
			p.eofErr = err
			p.t.Errorf("reading the server (CLOSE seen: %v, in message %q): %v", closeSeen, p.partial, err)
			return
		}
		if closeSeen {
			t.Fatalf("%v frame after the server's CLOSE", op)
		}
		switch op {
		case frames.OpClose:
			closeSeen = true
			code, _, err := frames.ParseClose(payload)
			if err != nil || code == 0 {
				t.Fatalf("server CLOSE payload %q: code %v, %v", payload, code, err)
			}
			p.closeCode = code
			if inMsg {
				p.partial = wsID(cur.String())
			}
			reply := plan.reply
			if reply == 0 {
				reply = code
			}
			_ = p.send(frames.OpClose, closePayload(reply, ""))
			continue
		case frames.OpPing:
			p.pings[string(payload)] = true
			continue
		case frames.OpPong:
			p.pongs = append(p.pongs, string(payload))
			continue
		}
		p.dataBytes += int64(len(payload))
		switch {
		case op == frames.OpContinuation && !inMsg:
			t.Fatal("continuation frame without a message")
		case op != frames.OpContinuation && inMsg:
			t.Fatalf("new %v frame inside message %q: messages interleaved", op, wsID(cur.String()))
		case !inMsg:
			inMsg, curOp, curFrames = true, op, nil
			cur.Reset()
		}
		cur.Write(payload)
		curFrames = append(curFrames, len(payload))
		if !fin {
			continue
		}
		inMsg = false
		p.message(curOp, cur.String(), curFrames)
		whole++
		if plan.pingEvery > 0 && whole%plan.pingEvery == 0 {
			_ = p.send(frames.OpPing, fmt.Appendf(nil, "peer%d", whole))
		}
		if plan.closeAfter > 0 && whole == plan.closeAfter {
			_ = p.send(frames.OpClose, closePayload(4001, "peer bye"))
		}
	}
}

func wsID(s string) string {
	id, _, _ := strings.Cut(s, "|")
	return id
}

// message checks a whole message: its payload, its kind, its framing.
func (p *wsPeer) message(op frames.Opcode, s string, sizes []int) {
	t := p.t
	id := wsID(s)
	if len(id) < 3 || s != string(wsPayload(id, len(s))) {
		t.Fatalf("corrupt message %.40q (%d bytes)", s, len(s))
	}
	if _, dup := p.messages[id]; dup {
		t.Fatalf("message %s twice", id)
	}
	p.messages[id] = len(sizes)
	p.order = append(p.order, id)
	if want := map[byte]frames.Opcode{'t': frames.OpText, 'b': frames.OpBinary}[id[1]]; op != want {
		t.Fatalf("message %s came as %v", id, op)
	}
	switch id[0] {
	case 'P', 'Q':
		// Prepared: one frame, whatever its size.
		if len(sizes) != 1 {
			t.Fatalf("prepared message %s in %d frames", id, len(sizes))
		}
	case 'W':
		// Writer: a frame each time FragmentSize bytes were written, and a
		// final frame on Close.
		for i, n := range sizes {
			if last := i == len(sizes)-1; (!last && n != wsFrag) || (last && n >= wsFrag) {
				t.Fatalf("Writer message %s (%d bytes) framed %v", id, len(s), sizes)
			}
		}
	default:
		// Whole messages: fragmented at FragmentSize.
		for i, n := range sizes {
			if last := i == len(sizes)-1; (!last && n != wsFrag) || (last && (n > wsFrag || n == 0 && len(s) > 0)) {
				t.Fatalf("message %s (%d bytes) framed %v", id, len(s), sizes)
			}
		}
	}
}

// wsCauseCode is the close code a refused write's error says closing began
// with, or 0 when it says none.
func wsCauseCode(err error) frames.CloseCode {
	switch {
	case wsconn.CloseStatus(err) != 0:
		return wsconn.CloseStatus(err)
	case errors.Is(err, wsconn.ErrShutdown):
		return frames.CloseGoingAway
	case errors.Is(err, errWsBoom):
		return frames.CloseInternalError
	}
	return 0
}

// wsScenario runs one connection and checks every property.
// wsOpts select what a scenario tolerates.
type wsOpts struct {
	// strict refuses a bare ErrClosed from a Writer (opening, or an
	// abandoned one) refused because the handler returned (see
	// TestWritersStressWriterRefusedAtReturnCarriesTheCause).
	strict bool
	// outsideOutlives lets goroutines outside the connection write on
	// after the handler returned even when the peer's CLOSE ended it (see
	// TestWritersStressOutsideWriterKeepsThePeersCloseAnswer); otherwise
	// the handler waits for them whenever the peer's CLOSE may come first.
	outsideOutlives bool
}

func wsScenario(t *testing.T, ending wsEnding, seed uint64, opts wsOpts) {
	rng := mrand.New(mrand.NewPCG(seed, 0xc011b41))
	r := &wsRun{t: t, seed: seed, ending: ending, opts: opts, trigger: make(chan struct{}),
		threshold: int64(20 + rng.IntN(120))}
	switch ending {
	case wsEndPeer:
		r.fire = wsFirePeer
	case wsEndReturn:
		r.fire = wsFireReturn
	case wsEndOutClose:
		r.fire = wsFireOutClose
	case wsEndTask:
		r.fire = wsFireTask
	case wsEndShutdown:
		r.fire = wsFireShutdown
	case wsEndRace:
		for r.fire&(r.fire-1) == 0 { // at least two
			r.fire = 1 + rng.IntN(31)
		}
	}
	if rng.IntN(2) == 0 {
		r.retCode = 4002
	}
	if rng.IntN(2) == 0 {
		r.taskCode = 4004
	}
	if ending == wsEndOutClose && rng.IntN(2) == 0 {
		r.peerReply = 4005 // the peer answers with another code: the first one stays
	}
	nTasks := 1 + rng.IntN(3)
	nInner := rng.IntN(3)
	nOuter := rng.IntN(3)
	if r.fire&wsFireReturn != 0 {
		// Nothing the handler started may outlive it; goroutines outside
		// the connection write on.
		nInner = 0
		if r.fire&wsFirePeer == 0 || opts.outsideOutlives {
			nOuter = max(nOuter, 1)
		} else {
			nOuter = 0
		}
	}
	if ending == wsEndPeer && opts.outsideOutlives {
		nOuter = max(nOuter, 1)
	}
	// The handler waits for the goroutines outside the connection when the
	// peer's CLOSE may come first, unless they are to outlive it.
	waitOuter := r.fire&wsFirePeer != 0 && !opts.outsideOutlives
	outerDone := make(chan struct{})
	reader := rng.IntN(2) == 0
	outerBackground := rng.IntN(2) == 0

	obs := &wsObserver{closed: make(chan wsconn.CloseInfo, 1)}
	cfg := &wsconn.Config{FragmentSize: wsFrag, PingInterval: -1, Observer: obs}
	type session struct {
		out *wsconn.Outbound
		s   *wsconn.Session[struct{}]
		ctx context.Context
	}
	started := make(chan session, 1)
	handlerDone := make(chan struct{})
	url, g := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		defer close(handlerDone)
		r.connCtx.Store(&ctx)
		started <- session{out, s, ctx}
		var mine sync.WaitGroup // the writers the handler waits for
		wid := 0
		for range nTasks {
			mine.Add(1)
			id := wid
			wid++
			if err := s.Go(func(ctx context.Context) error {
				defer mine.Done()
				r.writer(ctx, out, id)
				return nil
			}); err != nil {
				t.Errorf("Go: %v", err)
				mine.Done()
			}
		}
		for range nInner {
			id := wid
			wid++
			mine.Go(func() { r.writer(ctx, out, id) })
		}
		_ = s.Go(func(ctx context.Context) error {
			<-ctx.Done()
			cause := context.Cause(ctx)
			r.mu.Lock()
			r.ctxCause = cause
			r.mu.Unlock()
			return nil
		})
		if reader {
			_ = s.Go(func(ctx context.Context) error {
				for range in.Messages(0) {
					t.Error("the peer sent no data message")
				}
				return nil
			})
		}
		if r.fire&wsFireTask != 0 {
			_ = s.Go(func(ctx context.Context) error {
				select {
				case <-r.trigger:
				case <-ctx.Done():
					if ending != wsEndRace {
						t.Error("the context ended before the task failed")
					}
					return nil
				}
				if r.taskCode != 0 {
					return &wsconn.CloseError{Code: r.taskCode, Reason: "task bye"}
				}
				return errWsBoom
			})
		}
		if r.fire&wsFireReturn != 0 {
			select {
			case <-r.trigger:
			case <-ctx.Done():
			}
			if r.retCode != 0 {
				return &wsconn.CloseError{Code: r.retCode, Reason: "handler bye"}
			}
			return nil
		}
		<-ctx.Done()
		mine.Wait()
		if waitOuter {
			<-outerDone
		}
		return nil
	})
	peer := wsDial(t, url)
	sess := waitFor(t, started, "the handler")

	var outer sync.WaitGroup
	for i := range nOuter {
		ctx := sess.ctx
		if outerBackground {
			ctx = context.Background()
		}
		outer.Go(func() { r.writer(ctx, sess.out, 10+i) })
	}
	if r.fire&wsFireOutClose != 0 {
		// A goroutine outside the connection that holds its Outbound.
		outer.Go(func() {
			<-r.trigger
			err := sess.out.Close(4003, "bye")
			r.outClosed.Store(true)
			r.mu.Lock()
			r.outErr = append(r.outErr, err)
			r.mu.Unlock()
		})
	}
	go func() {
		outer.Wait()
		close(outerDone)
	}()
	type shut struct {
		rep any
		err error
	}
	shutDone := make(chan shut, 1)
	if r.fire&wsFireShutdown != 0 {
		go func() {
			<-r.trigger
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			rep, err := g.Shutdown(ctx)
			shutDone <- shut{rep, err}
		}()
	}
	plan := wsPeerPlan{pingEvery: 7 + rng.IntN(20), reply: r.peerReply}
	peerSent := make(chan struct{})
	switch {
	case ending == wsEndPeer:
		plan.closeAfter = int(r.threshold)
		close(peerSent)
	case r.fire&wsFirePeer != 0:
		go func() {
			defer close(peerSent)
			<-r.trigger
			_ = peer.send(frames.OpClose, closePayload(4001, "peer bye"))
		}()
	default:
		close(peerSent)
	}
	peer.run(plan)
	info := waitFor(t, obs.closed, "the connection's end")
	<-handlerDone
	r.fireNow() // for the goroutines waiting on it (a race that never fired)
	<-outerDone
	<-peerSent
	if r.fire&wsFireShutdown != 0 {
		if s := waitFor(t, shutDone, "the shutdown"); s.err != nil {
			t.Errorf("shutdown: %v", s.err)
		}
	}
	// Writes after the end.
	late := mrand.New(mrand.NewPCG(seed, 99))
	for i := range 8 {
		w := r.write(context.Background(), sess.out, late, fmt.Sprintf("99.%05d", i))
		w.mustFail = true
		r.writes = append(r.writes, w)
	}
	r.check(peer, info, sess.s.Stats())
}

// check compares what the writers were told with what the peer read.
func (r *wsRun) check(peer *wsPeer, info wsconn.CloseInfo, stats wsconn.Stats) {
	t := r.t
	r.mu.Lock()
	defer r.mu.Unlock()
	code := peer.closeCode
	var want frames.CloseCode
	switch r.ending {
	case wsEndPeer:
		want = 4001
	case wsEndReturn:
		want = r.retCode
		if want == 0 {
			want = frames.CloseNormal
		}
	case wsEndOutClose:
		want = 4003
	case wsEndTask:
		want = r.taskCode
		if want == 0 {
			want = frames.CloseInternalError
		}
	case wsEndShutdown:
		want = frames.CloseGoingAway
	case wsEndRace:
		// Whichever came first, but one of those fired.
		allowed := map[frames.CloseCode]bool{}
		if r.fire&wsFirePeer != 0 {
			allowed[4001] = true
		}
		if r.fire&wsFireReturn != 0 {
			allowed[r.retCode] = true
			allowed[frames.CloseNormal] = r.retCode == 0
		}
		if r.fire&wsFireOutClose != 0 {
			allowed[4003] = true
		}
		if r.fire&wsFireTask != 0 {
			allowed[r.taskCode] = true
			allowed[frames.CloseInternalError] = r.taskCode == 0
		}
		if r.fire&wsFireShutdown != 0 {
			allowed[frames.CloseGoingAway] = true
		}
		if !allowed[code] {
			t.Errorf("race of %05b: the server closed with %v", r.fire, code)
		}
		want = code
	}
	if code != want {
		t.Errorf("the server closed with %v, want %v", code, want)
	}
	if c := wsCauseCode(r.ctxCause); c != want {
		t.Errorf("the handler's context ended with %v (code %v), want the cause of %v", r.ctxCause, c, want)
	}
	if r.ending != wsEndRace {
		wantBy := wsconn.SideLocal
		if r.ending == wsEndPeer {
			wantBy = wsconn.SidePeer
		}
		if info.By != wantBy {
			t.Errorf("CloseInfo.By %v, want %v", info.By, wantBy)
		}
	}
	if r.ending != wsEndRace && info.Code != want {
		t.Errorf("CloseInfo.Code %v, want %v", info.Code, want)
	}

	// What the writers were told against what arrived.
	ok := map[string]bool{}
	refused, nilAfterClose, badCause := 0, 0, 0
	partialOK := false
	for _, w := range r.writes {
		for i, id := range w.ids {
			switch {
			case w.method == "WritePreparedBatch" && i < w.n:
				ok[id] = true
			case w.method != "WritePreparedBatch" && w.err == nil:
				ok[id] = true
			}
		}
		if w.method == "WritePreparedBatch" && w.err == nil && w.n != len(w.ids) {
			t.Errorf("WritePreparedBatch returned %d of %d and no error", w.n, len(w.ids))
		}
		if w.method == "WritePreparedBatch" && w.err != nil && w.n%64 != 0 {
			// Several writevs of 64: closing may begin between two.
			t.Errorf("WritePreparedBatch returned n=%d of %d with %v on a healthy transport", w.n, len(w.ids), w.err)
		}
		if w.err == nil {
			if w.mustFail {
				nilAfterClose++
				if nilAfterClose <= 3 {
					t.Errorf("%s %v returned nil after closing began", w.method, w.ids)
				}
			}
			continue
		}
		if w.method == "Writer" && len(w.ids) == 1 && peer.partial == w.ids[0] {
			partialOK = true
		}
		refused++
		if !r.opts.strict && w.method == "Writer" && r.fire&wsFireReturn != 0 &&
			errors.Is(w.err, wsconn.ErrClosed) && wsCauseCode(w.err) == 0 {
			continue // TestWritersStressWriterRefusedAtReturnCarriesTheCause
		}
		if !errors.Is(w.err, wsconn.ErrClosed) || wsCauseCode(w.err) != want {
			badCause++
			if badCause <= 3 {
				t.Errorf("%s%s %v: %v (cause code %v), want ErrClosed wrapping the cause of %v",
					w.method, w.stage, w.ids, w.err, wsCauseCode(w.err), want)
			}
		}
	}
	if nilAfterClose > 3 || badCause > 3 {
		t.Errorf("%d writes returned nil after closing began, %d refused writes had the wrong error", nilAfterClose, badCause)
	}
	if peer.eofErr != nil {
		for _, w := range r.writes {
			if w.err != nil && !w.mustFail {
				t.Logf("%s %v: %v", w.method, w.ids, w.err)
			}
		}
	}
	missing := 0
	for id := range ok {
		arrived := peer.messages[id] > 0
		if id[0] == '!' {
			arrived = peer.pings[id]
		}
		if !arrived {
			missing++
			if missing <= 3 {
				t.Errorf("the write of %s returned nil but it did not arrive (whole) before the CLOSE", id)
			}
		}
	}
	for _, id := range peer.order {
		if !ok[id] {
			t.Errorf("%s arrived whole but its write did not return nil", id)
		}
	}
	for id := range peer.pings {
		if !ok[id] {
			t.Errorf("PING %q arrived but its Ping did not return nil", id)
		}
	}
	if peer.partial != "" && !partialOK {
		t.Errorf("message %s was left unfinished before the CLOSE", peer.partial)
	}
	// Each writer's messages in the order it wrote them.
	last := map[string]string{}
	for _, id := range peer.order {
		w := id[2:4]
		if prev, seen := last[w]; seen && id[2:] < prev {
			t.Errorf("message %s after %s", id, prev)
		}
		last[w] = id[2:]
	}
	for _, pong := range peer.pongs {
		if !peer.sentPings[pong] {
			t.Errorf("PONG %q answers no PING", pong)
		}
	}
	whole := int64(len(peer.order))
	t.Logf("fire %05b, code %v: %d whole messages, %d PINGs, %d PONGs, %d writes refused, partial %q",
		r.fire, code, whole, len(peer.pings), len(peer.pongs), refused, peer.partial)
	if stats.MessagesOut != whole || stats.BytesOut != peer.dataBytes {
		t.Errorf("Stats: %d messages, %d bytes out; the peer read %d whole messages, %d bytes of data",
			stats.MessagesOut, stats.BytesOut, whole, peer.dataBytes)
	}
	if info.MessagesOut != stats.MessagesOut || info.BytesOut != stats.BytesOut {
		t.Errorf("CloseInfo counts %d messages, %d bytes; Stats %d, %d", info.MessagesOut, info.BytesOut, stats.MessagesOut, stats.BytesOut)
	}
	if r.fire&wsFireOutClose != 0 && r.ending != wsEndRace {
		for _, err := range r.outErr {
			if err != nil {
				t.Errorf("out.Close: %v", err)
			}
		}
	}
}

// wsSeeds runs ending with n fixed seeds, each in a subtest of its own (its
// own server), and then checks that no goroutine outlived them.
func wsSeeds(t *testing.T, ending wsEnding, n int, opts wsOpts) {
	base := goleak.IgnoreCurrent()
	for i := range n {
		seed := uint64(i)*0x9e3779b97f4a7c15 + uint64(ending)
		t.Run(fmt.Sprintf("seed%d", i), func(t *testing.T) {
			wsScenario(t, ending, seed, opts)
		})
	}
	if err := goleak.Find(base); err != nil {
		t.Errorf("a goroutine outlived its connection: %v", err)
	}
}

func TestWritersStressPeerClose(t *testing.T)     { wsSeeds(t, wsEndPeer, 30, wsOpts{}) }
func TestWritersStressHandlerReturn(t *testing.T) { wsSeeds(t, wsEndReturn, 30, wsOpts{}) }
func TestWritersStressOutClose(t *testing.T)      { wsSeeds(t, wsEndOutClose, 30, wsOpts{}) }
func TestWritersStressTaskError(t *testing.T)     { wsSeeds(t, wsEndTask, 30, wsOpts{}) }
func TestWritersStressShutdown(t *testing.T)      { wsSeeds(t, wsEndShutdown, 30, wsOpts{}) }
func TestWritersStressRacingEndings(t *testing.T) { wsSeeds(t, wsEndRace, 60, wsOpts{}) }

// TestWritersStressPeerCloseOutsideWritersOutliveTheHandler is
// TestWritersStressPeerClose with goroutines outside the connection that
// the handler does not wait for: when one of them holds the message lock
// (writing, or even being refused) as the connection is torn down, the
// CLOSE that answers the peer's never goes out (see
// TestWritersStressOutsideWriterKeepsThePeersCloseAnswer).
func TestWritersStressPeerCloseOutsideWritersOutliveTheHandler(t *testing.T) {
	wsSeeds(t, wsEndPeer, 20, wsOpts{outsideOutlives: true})
}

// TestWritersStressOutsideWriterKeepsThePeersCloseAnswer: a goroutine
// outside the connection (holding its Outbound, as Conn.Outbound allows)
// is in the middle of a long message when the peer's CLOSE arrives, and
// the handler returns as soon as its context ends. closing.md: colibri
// answers the peer's CLOSE "with the same code, after the message being
// written"; nothing allows it to close TCP without an answer.
func TestWritersStressOutsideWriterKeepsThePeersCloseAnswer(t *testing.T) {
	const size, frag = 8 << 20, 4 << 10
	outs := make(chan *wsconn.Outbound, 1)
	url, _ := testServer(t, &wsconn.Config{FragmentSize: frag, PingInterval: -1},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			outs <- out
			<-ctx.Done()
			return nil
		})
	base := goleak.IgnoreCurrent() // the server's goroutines, before the connection
	peer := wsDial(t, url)
	out := waitFor(t, outs, "the handler")
	wrote := make(chan error, 1)
	go func() { wrote <- out.WriteBinary(context.Background(), make([]byte, size)) }()
	got, framesRead, closeSent := 0, 0, false
	var closeCode frames.CloseCode
	for closeCode == 0 {
		_ = peer.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, op, p, err := peer.frame()
		if err != nil {
			werr := waitFor(t, wrote, "the write")
			t.Fatalf("after %d of %d bytes of the message (CLOSE sent: %v), the server closed TCP without answering the peer's CLOSE: %v; the write returned %v",
				got, size, closeSent, err, werr)
		}
		switch op {
		case frames.OpClose:
			closeCode, _, _ = frames.ParseClose(p)
			continue
		case frames.OpPing, frames.OpPong:
			continue
		}
		got += len(p)
		framesRead++
		if framesRead == 8 {
			_ = peer.send(frames.OpClose, closePayload(4001, "peer bye"))
			closeSent = true
		}
		if framesRead%32 == 0 {
			time.Sleep(2 * time.Millisecond) // a peer that reads at its pace
		}
	}
	if closeCode != 4001 {
		t.Errorf("the server answered with %v, want 4001", closeCode)
	}
	err := waitFor(t, wrote, "the write")
	if err == nil && got != size {
		t.Errorf("the write returned nil, but %d of %d bytes arrived before the CLOSE", got, size)
	}
	peer.expectEOFOf()
	if err := goleak.Find(base); err != nil {
		t.Errorf("a goroutine outlived its connection: %v", err)
	}
}

// expectEOFOf reads what follows the server's CLOSE: nothing, then EOF.
func (p *wsPeer) expectEOFOf() {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, p.br); n != 0 || err != nil {
		p.t.Errorf("after the server's CLOSE: %d bytes, %v", n, err)
	}
}

// TestWritersStressWriterRefusedAtReturnCarriesTheCause: tasks open
// Writers in a loop while the handler returns nil. handlers.md: once the
// connection has started closing, for whatever reason, every write
// returns an error matching ErrClosed that also wraps the cause (here a
// *CloseError with 1000, which CloseStatus reads), and so does the
// Writer abandoned when the handler returns.
func TestWritersStressWriterRefusedAtReturnCarriesTheCause(t *testing.T) {
	const conns, tasks = 40, 3
	type refusal struct {
		stage string
		err   error
	}
	refusals := make(chan refusal, tasks)
	var served atomic.Int64
	url, _ := testServer(t, &wsconn.Config{FragmentSize: wsFrag, PingInterval: -1},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			i := served.Add(1)
			var made atomic.Int64
			for range tasks {
				_ = s.Go(func(ctx context.Context) error {
					for {
						w, err := out.Writer(ctx, messages.KindBinary)
						if err != nil {
							refusals <- refusal{"open", err}
							return nil
						}
						for range 3 {
							if _, err = w.Write(make([]byte, 10)); err != nil {
								break
							}
						}
						stage := "Write"
						if cerr := w.Close(); err == nil {
							err, stage = cerr, "Close"
						}
						if err != nil {
							refusals <- refusal{stage, err}
							return nil
						}
						made.Add(1)
					}
				})
			}
			for made.Load() < 10+i%20 {
				time.Sleep(50 * time.Microsecond)
			}
			return nil
		})
	var bad []string
	badConns := 0
	for i := range conns {
		peer := wsDial(t, url)
		for {
			_ = peer.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, op, p, err := peer.frame()
			if err != nil {
				t.Fatalf("connection %d: reading the server: %v", i, err)
			}
			if op == frames.OpClose {
				if code, _, _ := frames.ParseClose(p); code != frames.CloseNormal {
					t.Errorf("connection %d: CLOSE %v, want 1000", i, code)
				}
				_ = peer.send(frames.OpClose, closePayload(frames.CloseNormal, ""))
				break
			}
		}
		peer.expectEOFOf()
		failed := false
		for range tasks {
			r := waitFor(t, refusals, "a refused write")
			if !errors.Is(r.err, wsconn.ErrClosed) || wsconn.CloseStatus(r.err) != frames.CloseNormal {
				bad = append(bad, fmt.Sprintf("connection %d: Writer %s: %v (CloseStatus %v)", i, r.stage, r.err, wsconn.CloseStatus(r.err)))
				failed = true
			}
		}
		if failed {
			badConns++
		}
	}
	if len(bad) > 0 {
		t.Errorf("in %d of %d connections, a Writer refused after the handler returned nil did not carry the cause (CloseStatus 1000):\n%s",
			badConns, conns, strings.Join(bad[:min(len(bad), 6)], "\n"))
	}
}

package wsconn_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/wsconn"
)

// scObserver hands over each connection's CloseInfo.
type scObserver struct {
	wsconn.NopObserver
	closed chan wsconn.CloseInfo
}

func newSCObserver() *scObserver { return &scObserver{closed: make(chan wsconn.CloseInfo, 4)} }

func (o *scObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }
func (o *scObserver) Closed(info wsconn.CloseInfo)                { o.closed <- info }

// scWire is what the server put on the wire, as the peer read it.
type scWire struct {
	closes []frames.CloseCode // the CLOSE frames, in order
	after  []frames.Opcode    // frames after the first CLOSE
	data   int                // data frames before the first CLOSE
	err    error              // how reading ended; nil: EOF after whole frames
}

func (w scWire) String() string {
	return fmt.Sprintf("closes %v, after %v, data %d, end %v", w.closes, w.after, w.data, w.err)
}

// scPeer is a raw peer that reads every frame the server sends until EOF
// in a goroutine, answering the server's CLOSE with the same payload
// unless it sent a CLOSE of its own; it never answers PINGs.
type scPeer struct {
	nc   net.Conn
	br   *bufio.Reader
	mu   sync.Mutex
	sent bool // our CLOSE went out
	done chan scWire
}

func scDial(t testing.TB, url string) *scPeer {
	t.Helper()
	c := dialRaw(t, url)
	p := &scPeer{nc: c.nc, br: c.br, done: make(chan scWire, 1)}
	go p.readLoop()
	return p
}

// send writes one masked frame, ignoring errors; a second CLOSE is not
// sent, nor anything after the first.
func (p *scPeer) send(op frames.Opcode, payload []byte) {
	h := frames.Header{Op: op, Fin: true}
	_, _ = rand.Read(h.Mask[:])
	b := maskedFrame(h, payload)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent {
		return
	}
	if op == frames.OpClose {
		p.sent = true
	}
	_, _ = p.nc.Write(b)
}

func (p *scPeer) readLoop() {
	var w scWire
	_ = p.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		h, pl, err := readFrame(p.br)
		if err != nil {
			if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				w.err = err
			}
			break
		}
		if len(w.closes) > 0 {
			w.after = append(w.after, h.Op)
		} else if !h.Op.IsControl() {
			w.data++
		}
		if h.Op == frames.OpClose {
			code, _, perr := frames.ParseClose(pl)
			if perr != nil {
				code = 0
			}
			w.closes = append(w.closes, code)
			p.send(frames.OpClose, pl)
		}
	}
	p.done <- w
}

// scPeerCode is the code the peer closes with in these tests.
const scPeerCode frames.CloseCode = 4001

// closeNow sends the peer's CLOSE.
func (p *scPeer) closeNow() { p.send(frames.OpClose, closePayload(scPeerCode, "peer")) }

// scCheck compares the wire with CloseInfo: exactly one CLOSE from the
// server, nothing after it, its code the one CloseInfo reports, and, when
// CloseInfo says the peer began, the peer's code. No scenario here breaks
// the transport, so a 1006 is a finding too.
func scCheck(w scWire, info wsconn.CloseInfo) error {
	var errs []error
	if w.err != nil {
		errs = append(errs, fmt.Errorf("the peer's read ended with %v", w.err))
	}
	switch len(w.closes) {
	case 0:
		errs = append(errs, errors.New("TCP closed without a CLOSE frame"))
	case 1:
	default:
		errs = append(errs, fmt.Errorf("%d CLOSE frames", len(w.closes)))
	}
	if len(w.after) > 0 {
		errs = append(errs, fmt.Errorf("frames after the CLOSE: %v", w.after))
	}
	if len(w.closes) > 0 && w.closes[0] != info.Code {
		errs = append(errs, fmt.Errorf("CLOSE on the wire has %v, CloseInfo says %v", w.closes[0], info.Code))
	}
	if info.By == wsconn.SidePeer && info.Code != scPeerCode {
		errs = append(errs, fmt.Errorf("CloseInfo says the peer began with %v, the peer sent %v", info.Code, scPeerCode))
	}
	if info.Code == frames.CloseAbnormal {
		errs = append(errs, errors.New("CloseInfo reports 1006 though the transport did not fail"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w [wire: %v; CloseInfo: by %v code %v reason %q]", errors.Join(errs...), w, info.By, info.Code, info.Reason)
}

// scRun runs n rounds of round and fails the test with the rounds that
// went wrong, if any; round returns nil for a good round.
func scRun(t *testing.T, n int, round func(i int) error) {
	t.Helper()
	var bad []string
	for i := range n {
		if err := round(i); err != nil {
			bad = append(bad, fmt.Sprintf("round %d: %v", i, err))
		}
	}
	if len(bad) > 0 {
		show := bad
		if len(show) > 5 {
			show = show[:5]
		}
		t.Fatalf("%d of %d rounds failed; first: %q", len(bad), n, show)
	}
}

// scFire runs the causes at once, each after a jitter of up to max,
// and waits for them.
func scFire(maxJitter time.Duration, causes ...func()) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, f := range causes {
		d := time.Duration(mrand.Int64N(int64(maxJitter) + 1))
		wg.Go(func() {
			<-start
			if d > 0 {
				spin(d)
			}
			f()
		})
	}
	close(start)
	wg.Wait()
}

// spin waits d without sleeping, for jitter finer than the scheduler's.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// scShutdown shuts g down in the background: it waits for the connection,
// which the round waits for through CloseInfo.
func scShutdown(g *group.Group) func() {
	return func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = g.Shutdown(ctx)
		}()
	}
}

// scFinish waits for the wire and CloseInfo of one round and checks them.
func scFinish(t *testing.T, p *scPeer, obs *scObserver) error {
	t.Helper()
	var w scWire
	select {
	case w = <-p.done:
	case <-time.After(15 * time.Second):
		return errors.New("the peer's read did not end")
	}
	var info wsconn.CloseInfo
	select {
	case info = <-obs.closed:
	case <-time.After(15 * time.Second):
		return fmt.Errorf("no CloseInfo [wire: %v]", w)
	}
	return scCheck(w, info)
}

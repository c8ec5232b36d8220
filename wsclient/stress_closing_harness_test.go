package wsclient_test

// A harness for stress tests of the client's closing handshake: a raw
// server on loopback that records every frame the client sends up to the
// end of TCP, answers the client's CLOSE, may send its own at a chosen
// moment, and closes TCP some time after a clean exchange; a NetDial that
// notes when the client shuts and closes its transport; and an observer
// that keeps the CloseInfo. scCheck compares the three.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// scSrvCode is the code of the server's own CLOSE: no client scenario
// closes with it, so a client CLOSE carrying it answers the server's.
const scSrvCode = 4001

// scPlan is what the server does after its 101.
type scPlan struct {
	closeAfter time.Duration // <0: never sends a CLOSE of its own
	data       bool          // sends small text messages until it closes
	hold       time.Duration // how long TCP stays open after a clean exchange
}

// scWire is what the server saw of the client.
type scWire struct {
	mu          sync.Mutex
	closes      int // CLOSE frames
	afterClose  int // frames after the first CLOSE
	dataFrames  int
	code        frames.CloseCode // of the first CLOSE
	reason      string
	srvSent     bool      // the server's CLOSE (its own or an echo) went out
	srvOwnFirst bool      // the server's own 4001 went out before the client's CLOSE arrived
	readEnd     error     // how reading the client ended
	readEndAt   time.Time // when
	srvCloseAt  time.Time // when the server closed TCP (zero: it did not before reading ended)
	clean       bool      // both CLOSEs were exchanged
}

// scServer starts a server that follows the plans it receives, one per
// connection, and sends what it saw on the returned channel.
func scServer(t *testing.T, plans <-chan scPlan) (string, <-chan *scWire) {
	t.Helper()
	out := make(chan *scWire, 1)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		plan := <-plans
		w := &scWire{}
		defer func() { out <- w }()
		var wmu sync.Mutex
		write := func(b []byte) { wmu.Lock(); _, _ = conn.Write(b); wmu.Unlock() }
		if _, err := conn.Write([]byte(switchAnswer(req, ""))); err != nil {
			return
		}
		gotClose := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			for {
				f, err := readWireFrame(br)
				if err != nil {
					w.mu.Lock()
					w.readEnd, w.readEndAt = err, time.Now()
					w.mu.Unlock()
					return
				}
				w.mu.Lock()
				if w.closes > 0 {
					w.afterClose++
				}
				if f.h.Op == frames.OpClose {
					w.closes++
					if w.closes == 1 {
						w.code, w.reason, _ = frames.ParseClose(f.p)
						echo := !w.srvSent
						w.srvSent = true
						w.mu.Unlock()
						if echo {
							write(advClose(uint16(w.code), ""))
						}
						close(gotClose)
						continue
					}
				} else if !f.h.Op.IsControl() {
					w.dataFrames++
				}
				w.mu.Unlock()
			}
		}()
		stopData := make(chan struct{})
		var dataWG sync.WaitGroup
		if plan.data {
			dataWG.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stopData:
						return
					case <-time.After(100 * time.Microsecond):
					}
					w.mu.Lock()
					sent := w.srvSent
					if !sent {
						wmu.Lock()
					}
					w.mu.Unlock()
					if sent {
						return
					}
					_, _ = conn.Write(advFrame(0x81, fmt.Appendf(nil, "m%d", i)))
					wmu.Unlock()
				}
			})
		}
		if plan.closeAfter >= 0 {
			select {
			case <-time.After(plan.closeAfter):
			case <-gotClose:
			case <-readDone:
			}
			w.mu.Lock()
			if !w.srvSent {
				w.srvSent, w.srvOwnFirst = true, true
				wmu.Lock()
				_, _ = conn.Write(advClose(scSrvCode, "srv"))
				wmu.Unlock()
			}
			w.mu.Unlock()
		}
		select {
		case <-gotClose:
		case <-readDone:
		case <-time.After(8 * time.Second):
		}
		select {
		case <-gotClose:
			w.mu.Lock()
			w.clean = w.srvSent
			w.mu.Unlock()
			// The client may shut its side at once (the reader sees EOF),
			// but must keep TCP open until the server closes it.
			time.Sleep(plan.hold)
			close(stopData)
			dataWG.Wait()
			w.mu.Lock()
			if w.readEnd == nil || isHalfClose(w.readEnd) {
				w.srvCloseAt = time.Now()
			}
			w.mu.Unlock()
			_ = conn.Close()
		default:
			close(stopData)
			dataWG.Wait()
		}
		<-readDone
	})
	return addr, out
}

// isHalfClose reports whether err is the EOF of a client that shut its
// sending side: it may still be reading.
func isHalfClose(err error) bool {
	return err != nil && errors.Is(err, errEOF)
}

// scConn notes when the client shut its sending side and closed its
// transport.
type scConn struct {
	*net.TCPConn
	mu        sync.Mutex
	closedAt  time.Time
	shutAt    time.Time
	closeCall int
}

func (c *scConn) Close() error {
	c.mu.Lock()
	if c.closedAt.IsZero() {
		c.closedAt = time.Now()
	}
	c.closeCall++
	c.mu.Unlock()
	return c.TCPConn.Close()
}

func (c *scConn) CloseWrite() error {
	c.mu.Lock()
	if c.shutAt.IsZero() {
		c.shutAt = time.Now()
	}
	c.mu.Unlock()
	return c.TCPConn.CloseWrite()
}

// scObserver keeps the CloseInfo of its one connection.
type scObserver struct {
	mu     sync.Mutex
	n      int
	info   wsconn.CloseInfo
	closed int
}

func (o *scObserver) Upgraded(*http.Request, wsconn.UpgradeResult) {}
func (o *scObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver {
	o.mu.Lock()
	o.n++
	o.mu.Unlock()
	return o
}
func (o *scObserver) Received(messages.Kind, int64)   {}
func (o *scObserver) Sent(messages.Kind, int64)       {}
func (o *scObserver) PingRTT(time.Duration)           {}
func (o *scObserver) ProtocolError(*frames.Violation) {}
func (o *scObserver) Closed(info wsconn.CloseInfo) {
	o.mu.Lock()
	o.info = info
	o.closed++
	o.mu.Unlock()
}

// scCheck compares the wire, the transport's calls and the CloseInfo,
// and returns what is wrong, or "".
func scCheck(w *scWire, c *scConn, o *scObserver) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []string
	add := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if w.closes == 0 {
		add("the client ended TCP (%v) without a CLOSE frame", w.readEnd)
	}
	if w.closes > 1 {
		add("the client sent %d CLOSE frames", w.closes)
	}
	if w.afterClose > 0 {
		add("the client sent %d frames after its CLOSE", w.afterClose)
	}
	if w.clean && !w.srvCloseAt.IsZero() && !c.closedAt.IsZero() && c.closedAt.Before(w.srvCloseAt) {
		add("clean exchange, but the client closed TCP %v before the server did", w.srvCloseAt.Sub(c.closedAt))
	}
	if w.clean && w.srvCloseAt.IsZero() && !errors.Is(w.readEnd, errEOF) {
		add("clean exchange, but the client's transport ended with %v before the server closed", w.readEnd)
	}
	if o.closed != 1 {
		add("Closed called %d times", o.closed)
	} else if w.closes > 0 {
		if o.info.Code != w.code || o.info.Reason != w.reason {
			add("CloseInfo %d %q (by %v), the wire %d %q", o.info.Code, o.info.Reason, o.info.By, w.code, w.reason)
		}
		if peer := o.info.By == wsconn.SidePeer; peer != (w.code == scSrvCode) {
			add("CloseInfo by %v, but the client's CLOSE on the wire is %d (the server's own is %d, sent first: %v)", o.info.By, w.code, scSrvCode, w.srvOwnFirst)
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return fmt.Sprint(errs)
}

var errEOF = io.EOF

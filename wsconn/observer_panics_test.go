package wsconn_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// rtpAlwaysPanics is a ConnObserver every method of which panics.
type rtpAlwaysPanics struct{}

func (rtpAlwaysPanics) Received(messages.Kind, int64)   { panic("boom Received") }
func (rtpAlwaysPanics) Sent(messages.Kind, int64)       { panic("boom Sent") }
func (rtpAlwaysPanics) PingRTT(time.Duration)           { panic("boom PingRTT") }
func (rtpAlwaysPanics) ProtocolError(*frames.Violation) { panic("boom ProtocolError") }
func (rtpAlwaysPanics) Closed(wsconn.CloseInfo)         { panic("boom Closed") }

// rtpNext returns the next frame that is not a PING, answering PINGs.
func rtpNext(c *rawClient) (frames.Header, []byte) {
	c.t.Helper()
	for {
		h, p := c.read()
		if h.Op != frames.OpPing {
			return h, p
		}
		c.frame(frames.OpPong, true, p)
	}
}

// docs/closing.md: "A panic in an observer's method (ConnObserver, topics'
// OnDrop) is recovered and logged, and changes nothing." With every
// ConnObserver method panicking, on every path that calls one (Received
// in the loop, Sent while a write holds the message lock, PingRTT in the
// PONG path, ProtocolError inside violation() on the background reader
// behind kept data, Closed after the handler): messages keep being echoed
// (no lock is left held), the violation still closes with its code, the
// handler's loop ends with it, and the connection finishes (TCP closed,
// the handler returned) with every panic logged.
func TestCornerEveryObserverMethodPanicking(t *testing.T) {
	var log testlog.Buffer
	errc := make(chan error, 1)
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if m.Text() == "busy" {
				time.Sleep(rtaBusy)
				continue
			}
			if err := out.WriteMessage(ctx, m); err != nil {
				continue // "kept" comes after the 1002: the loop ends with it
			}
		}
		errc <- in.Err()
		return in.Err()
	}
	cfg := &wsconn.Config{
		Observer:     rtpObserver{},
		PingInterval: 40 * time.Millisecond,
		CloseTimeout: time.Second,
		Logger:       slog.New(slog.NewTextHandler(&log, nil)),
	}
	url, _ := testServer(t, cfg, h)
	c := dialRaw(t, url)
	for _, s := range []string{"a", "b", "c"} {
		c.frame(frames.OpText, true, []byte(s))
		if h, p := rtpNext(c); h.Op != frames.OpText || string(p) != s {
			t.Fatalf("echo of %q: got %v %q", s, h.Op, p)
		}
	}
	// A keep-alive PING, answered: PingRTT panics in the PONG path.
	if h, p := c.read(); h.Op != frames.OpPing {
		t.Fatalf("got %v, want the keep-alive PING", h.Op)
	} else {
		c.frame(frames.OpPong, true, p)
	}
	c.frame(frames.OpText, true, []byte("d"))
	if h, p := rtpNext(c); h.Op != frames.OpText || string(p) != "d" {
		t.Fatalf("echo after the PONG: got %v %q", h.Op, p)
	}
	c.frame(frames.OpText, true, []byte("busy"))
	time.Sleep(60 * time.Millisecond)
	c.write(append(maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("kept")),
		maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...))
	for {
		h, p := rtpNext(c)
		if h.Op != frames.OpClose {
			continue
		}
		if code, _, _ := frames.ParseClose(p); code != frames.CloseProtocolError {
			t.Fatalf("CLOSE %d, want 1002", code)
		}
		break
	}
	if err := waitWithin(t, errc, 3*time.Second, "the loop"); wsconn.CloseStatus(err) != frames.CloseProtocolError {
		t.Fatalf("in.Err() = %v, want 1002", err)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseProtocolError, ""))
	_ = c.nc.(*net.TCPConn).CloseWrite() // the server drains until the peer closes
	c.expectEOF()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		l := log.String()
		missing := ""
		for _, m := range []string{"Received", "Sent", "PingRTT", "ProtocolError", "Closed"} {
			if !strings.Contains(l, "boom "+m) {
				missing = m
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the panic in %s was not logged; log:\n%.2000s", missing, l)
		}
	}
}

// rtpObserver hands out rtpAlwaysPanics.
type rtpObserver struct{ wsconn.NopObserver }

func (rtpObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return rtpAlwaysPanics{} }

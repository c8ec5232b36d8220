package wsconn_test

// The promises of docs/closing.md that other tests leave open, over
// loopback sockets with raw frames: the code and reason each ending sends
// (the handler's odd return values included), that the first event fixes
// them, what Inbound.Err reports, the CLOSE that goes out ahead of an open
// Writer and the one that waits for it, and how the TCP connection ends.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// readClosePayload reads frames until the server's CLOSE and returns its
// raw payload.
func (c *rawClient) readClosePayload() []byte {
	c.t.Helper()
	for {
		if h, p := c.read(); h.Op == frames.OpClose {
			return p
		}
	}
}

// expectSilentEOF checks that the server closes the TCP connection without
// sending another byte.
func (c *rawClient) expectSilentEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c.br)
	if err != nil || n != 0 {
		c.t.Fatalf("waiting for the server to close: %d more bytes, %v", n, err)
	}
}

// TestPromiseHandlerReturnValuesGiveTheirCodes: the rows of the close table
// for what a handler returns, with their reasons and log lines, and the
// rules for codes and reasons that cannot go on the wire.
func TestPromiseHandlerReturnValuesGiveTheirCodes(t *testing.T) {
	long := strings.Repeat("a", 121) + "€ and more" // 123 bytes fall inside "€"
	exact := strings.Repeat("a", 121) + "é" + "xyz" // 123 bytes end after "é"
	tests := []struct {
		name    string
		ret     error
		panics  bool
		payload []byte // the CLOSE frame's payload
		logged  string // the one error line, or none
	}{
		{name: "context.Canceled", ret: fmt.Errorf("query: %w", context.Canceled), payload: closePayload(1000, "")},
		{name: "ErrClosed", ret: fmt.Errorf("send: %w", wsconn.ErrClosed), payload: closePayload(1000, "")},
		{name: "close error", ret: &wsconn.CloseError{Code: wsconn.CloseTryAgainLater, Reason: "busy"}, payload: closePayload(1013, "busy")},
		{name: "other error", ret: errors.New("database down"), payload: closePayload(1011, "internal error"), logged: `msg="handler failed"`},
		{name: "panic", panics: true, payload: closePayload(1011, "internal error"), logged: `msg="handler panicked"`},
		{name: "code 1006", ret: &wsconn.CloseError{Code: 1006, Reason: "x"}, payload: closePayload(1011, "internal error"), logged: `msg="handler closed with a code that cannot be sent"`},
		{name: "code 999", ret: &wsconn.CloseError{Code: 999}, payload: closePayload(1011, "internal error"), logged: `msg="handler closed with a code that cannot be sent"`},
		{name: "code 2999", ret: &wsconn.CloseError{Code: 2999}, payload: closePayload(1011, "internal error"), logged: `msg="handler closed with a code that cannot be sent"`},
		{name: "code 5000", ret: &wsconn.CloseError{Code: 5000}, payload: closePayload(1011, "internal error"), logged: `msg="handler closed with a code that cannot be sent"`},
		{name: "code 1005", ret: &wsconn.CloseError{Code: 1005}, payload: []byte{}},
		{name: "code 1005 with a reason", ret: &wsconn.CloseError{Code: 1005, Reason: "x"}, payload: closePayload(1011, ""), logged: `msg="handler closed with a reason that cannot be sent"`},
		{name: "reason not UTF-8", ret: &wsconn.CloseError{Code: 4000, Reason: "bad \xff"}, payload: closePayload(1011, ""), logged: `msg="handler closed with a reason that cannot be sent"`},
		{name: "long reason cut inside a rune", ret: &wsconn.CloseError{Code: 4000, Reason: long}, payload: closePayload(4000, strings.Repeat("a", 121))},
		{name: "long reason cut after a rune", ret: &wsconn.CloseError{Code: 4000, Reason: exact}, payload: closePayload(4000, exact[:123])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			cfg := &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if tt.panics {
					panic("handler boom")
				}
				return tt.ret
			})
			c := dialRaw(t, url)
			if p := c.readClosePayload(); string(p) != string(tt.payload) {
				t.Errorf("CLOSE payload %q, want %q", p, tt.payload)
			}
			c.answerClose(frames.CloseNormal)
			c.expectSilentEOF()
			// Lines are written before the CLOSE goes out.
			out := logs.String()
			switch {
			case tt.logged == "" && out != "":
				t.Errorf("logged:\n%s", out)
			case tt.logged != "" && (strings.Count(out, "msg=") != 1 || !strings.Contains(out, tt.logged)):
				t.Errorf("want one line %s; log:\n%s", tt.logged, out)
			case tt.panics && (!strings.Contains(out, "handler boom") || !strings.Contains(out, "promises_closing_test.go")):
				t.Errorf("the panic line lacks the value or the stack:\n%s", out)
			}
		})
	}
}

// TestPromiseTaskWithAnUnsendableCode: a task's *CloseError whose code
// cannot go on the wire gives 1011 and its own log line.
func TestPromiseTaskWithAnUnsendableCode(t *testing.T) {
	var logs testlog.Buffer
	cfg := &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(context.Context) error { return &wsconn.CloseError{Code: 1015} })
		<-ctx.Done()
		return nil
	})
	c := dialRaw(t, url)
	if reason := c.expectClose(frames.CloseInternalError); reason != "internal error" {
		t.Errorf("reason %q", reason)
	}
	c.answerClose(frames.CloseNormal)
	c.expectSilentEOF()
	if out := logs.String(); strings.Count(out, "msg=") != 1 || !strings.Contains(out, `msg="connection task closed with a code that cannot be sent"`) {
		t.Errorf("log:\n%s", out)
	}
}

// TestPromiseOutCloseChecksItsArguments: out.Close refuses what cannot go
// on the wire and leaves the connection open; once closing has begun it
// returns ErrClosed.
func TestPromiseOutCloseChecksItsArguments(t *testing.T) {
	errs := make(chan []error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		got := []error{
			out.Close(1006, ""),
			out.Close(5000, ""),
			out.Close(1005, "x"),
			out.Close(4000, strings.Repeat("r", 124)),
			out.Close(4000, "\xff"),
			out.WriteText(ctx, "still open"),
			out.Close(4000, "ok"),
			out.Close(4001, "again"),
		}
		errs <- got
		<-ctx.Done()
		return nil
	})
	c := dialRaw(t, url)
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "still open" {
		t.Fatalf("got %v %q", h.Op, p)
	}
	if reason := c.expectClose(4000); reason != "ok" {
		t.Errorf("reason %q", reason)
	}
	c.answerClose(4000)
	c.expectSilentEOF()
	got := waitFor(t, errs, "the handler")
	want := []error{frames.ErrInvalidCloseCode, frames.ErrInvalidCloseCode, frames.ErrInvalidCloseCode,
		frames.ErrCloseReasonTooLong, frames.ErrInvalidCloseReason, nil, nil, wsconn.ErrClosed}
	for i := range want {
		if (want[i] == nil) != (got[i] == nil) || (want[i] != nil && !errors.Is(got[i], want[i])) {
			t.Errorf("call %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// TestPromiseFirstEventFixesTheCode: once closing has begun, what happens
// later (the handler's return value among it) changes neither the code
// nor the reason, and no second CLOSE follows.
func TestPromiseFirstEventFixesTheCode(t *testing.T) {
	tests := []struct {
		name   string
		first  func(c *rawClient) // starts the closing from the peer's side, if set
		task   error              // a task returns it at once, if set
		ret    error              // what the handler returns afterwards
		code   frames.CloseCode
		reason string
	}{{
		name:  "peer's CLOSE, then the handler returns a close error",
		first: func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(4001, "tab closed")) },
		ret:   &wsconn.CloseError{Code: 4999, Reason: "mine"},
		code:  4001, reason: "tab closed",
	}, {
		name: "failed task, then the handler returns nil",
		task: &wsconn.CloseError{Code: 4002, Reason: "feed gone"},
		code: 4002, reason: "feed gone",
	}, {
		name: "violation, then the handler returns an error",
		// A header violation: a write-only handler's background reader
		// judges headers, while payloads wait for a loop.
		first: func(c *rawClient) { c.write([]byte{0x81, 0x02, 'h', 'i'}) },
		ret:   errors.New("ignored"),
		code:  frames.CloseProtocolError, reason: "client frame not masked",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if tt.task != nil {
					_ = s.Go(func(context.Context) error { return tt.task })
				}
				<-ctx.Done()
				return tt.ret
			})
			c := dialRaw(t, url)
			if tt.first != nil {
				tt.first(c)
			}
			if reason := c.expectClose(tt.code); reason != tt.reason {
				t.Errorf("reason %q, want %q", reason, tt.reason)
			}
			if tt.first == nil {
				c.answerClose(tt.code)
			}
			c.expectSilentEOF()
		})
	}
}

// TestPromisePeerHalfCloseGets1000: a peer that stops sending without a
// CLOSE (a TCP half-close) gets 1000 with no reason, and the loop reports
// a 1006 *CloseError wrapping io.EOF.
func TestPromisePeerHalfCloseGets1000(t *testing.T) {
	inErr := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		inErr <- in.Err()
		return in.Err()
	})
	c := dialRaw(t, url)
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if p := c.readClosePayload(); string(p) != string(closePayload(1000, "")) {
		t.Fatalf("CLOSE payload %q, want 1000 with no reason", p)
	}
	c.expectSilentEOF()
	err := waitFor(t, inErr, "the loop")
	if ce, ok := errors.AsType[*wsconn.CloseError](err); !ok || ce.Code != frames.CloseAbnormal || !errors.Is(err, io.EOF) {
		t.Fatalf("in.Err() = %v, want a 1006 *CloseError wrapping io.EOF", err)
	}
}

// TestPromiseCloseNowSendsNothing: s.CloseNow closes the transport without
// a CLOSE frame; loops then report 1006 "closed without handshake"
// wrapping ErrClosed, and writes fail with ErrClosed.
func TestPromiseCloseNowSendsNothing(t *testing.T) {
	type result struct{ inErr, write error }
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.CloseNow()
		for range in.Messages(0) {
		}
		results <- result{in.Err(), out.WriteText(ctx, "too late")}
		return nil
	})
	c := dialRaw(t, url)
	c.expectSilentEOF()
	r := waitFor(t, results, "the handler")
	ce, ok := errors.AsType[*wsconn.CloseError](r.inErr)
	if !ok || ce.Code != frames.CloseAbnormal || ce.Reason != "closed without handshake" || !errors.Is(r.inErr, wsconn.ErrClosed) {
		t.Errorf("in.Err() = %v, want 1006 closed without handshake wrapping ErrClosed", r.inErr)
	}
	if !errors.Is(r.write, wsconn.ErrClosed) {
		t.Errorf("write after CloseNow: %v, want ErrClosed", r.write)
	}
}

// serveWithContext serves each connection with wsconn.Serve, or Start,
// under ctx, as code without the router does. It returns the URL and a
// channel that says when a connection served with Serve is over.
func serveWithContext(t *testing.T, ctx context.Context, start bool, handler handlerFunc) (string, <-chan error) {
	t.Helper()
	cfg := &wsconn.Config{Logger: slog.New(slog.DiscardHandler)}
	served := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		if start {
			if err := wsconn.Start(ctx, u, struct{}{}, handler, cfg); err != nil {
				t.Error(err)
			}
			return
		}
		served <- wsconn.Serve(ctx, u, struct{}{}, handler, cfg)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), served
}

// TestPromiseServeContextEndClosesGoingAway: when the context given to
// Serve or Start ends, the connection closes with 1001 "going away", the
// loop reports that context's cause, and writes fail with ErrClosed
// wrapping it.
func TestPromiseServeContextEndClosesGoingAway(t *testing.T) {
	for _, start := range []bool{false, true} {
		t.Run(map[bool]string{false: "Serve", true: "Start"}[start], func(t *testing.T) {
			deploy := errors.New("deploying")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			type result struct{ inErr, write error }
			results := make(chan result, 1)
			url, served := serveWithContext(t, ctx, start, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				for range in.Messages(0) {
				}
				results <- result{in.Err(), out.WriteText(context.Background(), "too late")}
				return in.Err()
			})
			c := dialRaw(t, url)
			c.frame(frames.OpPing, true, []byte("up?")) // the connection is served
			if h, _ := c.read(); h.Op != frames.OpPong {
				t.Fatalf("got %v, want a PONG", h.Op)
			}
			cancel(deploy)
			if reason := c.expectClose(frames.CloseGoingAway); reason != "going away" {
				t.Errorf("reason %q, want going away", reason)
			}
			c.answerClose(frames.CloseGoingAway)
			c.expectSilentEOF()
			r := waitFor(t, results, "the handler")
			if !errors.Is(r.inErr, deploy) {
				t.Errorf("in.Err() = %v, want the context's cause", r.inErr)
			}
			if !errors.Is(r.write, wsconn.ErrClosed) || !errors.Is(r.write, deploy) {
				t.Errorf("write: %v, want ErrClosed wrapping the context's cause", r.write)
			}
			if !start {
				waitFor(t, served, "Serve to return")
			}
		})
	}
}

// TestPromiseIdleTimeoutIgnoresPingTraffic: PINGs do not keep an idle
// peer's connection open; it closes with 1001 "idle timeout", never
// before IdleTimeout, and the loop's error wraps ErrIdleTimeout.
func TestPromiseIdleTimeoutIgnoresPingTraffic(t *testing.T) {
	const idle = 200 * time.Millisecond
	inErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{IdleTimeout: idle}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		inErr <- in.Err()
		return in.Err()
	})
	start := time.Now()
	c := dialRaw(t, url)
	stop := make(chan struct{})
	pinging := make(chan struct{})
	go func() {
		defer close(pinging)
		var b []byte
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			b = pingFrame(b, i)
			if _, err := c.nc.Write(b); err != nil {
				return
			}
		}
	}()
	reason := c.expectClose(frames.CloseGoingAway)
	elapsed := time.Since(start)
	close(stop)
	<-pinging
	if reason != "idle timeout" {
		t.Errorf("reason %q, want idle timeout", reason)
	}
	if elapsed < idle {
		t.Errorf("closed %v after the connection opened, before IdleTimeout", elapsed)
	}
	if err := waitFor(t, inErr, "the loop"); !errors.Is(err, wsconn.ErrIdleTimeout) || wsconn.CloseStatus(err) != frames.CloseGoingAway {
		t.Errorf("in.Err() = %v, want 1001 wrapping ErrIdleTimeout", err)
	}
}

// TestPromiseLoopsAfterTheEndReturnAtOnce: a loop started after the
// inbound side ended, or after the handler's context ended, yields nothing
// and reports the same error, whatever the iterator.
func TestPromiseLoopsAfterTheEndReturnAtOnce(t *testing.T) {
	t.Run("after a violation", func(t *testing.T) {
		errs := make(chan []error, 1)
		url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			var got []error
			for range in.Messages(0) {
			}
			got = append(got, in.Err())
			for range in.Frames() {
				got = append(got, errors.New("Frames yielded"))
			}
			got = append(got, in.Err())
			for range in.Readers() {
				got = append(got, errors.New("Readers yielded"))
			}
			got = append(got, in.Err())
			errs <- got
			return in.Err()
		})
		c := dialRaw(t, url)
		c.frame(frames.OpText, true, []byte{0xff})
		c.frame(frames.OpText, true, []byte("never read"))
		c.expectClose(frames.CloseInvalidPayload)
		got := waitFor(t, errs, "the loops")
		if len(got) != 3 {
			t.Fatalf("errors %v", got)
		}
		for i, err := range got {
			if err != got[0] || !errors.Is(err, messages.ErrInvalidUTF8) || wsconn.CloseStatus(err) != frames.CloseInvalidPayload {
				t.Errorf("loop %d: %v, want the same 1007 every time", i, err)
			}
		}
	})
	t.Run("after the context ended", func(t *testing.T) {
		errs := make(chan []error, 1)
		url, g := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			<-ctx.Done()
			var got []error
			for range in.Messages(0) {
				got = append(got, errors.New("Messages yielded"))
			}
			got = append(got, in.Err())
			for range in.Frames() {
				got = append(got, errors.New("Frames yielded"))
			}
			got = append(got, in.Err())
			errs <- got
			return nil
		})
		c := dialRaw(t, url)
		c.frame(frames.OpText, true, []byte("kept for a loop"))
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = g.Shutdown(ctx)
		}()
		c.expectClose(frames.CloseGoingAway)
		got := waitFor(t, errs, "the loops")
		c.answerClose(frames.CloseGoingAway)
		waitFor(t, done, "the shutdown")
		if len(got) != 2 || !errors.Is(got[0], wsconn.ErrShutdown) || !errors.Is(got[1], wsconn.ErrShutdown) {
			t.Fatalf("loops after the context ended: %v, want ErrShutdown at once", got)
		}
	})
}

// TestPromiseFailureCloseGoesAheadOfAnOpenWriter: the CLOSE for a peer's
// failure goes out at once, between the fragments of a message a Writer
// still holds; the Writer's next write fails with ErrClosed carrying the
// violation.
func TestPromiseFailureCloseGoesAheadOfAnOpenWriter(t *testing.T) {
	sawClose := make(chan struct{})
	writeErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{FragmentSize: 16}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("0123456789abcdef")) // one fragment out
		<-ctx.Done()
		<-sawClose
		_, err = w.Write([]byte("0123456789abcdef"))
		writeErr <- err
		_ = w.Close()
		return nil
	})
	c := dialRaw(t, url)
	if h, p := c.read(); h.Op != frames.OpText || h.Fin || string(p) != "0123456789abcdef" {
		t.Fatalf("got %v fin=%v %q, want the first fragment", h.Op, h.Fin, p)
	}
	c.write([]byte{0x81, 0x02, 'h', 'i'}) // unmasked
	h, p := c.read()
	close(sawClose)
	if code, _, _ := frames.ParseClose(p); h.Op != frames.OpClose || code != frames.CloseProtocolError {
		t.Fatalf("got %v %q while the Writer was open, want CLOSE 1002 at once", h.Op, p)
	}
	err := waitFor(t, writeErr, "the Writer")
	if !errors.Is(err, wsconn.ErrClosed) || !errors.Is(err, frames.ErrUnmasked) || wsconn.CloseStatus(err) != frames.CloseProtocolError {
		t.Fatalf("Writer after the failure: %v, want ErrClosed with the 1002 violation", err)
	}
	c.expectSilentEOF()
}

// TestPromisePeerCloseEchoWaitsForTheOpenWriter: PING and PONG pass
// between the fragments of an open Writer's message, but the echo of the
// peer's CLOSE waits until the Writer's Close, so the message arrives
// whole.
func TestPromisePeerCloseEchoWaitsForTheOpenWriter(t *testing.T) {
	writerErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{FragmentSize: 16}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, messages.KindBinary)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("0123456789abcdef"))
		<-ctx.Done() // the peer's CLOSE, taken by the background reader
		_, err = w.Write([]byte("tail"))
		writerErr <- errors.Join(err, w.Close())
		return nil
	})
	c := dialRaw(t, url)
	if h, p := c.read(); h.Op != frames.OpBinary || h.Fin || string(p) != "0123456789abcdef" {
		t.Fatalf("got %v fin=%v %q, want the first fragment", h.Op, h.Fin, p)
	}
	c.frame(frames.OpPing, true, []byte("between"))
	if h, p := c.read(); h.Op != frames.OpPong || string(p) != "between" {
		t.Fatalf("got %v %q, want the PONG between fragments", h.Op, p)
	}
	c.frame(frames.OpClose, true, closePayload(4000, "bye"))
	if h, p := c.read(); h.Op != frames.OpContinuation || !h.Fin || string(p) != "tail" {
		t.Fatalf("got %v fin=%v %q, want the message's end before the echo", h.Op, h.Fin, p)
	}
	if reason := c.expectClose(4000); reason != "bye" {
		t.Errorf("echoed reason %q", reason)
	}
	c.expectSilentEOF()
	if err := waitFor(t, writerErr, "the Writer"); err != nil {
		t.Fatalf("the Writer's message, begun before the peer's CLOSE: %v", err)
	}
}

// TestPromiseClosingHandshakeOverTCP: how the TCP connection ends after
// colibri's CLOSE, for each kind of first event.
func TestPromiseClosingHandshakeOverTCP(t *testing.T) {
	returnAtOnce := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil
	}
	t.Run("data before the peer's CLOSE is discarded", func(t *testing.T) {
		url, _ := testServer(t, nil, returnAtOnce)
		c := dialRaw(t, url)
		c.expectClose(frames.CloseNormal)
		for range 3 {
			c.frame(frames.OpText, true, []byte("in flight"))
		}
		c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		c.expectSilentEOF()
	})
	t.Run("a silent peer is cut after CloseTimeout", func(t *testing.T) {
		const closeTimeout = 300 * time.Millisecond
		url, _ := testServer(t, &wsconn.Config{CloseTimeout: closeTimeout}, returnAtOnce)
		c := dialRaw(t, url)
		c.expectClose(frames.CloseNormal)
		start := time.Now()
		c.expectSilentEOF()
		// The server's clock starts as its CLOSE leaves, a little before
		// this one: half the timeout is a safe lower bound.
		if d := time.Since(start); d < closeTimeout/2 {
			t.Fatalf("TCP closed %v after the CLOSE, without waiting for the peer", d)
		}
	})
	t.Run("a keep-alive timeout does not wait", func(t *testing.T) {
		cfg := &wsconn.Config{PingInterval: 40 * time.Millisecond, PongTimeout: 80 * time.Millisecond, CloseTimeout: time.Minute}
		url, _ := testServer(t, cfg, echo)
		c := dialRaw(t, url)
		c.expectClose(frames.CloseGoingAway)
		c.expectSilentEOF() // fails after 5 s, long before CloseTimeout
	})
	t.Run("a violation half-closes and drains", func(t *testing.T) {
		url, _ := testServer(t, &wsconn.Config{CloseTimeout: time.Minute}, echo)
		c := dialRaw(t, url)
		// The violation, then more than the server has read: closing with
		// these unread would reset the connection and could destroy the
		// CLOSE frame in flight.
		junk := append([]byte{0x81, 0x02, 'h', 'i'}, make([]byte, 256<<10)...)
		sent := make(chan error, 1)
		go func() {
			_, err := c.nc.Write(junk)
			sent <- err
		}()
		c.expectClose(frames.CloseProtocolError)
		c.expectSilentEOF() // an EOF, not a reset, while this side is still open
		if err := waitFor(t, sent, "the client's writes"); err != nil {
			t.Fatalf("the server stopped reading before the peer closed: %v", err)
		}
	})
}

// TestPromiseLoopAfterOutCloseEndsWith1006ForASilentPeer: after out.Close
// a loop waits at most CloseTimeout for the peer's CLOSE, then ends with a
// 1006 error.
func TestPromiseLoopAfterOutCloseEndsWith1006ForASilentPeer(t *testing.T) {
	inErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{CloseTimeout: 200 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.Close(4000, "done"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		inErr <- in.Err()
		return nil
	})
	c := dialRaw(t, url)
	c.expectClose(4000) // and never answer
	if err := waitFor(t, inErr, "the loop"); wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("in.Err() = %v, want a 1006 *CloseError", err)
	}
	c.expectSilentEOF()
}

package handshake_test

// canFlush against the ResponseWriter wrappers middleware uses, over a
// real HTTP/2 extended CONNECT.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/h2test"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
)

// rlUnwrapOnly hides every optional interface but Unwrap.
type rlUnwrapOnly struct{ w http.ResponseWriter }

func (u rlUnwrapOnly) Header() http.Header                 { return u.w.Header() }
func (u rlUnwrapOnly) Write(p []byte) (int, error)         { return u.w.Write(p) }
func (u rlUnwrapOnly) WriteHeader(code int)                { u.w.WriteHeader(code) }
func (u rlUnwrapOnly) Unwrap() http.ResponseWriter         { return u.w }
func (u rlFlusher) Flush()                                 { _ = http.NewResponseController(u.w).Flush() }
func (u rlFlushError) FlushError() error                   { return http.NewResponseController(u.w).Flush() }
func (u rlNothing) Header() http.Header                    { return u.w.Header() }
func (u rlNothing) Write(p []byte) (int, error)            { return u.w.Write(p) }
func (u rlNothing) WriteHeader(code int)                   { u.w.WriteHeader(code) }
func (u rlUnwrapOfUnwrap) Unwrap() http.ResponseWriter     { return rlUnwrapOnly{u.w} }
func (u rlUnwrapToFlushError) Unwrap() http.ResponseWriter { return rlFlushError{rlNothing{u.w}} }

// rlFlusher adds Flush (http.Flusher) and nothing else.
type rlFlusher struct{ rlNothing }

// rlFlushError adds FlushError, which http.ResponseController looks for
// before http.Flusher, and nothing else.
type rlFlushError struct{ rlNothing }

// rlNothing is a ResponseWriter and no more.
type rlNothing struct{ w http.ResponseWriter }

type rlUnwrapOfUnwrap struct{ rlNothing }

type rlUnwrapToFlushError struct{ rlNothing }

func rlServeH2(t *testing.T, wrap func(http.ResponseWriter) http.ResponseWriter) (status int, text string) {
	t.Helper()
	done := make(chan struct{})
	srv, ln, pool := h2test.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		u, err := handshake.Accept(wrap(w), r, nil)
		if err != nil {
			return
		}
		_ = ws.WriteFrame(u.Conn, ws.NewTextFrame([]byte("hello")))
		_ = ws.WriteFrame(u.Conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		_, _ = ws.ReadHeader(u.Conn)
		_ = u.Conn.Close()
	}))
	client := h2test.NewClient(pool)
	served := make(chan struct{})
	go func() { _ = srv.ServeTLS(ln, "", ""); close(served) }()
	defer func() {
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		<-served
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, resp, err := client.Dial(ctx, "https://"+ln.Addr().String()+"/ws", nil)
	if resp != nil {
		status = resp.StatusCode
	}
	if err == nil {
		_, p, rerr := s.ReadMessage()
		if rerr != nil {
			t.Errorf("reading the first message: %v", rerr)
		}
		text = string(p)
		_, _ = s.Close(ws.StatusNormalClosure, "")
		s.CloseNow()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return")
	}
	return status, text
}

func TestCornerH2FlushWrappers(t *testing.T) {
	for _, c := range []struct {
		name string
		wrap func(http.ResponseWriter) http.ResponseWriter
		open bool
	}{
		{"plain", func(w http.ResponseWriter) http.ResponseWriter { return w }, true},
		{"Unwrap only", func(w http.ResponseWriter) http.ResponseWriter { return rlUnwrapOnly{w} }, true},
		{"Unwrap of Unwrap", func(w http.ResponseWriter) http.ResponseWriter { return rlUnwrapOfUnwrap{rlNothing{w}} }, true},
		{"Flusher", func(w http.ResponseWriter) http.ResponseWriter { return rlFlusher{rlNothing{w}} }, true},
		{"nothing", func(w http.ResponseWriter) http.ResponseWriter { return rlNothing{w} }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, text := rlServeH2(t, c.wrap)
			if c.open && (status != http.StatusOK || text != "hello") {
				t.Errorf("answered %d, read %q; want 200 and an open WebSocket", status, text)
			}
			if !c.open && status != http.StatusInternalServerError {
				t.Errorf("answered %d, want 500", status)
			}
		})
	}
}

// http.ResponseController.Flush calls FlushError() error first, then
// Flush, then Unwrap; canFlush knows Flusher and Unwrap only. A wrapper
// that offers FlushError (the form ResponseController documents for
// writers whose flush can fail) flushes fine but gets 500.
func TestCornerH2FlushErrorWrapper(t *testing.T) {
	for _, c := range []struct {
		name string
		wrap func(http.ResponseWriter) http.ResponseWriter
	}{
		{"FlushError", func(w http.ResponseWriter) http.ResponseWriter { return rlFlushError{rlNothing{w}} }},
		{"Unwrap to FlushError", func(w http.ResponseWriter) http.ResponseWriter { return rlUnwrapToFlushError{rlNothing{w}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := http.NewResponseController(c.wrap(httpRecorderFlushable{})).Flush(); err != nil {
				t.Fatalf("ResponseController cannot flush the wrapper: %v", err)
			}
			status, text := rlServeH2(t, c.wrap)
			if status != http.StatusOK || text != "hello" {
				t.Errorf("answered %d, read %q; want 200 and an open WebSocket", status, text)
			}
		})
	}
}

// httpRecorderFlushable is a ResponseWriter that can flush.
type httpRecorderFlushable struct{}

func (httpRecorderFlushable) Header() http.Header         { return http.Header{} }
func (httpRecorderFlushable) Write(p []byte) (int, error) { return len(p), nil }
func (httpRecorderFlushable) WriteHeader(int)             {}
func (httpRecorderFlushable) Flush()                      {}

package middleware

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// plainWriter is a ResponseWriter with no optional interfaces.
type plainWriter struct {
	header http.Header
	codes  []int
	body   strings.Builder
}

func newPlainWriter() *plainWriter { return &plainWriter{header: http.Header{}} }

func (w *plainWriter) Header() http.Header         { return w.header }
func (w *plainWriter) WriteHeader(code int)        { w.codes = append(w.codes, code) }
func (w *plainWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

// readFromWriter is a plainWriter whose ReadFrom says it was used.
type readFromWriter struct {
	*plainWriter
	used bool
}

func (w *readFromWriter) ReadFrom(src io.Reader) (int64, error) {
	w.used = true
	return io.Copy(&w.body, src)
}

// unwrapOnly wraps a writer and offers nothing but Unwrap.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestRecorderNothingWritten(t *testing.T) {
	rec := newRecorder(httptest.NewRecorder())
	if rec.Status() != 0 || rec.WroteHeader() || rec.BytesWritten() != 0 || rec.Hijacked() {
		t.Errorf("fresh recorder: status %d, wrote header %v, bytes %d, hijacked %v",
			rec.Status(), rec.WroteHeader(), rec.BytesWritten(), rec.Hijacked())
	}
}

func TestRecorderWriteMeans200(t *testing.T) {
	inner := httptest.NewRecorder()
	rec := newRecorder(inner)
	rec.Header().Set("X-Test", "1")
	n, err := rec.Write([]byte("hello"))
	if n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	_, _ = rec.Write([]byte(", world"))
	if rec.Status() != http.StatusOK || !rec.WroteHeader() || rec.BytesWritten() != 12 {
		t.Errorf("status %d, wrote header %v, bytes %d; want 200, true, 12",
			rec.Status(), rec.WroteHeader(), rec.BytesWritten())
	}
	if inner.Code != http.StatusOK || inner.Body.String() != "hello, world" || inner.Header().Get("X-Test") != "1" {
		t.Errorf("inner got %d %q %v", inner.Code, inner.Body, inner.Header())
	}
}

func TestRecorderFirstStatusWins(t *testing.T) {
	inner := newPlainWriter()
	rec := newRecorder(inner)
	rec.WriteHeader(http.StatusNotFound)
	rec.WriteHeader(http.StatusInternalServerError)
	if rec.Status() != http.StatusNotFound {
		t.Errorf("status %d, want 404", rec.Status())
	}
	if len(inner.codes) != 2 {
		t.Errorf("inner saw %v, want both codes passed on", inner.codes)
	}
}

func TestRecorderInformationalNotRecorded(t *testing.T) {
	inner := newPlainWriter()
	rec := newRecorder(inner)
	rec.WriteHeader(http.StatusEarlyHints)
	if rec.WroteHeader() || rec.Status() != 0 {
		t.Fatalf("after 103: wrote header %v, status %d", rec.WroteHeader(), rec.Status())
	}
	rec.WriteHeader(http.StatusNoContent)
	if rec.Status() != http.StatusNoContent {
		t.Errorf("status %d, want 204", rec.Status())
	}
	if want := []int{103, 204}; len(inner.codes) != 2 || inner.codes[0] != want[0] || inner.codes[1] != want[1] {
		t.Errorf("inner saw %v, want %v", inner.codes, want)
	}
}

func TestRecorderSwitchingProtocolsRecorded(t *testing.T) {
	rec := newRecorder(newPlainWriter())
	rec.WriteHeader(http.StatusSwitchingProtocols)
	if !rec.WroteHeader() || rec.Status() != http.StatusSwitchingProtocols {
		t.Errorf("wrote header %v, status %d; want true, 101", rec.WroteHeader(), rec.Status())
	}
}

func TestRecorderUnwrap(t *testing.T) {
	inner := httptest.NewRecorder()
	if got := newRecorder(inner).Unwrap(); got != inner {
		t.Errorf("Unwrap = %v, want the wrapped writer", got)
	}
}

func TestRecorderFlushThroughResponseController(t *testing.T) {
	inner := httptest.NewRecorder()
	rec := newRecorder(inner)
	if err := http.NewResponseController(rec).Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if !inner.Flushed {
		t.Error("inner writer was not flushed")
	}
	if !rec.WroteHeader() || rec.Status() != http.StatusOK {
		t.Errorf("after flush: wrote header %v, status %d; want true, 200", rec.WroteHeader(), rec.Status())
	}
}

func TestRecorderFlusherInterface(t *testing.T) {
	inner := httptest.NewRecorder()
	var w http.ResponseWriter = newRecorder(unwrapOnly{inner})
	f, ok := w.(http.Flusher)
	if !ok {
		t.Fatal("recorder is not an http.Flusher")
	}
	f.Flush()
	if !inner.Flushed {
		t.Error("Flush did not reach the writer under an Unwrap-only wrapper")
	}
}

func TestRecorderFlushNotSupported(t *testing.T) {
	rec := newRecorder(newPlainWriter())
	err := http.NewResponseController(rec).Flush()
	if !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Flush error = %v, want ErrNotSupported", err)
	}
	rec.Flush() // must not panic
	if rec.WroteHeader() {
		t.Error("a flush that could not happen marked the header written")
	}
}

func TestRecorderReadFromUsesWrappedReadFrom(t *testing.T) {
	inner := &readFromWriter{plainWriter: newPlainWriter()}
	rec := newRecorder(inner)
	// A reader without WriteTo, so that io.Copy asks rec to ReadFrom it.
	n, err := io.Copy(rec, struct{ io.Reader }{strings.NewReader("payload")})
	if n != 7 || err != nil {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if !inner.used {
		t.Error("the wrapped writer's ReadFrom was not used")
	}
	if rec.BytesWritten() != 7 || rec.Status() != http.StatusOK || inner.body.String() != "payload" {
		t.Errorf("bytes %d, status %d, body %q", rec.BytesWritten(), rec.Status(), inner.body.String())
	}
}

func TestRecorderReadFromFallback(t *testing.T) {
	inner := newPlainWriter()
	rec := newRecorder(inner)
	// A LimitReader has no WriteTo, so the copy goes through ReadFrom.
	n, err := rec.ReadFrom(io.LimitReader(strings.NewReader("abcdefgh"), 5))
	if n != 5 || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if rec.BytesWritten() != 5 || inner.body.String() != "abcde" {
		t.Errorf("bytes %d, body %q", rec.BytesWritten(), inner.body.String())
	}
}

func TestRecorderHijackNotSupported(t *testing.T) {
	rec := newRecorder(httptest.NewRecorder())
	_, _, err := http.NewResponseController(rec).Hijack()
	if !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack error = %v, want ErrNotSupported", err)
	}
	if rec.Hijacked() {
		t.Error("Hijacked after a failed hijack")
	}
}

// TestRecorderOnRealServer checks, on a real connection, that deadlines
// reach the server's writer through Unwrap and that a handler can hijack
// through the recorder, both with http.ResponseController and with the
// http.Hijacker assertion that older third-party code uses.
func TestRecorderOnRealServer(t *testing.T) {
	for _, how := range []string{"controller", "assertion"} {
		t.Run(how, func(t *testing.T) {
			type result struct {
				deadlineErr error
				hijackErr   error
				hijacked    bool
			}
			results := make(chan result, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := newRecorder(w)
				var res result
				res.deadlineErr = http.NewResponseController(rec).SetWriteDeadline(time.Now().Add(time.Minute))
				var conn net.Conn
				var brw *bufio.ReadWriter
				if how == "controller" {
					conn, brw, res.hijackErr = http.NewResponseController(rec).Hijack()
				} else {
					conn, brw, res.hijackErr = any(rec).(http.Hijacker).Hijack()
				}
				res.hijacked = rec.Hijacked()
				results <- res
				if res.hijackErr != nil {
					return
				}
				defer conn.Close()
				_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
				_ = brw.Flush()
			}))
			defer srv.Close()

			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			res := <-results
			if res.deadlineErr != nil {
				t.Errorf("SetWriteDeadline through Unwrap: %v", res.deadlineErr)
			}
			if res.hijackErr != nil || !res.hijacked {
				t.Errorf("Hijack: err %v, Hijacked %v", res.hijackErr, res.hijacked)
			}
			if string(body) != "hijacked" {
				t.Errorf("client read %q, want the bytes written on the hijacked connection", body)
			}
		})
	}
}

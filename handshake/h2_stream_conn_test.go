package handshake

// Review of streamConn, the net.Conn over an HTTP/2 stream, against the
// net.Conn rules its doc promises to keep (docs/http2.md "The transport"):
// a read deadline wakes a blocked Read with a timeout and loses nothing,
// Close wakes everything and later calls fail with net.ErrClosed.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// rvStreamWriter is a ResponseWriter that flushes and records what it
// was given.
type rvStreamWriter struct {
	mu      sync.Mutex
	header  http.Header
	written []byte
	status  int
}

func (w *rvStreamWriter) Header() http.Header { return w.header }
func (w *rvStreamWriter) WriteHeader(s int) {
	w.mu.Lock()
	w.status = s
	w.mu.Unlock()
}
func (w *rvStreamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.written = append(w.written, p...)
	return len(p), nil
}
func (w *rvStreamWriter) Flush() {}

func (w *rvStreamWriter) bytes() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.written)
}

// rvStream returns a streamConn over a request whose body is the read end
// of a pipe, the pipe's write end, and the writer.
func rvStream(t *testing.T) (*streamConn, *io.PipeWriter, *rvStreamWriter) {
	t.Helper()
	pr, pw := io.Pipe()
	r := httptest.NewRequest(http.MethodConnect, "https://example.com/ws", pr)
	r.RemoteAddr = "192.0.2.7:4321"
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
	w := &rvStreamWriter{header: http.Header{}}
	s := newStreamConn(w, r)
	t.Cleanup(func() { _ = pw.Close(); _ = s.Close() })
	return s, pw, w
}

// rvRead runs one Read in the background.
func rvRead(s *streamConn, n int) <-chan rvReadResult {
	ch := make(chan rvReadResult, 1)
	go func() {
		p := make([]byte, n)
		k, err := s.Read(p)
		ch <- rvReadResult{string(p[:k]), err}
	}()
	return ch
}

type rvReadResult struct {
	data string
	err  error
}

func rvWait(t *testing.T, ch <-chan rvReadResult) rvReadResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * time.Second):
		t.Fatal("Read still blocked")
		return rvReadResult{}
	}
}

// A deadline set while Read waits wakes it with a net.Error whose
// Timeout() is true (os.ErrDeadlineExceeded, as net.Conn); the bytes the
// pump was already asked for are not lost: once the deadline is cleared,
// the next Read returns them, and the ones after go on in order.
func TestH2StreamReadDeadlineLosesNothing(t *testing.T) {
	s, pw, _ := rvStream(t)
	ch := rvRead(s, 16)
	time.Sleep(10 * time.Millisecond) // let the Read ask the pump
	if err := s.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	r := rvWait(t, ch)
	var ne net.Error
	if !errors.Is(r.err, os.ErrDeadlineExceeded) || !errors.As(r.err, &ne) || !ne.Timeout() || r.data != "" {
		t.Fatalf("woken Read: %q %v, want a timeout", r.data, r.err)
	}
	// The pump is still blocked in the body's Read: feed it.
	go func() { _, _ = pw.Write([]byte("abcdefgh")) }()
	// With the deadline still past, Read keeps failing at once.
	if _, err := s.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with a past deadline: %v", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	var got string
	for len(got) < 8 {
		r := rvWait(t, rvRead(s, 3))
		if r.err != nil {
			t.Fatalf("after clearing the deadline: %q %v", got, r.err)
		}
		got += r.data
	}
	if got != "abcdefgh" {
		t.Fatalf("read %q, want abcdefgh", got)
	}
	// A future deadline set while Read waits bounds it too.
	ch = rvRead(s, 4)
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if r := rvWait(t, ch); !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with a deadline set while waiting: %q %v", r.data, r.err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("Read timed out after %v, before its deadline", d)
	}
}

// The body's end reaches Read after the bytes before it (io.EOF, as a
// TCP connection's FIN), and stays.
func TestH2StreamEOFAfterData(t *testing.T) {
	s, pw, _ := rvStream(t)
	go func() {
		_, _ = pw.Write([]byte("xyz"))
		_ = pw.Close()
	}()
	var got string
	for {
		r := rvWait(t, rvRead(s, 2))
		got += r.data
		if r.err != nil {
			if r.err != io.EOF || got != "xyz" {
				t.Fatalf("read %q then %v, want xyz then EOF", got, r.err)
			}
			break
		}
	}
	if r := rvWait(t, rvRead(s, 2)); r.err != io.EOF {
		t.Fatalf("Read after EOF: %v", r.err)
	}
}

// Close wakes a blocked Read with net.ErrClosed; later Reads, Writes and
// deadlines behave as on a closed net.Conn (net.ErrClosed), and a second
// Close reports net.ErrClosed. Nothing is written after Close.
func TestH2StreamCloseWakesAndFails(t *testing.T) {
	s, _, w := rvStream(t)
	if _, err := s.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	ch := rvRead(s, 8)
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := rvWait(t, ch); !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Read woken by Close: %v, want net.ErrClosed", r.err)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if n, err := s.Write([]byte("after")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %d %v", n, err)
	}
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if got := w.bytes(); got != "before" {
		t.Fatalf("written %q", got)
	}
}

// A write deadline already past fails the Write before anything is sent,
// with a timeout; one in the future lets it through.
func TestH2StreamPastWriteDeadline(t *testing.T) {
	s, _, w := rvStream(t)
	_ = s.SetWriteDeadline(time.Now().Add(-time.Millisecond))
	n, err := s.Write([]byte("late"))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write past its deadline: %d %v, want 0 and a timeout", n, err)
	}
	_ = s.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := s.Write([]byte("ok")); err != nil {
		t.Fatalf("Write before its deadline: %v", err)
	}
	if got := w.bytes(); got != "ok" {
		t.Fatalf("written %q, want ok", got)
	}
}

// LocalAddr and RemoteAddr are the HTTP/2 connection's, as *net.TCPAddr
// when net/http gave them so.
func TestH2StreamAddrs(t *testing.T) {
	s, _, _ := rvStream(t)
	if a, ok := s.RemoteAddr().(*net.TCPAddr); !ok || a.String() != "192.0.2.7:4321" {
		t.Fatalf("RemoteAddr %#v", s.RemoteAddr())
	}
	if a, ok := s.LocalAddr().(*net.TCPAddr); !ok || a.String() != "127.0.0.1:443" {
		t.Fatalf("LocalAddr %#v", s.LocalAddr())
	}
}

// Read and Close racing: Read returns (data, EOF or ErrClosed), never
// hangs, and the race detector has nothing to say.
func TestH2StreamReadCloseRace(t *testing.T) {
	for range 50 {
		s, pw, _ := rvStream(t)
		go func() { _, _ = pw.Write([]byte("0123456789")) }()
		ch := rvRead(s, 4)
		go func() { _ = s.Close() }()
		r := rvWait(t, ch)
		if r.err != nil && !errors.Is(r.err, net.ErrClosed) && r.err != io.EOF && !errors.Is(r.err, io.ErrClosedPipe) {
			t.Fatalf("Read racing Close: %q %v", r.data, r.err)
		}
	}
}

// rvBlockingWriter is a ResponseWriter whose Write blocks until its
// stream is reset with a past write deadline, as net/http's does for a
// peer that stopped reading; it records the deadlines it was given.
type rvBlockingWriter struct {
	rvStreamWriter
	block chan struct{} // Write waits on it while not nil
	reset chan struct{} // closed by the first past deadline
	once  sync.Once
	dls   []time.Time
}

func (w *rvBlockingWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.dls = append(w.dls, t)
	w.mu.Unlock()
	if !t.IsZero() && !t.After(time.Now()) {
		w.once.Do(func() { close(w.reset) })
	}
	return nil
}

func (w *rvBlockingWriter) SetReadDeadline(time.Time) error { return nil }

func (w *rvBlockingWriter) Write(p []byte) (int, error) {
	if w.block != nil {
		select {
		case <-w.block:
		case <-w.reset:
			return 0, errors.New("stream reset")
		}
	}
	return w.rvStreamWriter.Write(p)
}

func (w *rvBlockingWriter) resets() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, t := range w.dls {
		if !t.IsZero() && !t.After(time.Now()) {
			n++
		}
	}
	return n
}

func rvBlockingStream(t *testing.T) (*streamConn, *rvBlockingWriter) {
	t.Helper()
	pr, pw := io.Pipe()
	r := httptest.NewRequest(http.MethodConnect, "https://example.com/ws", pr)
	w := &rvBlockingWriter{rvStreamWriter: rvStreamWriter{header: http.Header{}}, reset: make(chan struct{})}
	s := newStreamConn(w, r)
	t.Cleanup(func() { _ = pw.Close(); _ = s.Close() })
	return s, w
}

// http2.md "The transport": "a write deadline runs a timer only while a
// write is in progress; if it fires, the stream is reset, which ends that
// write with a timeout". A deadline that passes between writes resets
// nothing (the next Write fails at once instead); one that passes during
// a blocked Write resets the stream and the Write reports a timeout.
func TestH2StreamWriteTimerOnlyWhileWriting(t *testing.T) {
	s, w := rvBlockingStream(t)
	_ = s.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	time.Sleep(60 * time.Millisecond)
	if n := w.resets(); n != 0 {
		t.Fatalf("a deadline passing with no write in progress reset the stream (%d times)", n)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write after its deadline passed: %v", err)
	}
	if n := w.resets(); n != 0 {
		t.Fatalf("a Write refused for its past deadline reset the stream")
	}
	// A blocked write past its deadline.
	w.block = make(chan struct{})
	_ = s.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := s.Write([]byte("stuck"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked Write past its deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 25*time.Millisecond || d > 2*time.Second {
		t.Fatalf("blocked Write ended after %v, want about 30ms", d)
	}
	if n := w.resets(); n != 1 {
		t.Fatalf("stream reset %d times, want once", n)
	}
	// Once reset, the stream takes no more writes, whatever the deadline.
	_ = s.SetWriteDeadline(time.Time{})
	if _, err := s.Write([]byte("after")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write after the reset: %v", err)
	}
}

// "A write that is stuck when the connection is torn down is cut off
// with RST_STREAM": Close during a blocked Write resets the stream and
// the Write returns.
func TestH2StreamCloseCutsAStuckWrite(t *testing.T) {
	s, w := rvBlockingStream(t)
	w.block = make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write([]byte("stuck"))
		errc <- err
	}()
	for deadline := time.Now().Add(2 * time.Second); ; {
		s.dlMu.Lock()
		writing := s.writing
		s.dlMu.Unlock()
		if writing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Write never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("stuck Write succeeded after Close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close left the Write stuck")
	}
	if n := w.resets(); n != 1 {
		t.Fatalf("stream reset %d times, want once", n)
	}
}

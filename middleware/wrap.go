package middleware

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
)

// recorder is an [http.ResponseWriter] that passes everything through to
// the writer it wraps and records what went by: the status code, the number
// of body bytes and whether the header was written or the connection
// hijacked. Log uses one.
//
// A recorder keeps the optional interfaces of the writer it wraps working.
// It implements [http.Flusher] and [http.Hijacker], which reach the wrapped
// writer by way of [http.ResponseController] and so through its own Unwrap
// chain too; [io.ReaderFrom], which uses the wrapped writer's ReadFrom when
// it has one; and Unwrap, so that [http.ResponseController] finds deadlines
// and full-duplex support underneath. FlushError and Hijack return an error
// matching [http.ErrNotSupported] when nothing underneath can do it.
//
// Like the writer it wraps, a recorder belongs to the handler serving the
// request and must not be used from other goroutines without
// synchronisation; its accessors are meant to be read after the inner
// handler has returned.
type recorder struct {
	rw          http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	accepted    bool // a colibri router behind it hijacked and answered 101
}

// newRecorder returns a recorder that writes through to w.
func newRecorder(w http.ResponseWriter) *recorder {
	return &recorder{rw: w}
}

// Header returns the wrapped writer's header map.
func (r *recorder) Header() http.Header { return r.rw.Header() }

// WriteHeader records code as the status, unless a status was already
// recorded, and passes it on. Informational codes (1xx other than 101) are
// passed on without being recorded, because net/http lets a handler send
// any number of them before the final response.
func (r *recorder) WriteHeader(code int) {
	// Passed on first: net/http panics on a code outside 100–999 and
	// sends nothing, which must not count as written (Recover answers
	// 500 then).
	r.rw.WriteHeader(code)
	final := code > 199 || code == http.StatusSwitchingProtocols
	if final && !r.wroteHeader && !r.hijacked {
		r.status = code
		r.wroteHeader = true
	}
}

// Write writes p to the wrapped writer and counts the bytes it accepted. As
// in net/http, a Write before WriteHeader means status 200.
func (r *recorder) Write(p []byte) (int, error) {
	r.implicitHeader()
	n, err := r.rw.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom copies src to the response, letting the wrapped writer use its
// own ReadFrom (net/http's may use sendfile) when it has one, and counts the
// bytes copied.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.implicitHeader()
	var n int64
	var err error
	if rf, ok := r.rw.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		// Hide ReadFrom so that io.Copy does not call back into r.
		n, err = io.Copy(struct{ io.Writer }{r.rw}, src)
	}
	r.bytes += n
	return n, err
}

// Flush sends buffered data to the client, if the wrapped writer can flush;
// otherwise it does nothing. FlushError says which.
func (r *recorder) Flush() { _ = r.FlushError() }

// FlushError is Flush that reports failure, including an error matching
// [http.ErrNotSupported] when the wrapped writer cannot flush.
// [http.ResponseController.Flush] calls it.
func (r *recorder) FlushError() error {
	err := http.NewResponseController(r.rw).Flush()
	if !errors.Is(err, http.ErrNotSupported) {
		// Flushing sends the header, with status 200 unless one was set.
		r.implicitHeader()
	}
	return err
}

// Hijack takes over the connection from the wrapped writer, for code that
// speaks its own protocol on it. After a successful Hijack, Hijacked reports
// true and nothing written through r reaches the client any more.
// colibri's router does not need this: it hijacks after the middleware chain
// has returned, on the writer it was given.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(r.rw).Hijack()
	if err == nil {
		r.hijacked = true
	}
	return conn, brw, err
}

// Unwrap returns the wrapped writer, for [http.ResponseController].
func (r *recorder) Unwrap() http.ResponseWriter { return r.rw }

// Status returns the status code of the response, or 0 if nothing was
// written (net/http then sends 200 when the handler returns, and colibri's
// router answers 101 if a ws route accepted an upgrade).
func (r *recorder) Status() int { return r.status }

// BytesWritten returns the number of body bytes the wrapped writer accepted.
func (r *recorder) BytesWritten() int64 { return r.bytes }

// WroteHeader reports whether the response header was sent: by WriteHeader
// with a final status, or implicitly by Write, ReadFrom or Flush.
func (r *recorder) WroteHeader() bool { return r.wroteHeader }

// Hijacked reports whether Hijack succeeded.
func (r *recorder) Hijacked() bool { return r.hijacked }

// WebSocketAccepted is how a colibri router behind the recorder tells it
// that its hijack answered 101 (logctx.Accepted).
func (r *recorder) WebSocketAccepted() { r.accepted = true }

func (r *recorder) implicitHeader() {
	if !r.wroteHeader && !r.hijacked {
		r.status = http.StatusOK
		r.wroteHeader = true
	}
}

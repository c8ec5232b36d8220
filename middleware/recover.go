package middleware

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/colibri-ws/colibri/internal/logctx"
)

// Recover turns a panic in a later handler into one error log line and,
// when nothing has been written yet, a 500 Internal Server Error, so that a
// bug costs one request rather than a connection with no answer.
//
// The log line, at [slog.LevelError] with the message "panic", carries the
// panic value, the stack of the panicking goroutine, the method, the path
// and the request id when there is one. A nil logger means the
// application's, as with [Log]: the app package's Config.Logger, or
// [slog.Default] at the time of the panic outside an app.
//
// A panic with [http.ErrAbortHandler] is passed on untouched: it is how a
// handler asks net/http to abort the response quietly. When the handler had
// already started the response, the status cannot be changed any more:
// Recover logs, then aborts the response the same way, so that the client
// sees it cut off (the connection closed, or the HTTP/2 stream reset)
// rather than a shorter body that looks complete.
//
// A 500 carries the header fields the response had when Recover was
// entered (those set by the middleware in front of it), and the request id
// wherever [RequestID] stands, not those the panicking handler set for a
// response it never finished (a Content-Encoding, a Set-Cookie, the
// Upgrade and Connection fields of a ws route's accepted upgrade, which
// the router must not mistake the 500 for).
//
// Recover sees panics of the request goroutine only: a WebSocket session
// runs after the middleware chain has returned, and colibri recovers panics
// there itself.
func Recover(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := newRecorder(w)
			var before http.Header // nil while the header is empty, the usual case
			if h := w.Header(); len(h) > 0 {
				before = h.Clone()
			}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == any(http.ErrAbortHandler) {
					panic(v)
				}
				l := logger
				if l == nil {
					l = logctx.From(r.Context())
				}
				attrs := []slog.Attr{
					slog.Any("panic", v),
					slog.String("stack", string(debug.Stack())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
				}
				id := requestIDOf(w, r)
				if id != "" {
					attrs = append(attrs, slog.String("request_id", id))
				}
				l.LogAttrs(r.Context(), slog.LevelError, "panic", attrs...)
				if rec.Hijacked() {
					return
				}
				if rec.WroteHeader() {
					panic(http.ErrAbortHandler)
				}
				h := w.Header()
				clear(h)
				for k, v := range before {
					h[k] = v
				}
				if id != "" {
					// RequestID inside Recover: the 500 still names the
					// request its log line names.
					h.Set(RequestIDHeader, id)
				}
				http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

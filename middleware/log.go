package middleware

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/colibri-ws/colibri/internal/logctx"
)

// Log writes one line per request to logger, with the message "request",
// after the rest of the chain has returned. A nil logger means the
// application's: colibri's app package puts its Config.Logger in every
// request's context, and Log finds it there; outside an app, or when the
// app has no Logger, it is [slog.Default] at the time of the request.
//
// The line carries these attributes:
//
//   - method, path: from the request. The query string is left out on
//     purpose, because it may carry a bearer token (see
//     [BearerOptions.QueryParam]) or other secrets.
//   - status: the status the client receives. When the handler wrote
//     nothing this is 200, which net/http sends when the handler returns,
//     or 101 when a ws route accepted an upgrade (200 on HTTP/2, RFC 8441).
//     It is 0 when the handler hijacked the connection itself, or panicked
//     before writing, since Log cannot know what the client got then.
//   - duration: time spent in the rest of the chain. For an upgrade a ws
//     route accepted, this ends at the decision when Log runs in the
//     router's middleware; in front of the router it ends after the 101
//     over HTTP/1.1, and with the WebSocket over HTTP/2, whose stream the
//     router serves inside ServeHTTP (the line is written then too).
//   - bytes: body bytes written.
//   - remote: r.RemoteAddr.
//   - request_id: when RequestID ran, on either side of Log.
//   - upgrade: only for requests that ask for a WebSocket upgrade
//     (Connection holds "upgrade" and Upgrade holds "websocket", or an
//     HTTP/2 extended CONNECT for "websocket"). "accepted" when nothing was
//     written and the response header holds "Upgrade: websocket", which is
//     how a ws route records its decision (or when the handler wrote 101
//     itself, or a 2xx to an HTTP/2 extended CONNECT, which opens the
//     stream as a WebSocket, or when a colibri router behind Log hijacked
//     and answered 101, which it tells Log through the writers' Unwrap
//     chain: a writer between them without Unwrap hides it, and the
//     upgrade is logged "hijacked", status 0); "hijacked" when the handler
//     hijacked the connection itself;
//     "refused" for any other answer.
//   - panic: true when a later handler panicked. Log lets the panic go on,
//     to Recover or net/http, and logs what was recorded up to then.
//
// The level says who has something to fix: [slog.LevelError] for a 5xx
// status or a panic (the server), [slog.LevelWarn] for a 4xx (the client,
// or an attack such as rate-limited or unauthorised upgrades), and
// [slog.LevelInfo] for the rest.
//
// Place Log after RequestID and before Recover, so that its line has the
// id and sees the 500 that Recover writes.
func Log(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := newRecorder(w)
			completed := false
			// Deferred, so that a panic on its way out still gets its line;
			// recovering here would cut the panicking stack off before
			// Recover could log it.
			defer func() {
				logRequest(logger, rec, r, time.Since(start), !completed)
			}()
			next.ServeHTTP(rec, r)
			completed = true
		})
	}
}

func logRequest(logger *slog.Logger, rec *recorder, r *http.Request, d time.Duration, panicked bool) {
	if logger == nil {
		logger = logctx.From(r.Context())
	}
	status := rec.Status()
	asked := isUpgradeRequest(r)
	upgrade := ""
	switch {
	case asked && rec.accepted:
		// A colibri router behind this middleware accepted it: it
		// hijacks, writes the 101 (HTTP/2: a 200) past this recorder and
		// says so (WebSocketAccepted).
		status, upgrade = http.StatusSwitchingProtocols, "accepted"
		if r.ProtoMajor >= 2 {
			status = http.StatusOK
		}
	case rec.Hijacked():
		if asked {
			upgrade = "hijacked"
		}
	case !rec.WroteHeader() && panicked:
		// The answer, if any, comes from whoever recovers.
	case !rec.WroteHeader() && asked && upgradeAccepted(rec.Header()):
		status = http.StatusSwitchingProtocols
		if r.ProtoMajor >= 2 {
			status = http.StatusOK
		}
		upgrade = "accepted"
	case !rec.WroteHeader():
		status = http.StatusOK
		if asked {
			upgrade = "refused"
		}
	case asked && (status == http.StatusSwitchingProtocols || r.ProtoMajor >= 2 && status >= 200 && status < 300):
		// Over HTTP/2 a 2xx to the extended CONNECT opens the WebSocket.
		upgrade = "accepted"
	case asked:
		upgrade = "refused"
	}

	level := slog.LevelInfo
	switch {
	case panicked || status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelWarn
	}

	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.Int64("bytes", rec.BytesWritten()),
		slog.String("remote", r.RemoteAddr),
	)
	if id := requestIDOf(rec, r); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	if upgrade != "" {
		attrs = append(attrs, slog.String("upgrade", upgrade))
	}
	if panicked {
		attrs = append(attrs, slog.Bool("panic", true))
	}
	logger.LogAttrs(r.Context(), level, "request", attrs...)
}

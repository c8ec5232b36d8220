package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// RequestIDHeader is the header field RequestID reads and writes.
const RequestIDHeader = "X-Request-ID"

// maxRequestIDLen bounds an incoming request id, in bytes: long enough for
// a UUID or a trace id with a prefix, short enough to keep log lines tidy.
const maxRequestIDLen = 64

type requestIDKey struct{}

// RequestID gives every request an id for correlating log lines. It keeps
// the X-Request-ID sent by the client or a proxy in front when that is sane
// (1 to 64 bytes of visible ASCII, no spaces), and otherwise makes a new one
// of 16 hex digits (64 random bits from crypto/rand). The id goes into the
// request context, where RequestIDFrom reads it, and onto the response
// header as X-Request-ID.
//
// Because a client may choose its id, use it for correlation only, never to
// identify or authorise anyone. Place RequestID first in the chain so that
// every later middleware, and a WebSocket handler, sees the id.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !saneRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// RequestIDFrom returns the request id that RequestID stored in ctx, or ""
// if there is none. A WebSocket handler's context carries it too.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [8]byte
	// crypto/rand.Read never fails: on a broken system source it crashes the
	// program rather than return an error.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

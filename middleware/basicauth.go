package middleware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// BasicAuth checks HTTP Basic credentials (RFC 7617) with verify and lets
// the request through only when verify returns true. The user name then
// goes into the request context, where UserFrom reads it.
//
// A request without credentials, with malformed ones or with ones verify
// rejects gets 401 Unauthorized with the challenge
//
//	WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"
//
// (the charset parameter tells browsers to send UTF-8, RFC 7617 §2.1) and a
// short plain-text body. verify runs on the request goroutine with the
// request context; it should compare in constant time, as the verifier
// returned by BasicAuthUsers does, so that response times do not leak how
// much of a guess was right.
//
// Basic credentials travel in clear text: serve them over TLS only. Browsers
// send them on WebSocket requests once the user has logged in to the origin,
// but cannot be told to add them to one; see Bearer for that case.
//
// BasicAuth panics if verify is nil.
func BasicAuth(realm string, verify func(ctx context.Context, user, password string) bool) func(http.Handler) http.Handler {
	if verify == nil {
		panic("middleware: BasicAuth: nil verify")
	}
	challenge := `Basic realm="` + quoteEscape(realm) + `", charset="UTF-8"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, password, ok := basicCredentials(r)
			if !ok || !verify(r.Context(), user, password) {
				w.Header().Set("WWW-Authenticate", challenge)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(withUser(r.Context(), user)))
		})
	}
}

// basicCredentials reads Basic credentials as RFC 9110 §11.4 writes them:
// the scheme, in any case, then one or more spaces, then the base64 of
// user:password. Two Authorization headers are no credentials: a proxy
// might have checked the other one.
func basicCredentials(r *http.Request) (user, password string, ok bool) {
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return "", "", false
	}
	scheme, rest, _ := strings.Cut(auths[0], " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimLeft(rest, " "))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// BasicAuthUsers returns a verifier for BasicAuth that accepts the user
// names and passwords in users (name to password). It copies the map, so
// later changes to users have no effect.
//
// Passwords are compared in constant time, as SHA-256 digests so that
// their length does not show either, and an unknown user costs the same
// comparison as a known one. Only the map lookup of the name is not constant
// time. For more than a handful of users, or passwords stored as hashes,
// write a verifier over your own store.
func BasicAuthUsers(users map[string]string) func(ctx context.Context, user, password string) bool {
	digests := make(map[string][sha256.Size]byte, len(users))
	for name, password := range users {
		digests[name] = sha256.Sum256([]byte(password))
	}
	var nobody [sha256.Size]byte
	return func(_ context.Context, user, password string) bool {
		want, known := digests[user]
		if !known {
			want = nobody
		}
		got := sha256.Sum256([]byte(password))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && known
	}
}

// quoteEscape escapes s for use inside a quoted-string (RFC 9110 §5.6.4).
func quoteEscape(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

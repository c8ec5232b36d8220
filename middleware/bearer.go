package middleware

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// BearerOptions configures BearerWith. The zero value reads the token from
// the Authorization header only, which is what Bearer does.
type BearerOptions struct {
	// QueryParam, when not empty, names a query parameter that may carry the
	// token when the request has no Authorization header, as in
	// "/ws/chat?access_token=..." (RFC 6750 §2.3 calls it access_token).
	// Default: "" (query tokens are not accepted).
	//
	// Browsers cannot set headers on a WebSocket handshake, so a page that
	// holds a token can only pass it in the URL (or in a cookie, which
	// BasicAuth and Bearer do not read). URLs leak: they are written to
	// access logs of proxies and servers, and kept in browser history. Enable
	// this only for WebSocket routes, and use short-lived tokens minted for
	// the one connection. To keep the token out of this server's own logs,
	// the parameter is removed from the URL that later handlers see,
	// whichever token was checked (the Authorization header wins over it),
	// and Log never logs the query string; r.RequestURI still holds it.
	QueryParam string
}

// Bearer checks bearer tokens (RFC 6750) from the Authorization header with
// verify. It is BearerWith with the zero BearerOptions.
func Bearer(verify func(ctx context.Context, token string) (user string, err error)) func(http.Handler) http.Handler {
	return BearerWith(verify, BearerOptions{})
}

// BearerWith checks bearer tokens (RFC 6750) with verify and lets the
// request through only when verify accepts the token. The user name verify
// returns then goes into the request context, where UserFrom reads it.
//
// The token comes from "Authorization: Bearer <token>" (the scheme name is
// case-insensitive; one header, one token without blanks) or, when
// opts.QueryParam is set and the header is absent, from that query
// parameter. A request without a token gets 401
// Unauthorized with the challenge "WWW-Authenticate: Bearer"; a request
// whose token verify rejects gets 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1). Both
// carry a short plain-text body that never repeats the token or the error.
//
// verify runs on the request goroutine with the request context. Any error
// it returns counts as a rejected token, so return one only for tokens that
// are not valid; an outage of the store behind it also ends in 401. A nil
// error accepts the token, even with an empty user name.
//
// BearerWith panics if verify is nil.
func BearerWith(verify func(ctx context.Context, token string) (user string, err error), opts BearerOptions) func(http.Handler) http.Handler {
	if verify == nil {
		panic("middleware: Bearer: nil verify")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token := bearerToken(r, opts.QueryParam)
			if token == "" {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			user, err := verify(r.Context(), token)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				http.Error(w, "invalid token", http.StatusUnauthorized)
				return
			}
			r = r.WithContext(withUser(r.Context(), user))
			if opts.QueryParam != "" && r.URL.RawQuery != "" {
				// Removed whichever token was checked: a token left in the
				// URL would reach the logs.
				u := *r.URL
				u.RawQuery = removeQueryParam(u.RawQuery, opts.QueryParam)
				r.URL = &u
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bearerToken returns the token of r, from its Authorization header or
// else from the query parameter param.
// An Authorization header with another scheme, a token with blanks inside
// (RFC 6750 §2.1 allows none) and two Authorization headers (RFC 9110
// §11.6.2 allows one; a proxy might have checked the other) count as no
// token.
func bearerToken(r *http.Request, param string) string {
	if auths := r.Header.Values("Authorization"); len(auths) > 1 || len(auths) == 1 && auths[0] != "" {
		if len(auths) > 1 {
			return ""
		}
		scheme, rest, _ := strings.Cut(auths[0], " ")
		token := strings.Trim(rest, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.ContainsAny(token, " \t") {
			return ""
		}
		return token
	}
	if param == "" {
		return ""
	}
	return r.URL.Query().Get(param)
}

// removeQueryParam returns rawQuery without the pairs named name, keeping
// the others as they were written.
func removeQueryParam(rawQuery, name string) string {
	var b strings.Builder
	for pair := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

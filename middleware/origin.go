package middleware

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Origins refuses requests sent by web pages of origins not on an
// allowlist. Browsers do not apply the same-origin policy to WebSocket
// handshakes: any page may open a socket to any server, and the browser
// sends that server's cookies and Basic credentials along (cross-site
// WebSocket hijacking). The Origin header (RFC 6454, RFC 6455 §10.2) is
// what tells the server which page is asking, so a WebSocket server that
// relies on browser-held credentials must check it.
//
// Origins lets a request through when
//
//   - it has no Origin header: it does not come from a browser page, and a
//     non-browser client could send any Origin it likes anyway;
//   - its Origin is the request's own host: the host and port of the Origin
//     equal the Host header, ignoring case and a default port (80 for http,
//     443 for https);
//   - the host[:port] of its Origin matches one of patterns, in the glob
//     syntax of [path.Match], ignoring case and the scheme: "example.com",
//     "*.example.com" (subdomains at any depth, not example.com itself), "localhost:*"
//     (any port; plain "localhost" matches no port), "*" (anything). A port
//     is part of what is matched, so "example.com" does not match
//     "http://example.com:8080". The brackets of an IPv6 literal are
//     pattern syntax and need escaping: `\[::1\]:*`.
//
// Any other request, including one whose Origin is malformed or "null" (a
// sandboxed page or a local file), gets 403 Forbidden with a plain-text
// body naming the origin. Origins checks every request that has an Origin
// header, not only upgrades, so it also guards form posts and fetches.
// With no patterns, only pages of the server's own host get through.
//
// Origins panics if a pattern is malformed or holds a scheme or a path:
// patterns name hosts, not URLs.
func Origins(patterns ...string) func(http.Handler) http.Handler {
	lowered := make([]string, len(patterns))
	for i, p := range patterns {
		if _, err := path.Match(p, ""); err != nil || strings.Contains(p, "/") {
			panic(fmt.Sprintf("middleware: Origins: bad pattern %q: want host[:port] in path.Match syntax", p))
		}
		lowered[i] = strings.ToLower(p)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" || originAllowed(origin, r.Host, lowered) {
				next.ServeHTTP(w, r)
				return
			}
			http.Error(w, fmt.Sprintf("origin %q not allowed", origin), http.StatusForbidden)
		})
	}
}

func originAllowed(origin, host string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return false
	}
	originHost := strings.ToLower(u.Host)
	if originHost == stripDefaultPort(strings.ToLower(host), strings.ToLower(u.Scheme)) {
		return true
	}
	for _, p := range patterns {
		// The patterns were checked by Origins, so Match cannot fail.
		if ok, _ := path.Match(p, originHost); ok {
			return true
		}
	}
	return false
}

// stripDefaultPort drops the port from host when it is the default one for
// scheme, as an Origin serialisation does (RFC 6454 §6.1).
func stripDefaultPort(host, scheme string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

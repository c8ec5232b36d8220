package middleware

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/colibri-ws/colibri/handshake"
)

// Origins refuses requests sent by web pages of origins not on an
// allowlist. Browsers do not apply the same-origin policy to WebSocket
// handshakes: any page may open a socket to any server, and the browser
// sends that server's cookies and Basic credentials along (cross-site
// WebSocket hijacking). The Origin header (RFC 6454, RFC 6455 §10.2) is
// what tells the server which page is asking, so a WebSocket server that
// relies on browser-held credentials must check it.
//
// Origins makes the check that colibri's ws routes make on every handshake
// ([handshake.CheckOrigin], with the patterns of router.WithOrigins), on every
// request that has an Origin header. It lets a request through when
//
//   - it has no Origin header: it does not come from a browser page, and a
//     non-browser client could send any Origin it likes anyway;
//   - its Origin names the request's own host: the host and port of the
//     Origin equal the Host header, ignoring case and the default port of
//     the Origin's scheme or of the request's (80 for http, 443 for https);
//   - the host[:port] of its Origin matches one of patterns, in the glob
//     syntax of [path.Match], ignoring case and the scheme: "example.com",
//     "*.example.com" (subdomains at any depth, not example.com itself), "localhost:*"
//     (any port; plain "localhost" matches no port but its scheme's default,
//     which counts as left out), "*" (anything). A port
//     is part of what is matched, so "example.com" does not match
//     "http://example.com:8080". The brackets of an IPv6 literal are
//     pattern syntax and need escaping: `\[::1\]:*`.
//
// Any other request gets 403 Forbidden with a plain-text body that names
// the origin: one from a page of another origin, one whose Origin is
// "null" (an opaque origin: a sandboxed page or a local file), one whose
// Origin is malformed or of a scheme other than http and https. Because
// Origins checks every request that has an Origin header, not only
// upgrades, it also guards form posts and fetches. With no patterns, only
// pages of the server's own host get through.
//
// In front of colibri's ws routes, Origins adds nothing to what the route
// checks itself, except that it answers before the middleware behind it
// runs; and the route keeps its own patterns: an origin let through here
// is still refused by a route whose router.WithOrigins does not list it.
// Give both the same patterns.
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
			if e := handshake.CheckOrigin(r, lowered); e != nil {
				e.Write(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

package handshake

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Error is an opening handshake that colibri refused, with the HTTP
// status and the plain-text message it answered with.
//
// CheckRequest, CheckOrigin and CheckExtensions return a *Error, nil when
// the request passes: test it against nil before returning it as an
// error, since a nil *Error in an error interface is not a nil error.
type Error struct {
	Status  int
	Message string
	// Header holds response headers that go with the status, such as
	// Sec-WebSocket-Version with 426.
	Header http.Header

	cause error // what made the refusal necessary, when not the request
}

// Unwrap returns what made the refusal necessary when it was not the
// request (a ResponseWriter that cannot be hijacked, say), or nil.
func (e *Error) Unwrap() error { return e.cause }

// Error returns the status and the message.
func (e *Error) Error() string {
	return fmt.Sprintf("handshake: refused: %d %s", e.Status, e.Message)
}

// Write sends the refusal as the HTTP response.
func (e *Error) Write(w http.ResponseWriter) {
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	fmt.Fprintln(w, e.Message)
}

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// checkVersion refuses, with 426, a request that does not ask for
// version 13 in exactly one Sec-WebSocket-Version header, saying which.
func checkVersion(r *http.Request) *Error {
	switch v := r.Header[hdrVersion]; {
	case len(v) == 0:
		return refuse(http.StatusUpgradeRequired, "WebSocket handshake needs a Sec-WebSocket-Version header: this server speaks version 13")
	case len(v) > 1:
		return refuse(http.StatusUpgradeRequired, "WebSocket handshake needs exactly one Sec-WebSocket-Version header: this server speaks version 13")
	case strings.TrimSpace(v[0]) != "13":
		return refuse(http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version %q: this server speaks version 13", v[0])
	}
	return nil
}

// IsUpgradeRequest reports whether r asks to be upgraded to a WebSocket:
// its Connection header has the token "upgrade" and its Upgrade header the
// token "websocket", or, over HTTP/2, it is an extended CONNECT for
// websocket (see IsExtendedConnect). It does not check the rest of the
// handshake.
func IsUpgradeRequest(r *http.Request) bool {
	return IsExtendedConnect(r) ||
		headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// CheckRequest validates r as a WebSocket opening handshake (RFC 6455
// §4.2.1) and returns nil or the refusal that fits: 405 for a method other
// than GET, 400 for HTTP/1.0, a request with a body, an empty Host or a
// missing or malformed header, 426 with "Sec-WebSocket-Version: 13" for a request that is not
// an upgrade or asks for another protocol version.
//
// An HTTP/2 request is checked as an extended CONNECT (RFC 8441 §4, §5)
// instead: 405 for another method, 400 when :protocol is not websocket or
// :authority is missing, 426 for another version; there is no
// Sec-WebSocket-Key over HTTP/2.
func CheckRequest(r *http.Request) *Error {
	if r.ProtoMajor == 2 {
		return checkExtendedConnect(r)
	}
	if r.Method != http.MethodGet {
		e := refuse(http.StatusMethodNotAllowed, "WebSocket handshake must use GET, not %s", r.Method)
		e.Header = http.Header{"Allow": {http.MethodGet}}
		return e
	}
	if !r.ProtoAtLeast(1, 1) {
		return refuse(http.StatusBadRequest, "WebSocket handshake needs HTTP/1.1 or later, got %s", r.Proto)
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		// RFC 9110 §7.8: the upgraded protocol begins after the whole
		// request, so a body would otherwise be read as frames.
		return refuse(http.StatusBadRequest, "WebSocket handshake must not have a body")
	}
	if r.Host == "" {
		// RFC 6455 §4.2.1 item 2. net/http lets an empty Host through
		// (for "GET *"), and gobwas/ws would refuse it after hijacking.
		return refuse(http.StatusBadRequest, "WebSocket handshake needs a Host header")
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		e := refuse(http.StatusUpgradeRequired, "this endpoint speaks WebSocket only: send Upgrade: websocket")
		e.Header = http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}}
		return e
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return refuse(http.StatusBadRequest, "WebSocket handshake needs Connection: Upgrade")
	}
	if e := checkVersion(r); e != nil {
		// RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
		e.Header = http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}}
		return e
	}
	keys := r.Header[hdrKey]
	if len(keys) != 1 {
		return refuse(http.StatusBadRequest, "WebSocket handshake needs exactly one Sec-WebSocket-Key header")
	}
	if !validKey(strings.TrimSpace(keys[0])) {
		return refuse(http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return nil
}

// validKey reports whether key is 16 bytes in base64 (RFC 6455 §4.1).
func validKey(key string) bool {
	var raw [18]byte
	if len(key) != 24 {
		return false
	}
	n, err := base64.StdEncoding.Decode(raw[:], []byte(key))
	return err == nil && n == 16
}

// CheckOrigin guards against cross-site WebSocket hijacking: a browser
// sends the page's origin with every WebSocket handshake, and cookies with
// it. A request passes when it has no Origin header (not a browser), when
// the Origin's host equals the request's Host, or when the Origin's host
// (host[:port], compared case-insensitively) matches one of patterns in
// path.Match syntax, such as "*.example.com" or "localhost:*". A default
// port counts as given and as left out: "localhost:*" matches
// "http://localhost", and "example.com" matches "https://example.com:443".
// Otherwise the refusal is 403.
func CheckOrigin(r *http.Request, patterns []string) *Error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if origin == "null" {
		// RFC 6454 §7.3: the serialization of an opaque origin.
		return refuse(http.StatusForbidden, `opaque origin "null" (a sandboxed page or a local file) cannot be allowed`)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return refuse(http.StatusForbidden, "malformed Origin header %q", origin)
	}
	host := withoutDefaultPort(strings.ToLower(u.Host), u.Scheme)
	reqScheme := "http"
	if r.TLS != nil {
		reqScheme = "https"
	}
	if host == withoutDefaultPort(strings.ToLower(r.Host), u.Scheme) || host == withoutDefaultPort(strings.ToLower(r.Host), reqScheme) {
		return nil
	}
	// A pattern matches the origin with its default port left out (host
	// has it dropped) or spelled out, so that "localhost:*" takes
	// "http://localhost" and "example.com:443" takes "https://example.com".
	withPort := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		withPort = host + defaultPort(u.Scheme)
	}
	for _, p := range patterns {
		p = strings.ToLower(p)
		if ok, _ := path.Match(p, host); ok {
			return nil
		}
		if ok, _ := path.Match(p, withPort); ok {
			return nil
		}
	}
	return refuse(http.StatusForbidden, "origin %q is not allowed here", origin)
}

// defaultPort is the port suffix of an http or https origin that names
// no port.
func defaultPort(scheme string) string {
	if scheme == "https" {
		return ":443"
	}
	return ":80"
}

// withoutDefaultPort drops ":80" or ":443" when it is the scheme's default,
// so that "https://example.com" and "example.com:443" name one origin.
func withoutDefaultPort(hostport, scheme string) string {
	return strings.TrimSuffix(hostport, defaultPort(scheme))
}

// SelectSubprotocol returns the first subprotocol in the client's
// Sec-WebSocket-Protocol list (its order of preference) that is one of
// supported, or "" when none is. Only whole elements of the
// comma-separated list count: "0 chat" offers no "chat", and a client
// must fail a connection whose subprotocol it did not offer (RFC 6455
// §4.1).
func SelectSubprotocol(r *http.Request, supported []string) string {
	if len(supported) == 0 {
		return ""
	}
	for _, v := range r.Header[hdrProtocol] {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.Trim(p, " \t")
			for _, s := range supported {
				if s == p {
					return s
				}
			}
		}
	}
	return ""
}

// The canonical forms of the handshake's header names. Looking a name up
// as the RFC writes it ("Sec-WebSocket-Key") converts it on every request,
// an allocation each time.
const (
	hdrKey        = "Sec-Websocket-Key"
	hdrVersion    = "Sec-Websocket-Version"
	hdrProtocol   = "Sec-Websocket-Protocol"
	hdrExtensions = "Sec-Websocket-Extensions"
)

// first returns the first of values, or "".
func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

package wsconn

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// HandshakeError is an opening handshake that colibri refused, with the
// HTTP status and the plain-text message it answered with.
type HandshakeError struct {
	Status  int
	Message string
	// Header holds response headers that go with the status, such as
	// Sec-WebSocket-Version with 426.
	Header http.Header
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("wsconn: handshake refused: %d %s", e.Status, e.Message)
}

// Write sends the refusal as the HTTP response.
func (e *HandshakeError) Write(w http.ResponseWriter) {
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	fmt.Fprintln(w, e.Message)
}

func refuse(status int, format string, args ...any) *HandshakeError {
	return &HandshakeError{Status: status, Message: fmt.Sprintf(format, args...)}
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
// than GET, 400 for HTTP/1.0, an empty Host or a missing or malformed
// header, 426 with "Sec-WebSocket-Version: 13" for a request that is not
// an upgrade or asks for another protocol version.
//
// An HTTP/2 request is checked as an extended CONNECT (RFC 8441 §4, §5)
// instead: 405 for another method, 400 when :protocol is not websocket,
// 426 for another version; there is no Sec-WebSocket-Key over HTTP/2.
func CheckRequest(r *http.Request) *HandshakeError {
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
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		e := refuse(http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version %q: this server speaks version 13", strings.Join(v, ", "))
		e.Header = http.Header{"Sec-Websocket-Version": {"13"}}
		return e
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
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
// path.Match syntax, such as "*.example.com" or "localhost:*". Otherwise
// the refusal is 403.
func CheckOrigin(r *http.Request, patterns []string) *HandshakeError {
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
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return nil
		}
	}
	return refuse(http.StatusForbidden, "origin %q is not allowed here", origin)
}

// withoutDefaultPort drops ":80" or ":443" when it is the scheme's default,
// so that "https://example.com" and "example.com:443" name one origin.
func withoutDefaultPort(hostport, scheme string) string {
	switch {
	case scheme == "https" && strings.HasSuffix(hostport, ":443"):
		return strings.TrimSuffix(hostport, ":443")
	case scheme == "http" && strings.HasSuffix(hostport, ":80"):
		return strings.TrimSuffix(hostport, ":80")
	}
	return hostport
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
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
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

// AcceptOptions configures Accept.
type AcceptOptions struct {
	// Subprotocols the server speaks; the client's most preferred one
	// that is listed here is chosen. Default none.
	Subprotocols []string
	// OriginPatterns are the cross-origin hosts allowed besides the
	// request's own host (see CheckOrigin). Default none.
	OriginPatterns []string
	// SkipOriginCheck accepts any Origin. Only for endpoints that use no
	// ambient credentials (cookies, client certificates, HTTP auth).
	SkipOriginCheck bool
	// Header holds extra response headers for the 101 response (200
	// over HTTP/2).
	Header http.Header
	// Timeout bounds writing the 101 (or 200) response. Default 10 s.
	Timeout time.Duration
	// Compression accepts a permessage-deflate offer when enabled.
	Compression Compression
}

// Accept completes the opening handshake of r: it validates the request,
// checks its origin, picks a subprotocol, hijacks the connection and writes
// the 101 response. On a refusal it writes the HTTP error itself and
// returns a *HandshakeError. The result is served with Serve or Start.
//
// Over HTTP/2 (an extended CONNECT, RFC 8441) nothing is hijacked: Accept
// answers 200 with the negotiated subprotocol and extensions, and the
// WebSocket runs over the request's stream, which net/http ends when
// ServeHTTP returns. Serve the result with Serve, before returning, in the
// same goroutine.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (Upgraded, error) {
	var o AcceptOptions
	if opts != nil {
		o = *opts
	}
	if e := CheckRequest(r); e != nil {
		e.Write(w)
		return Upgraded{}, e
	}
	if !o.SkipOriginCheck {
		if e := CheckOrigin(r, o.OriginPatterns); e != nil {
			e.Write(w)
			return Upgraded{}, e
		}
	}
	proto := SelectSubprotocol(r, o.Subprotocols)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if IsExtendedConnect(r) {
		return acceptStream(w, r, &o, proto)
	}
	var exts []Extension
	if o.Compression.Enabled {
		var e *HandshakeError
		if exts, e = negotiateExtensions(r, o.Compression); e != nil {
			e.Write(w)
			return Upgraded{}, e
		}
	}
	return hijackAndSwitch(w, r, &o, proto, exts)
}

// negotiateExtensions answers the request's extension offers: the
// permessage-deflate response, if c accepts an offer. It is a call of its
// own so that the parsed offers stay in its frame, which is gone by the
// time the handshake goes deeper (hashing the key, writing); held in
// Accept's frame, they made the handshake's stack deeper on the request's
// goroutine, whose stack the runtime then had to grow and copy.
func negotiateExtensions(r *http.Request, c Compression) ([]Extension, *HandshakeError) {
	offers, err := ParseExtensions(r.Header.Values("Sec-WebSocket-Extensions")...)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed Sec-WebSocket-Extensions header")
	}
	if resp, ok := c.NegotiateCompression(offers); ok {
		return []Extension{resp}, nil
	}
	return nil, nil
}

// hijackAndSwitch takes the connection from net/http and writes the 101
// response in one write, bounded by o.Timeout. CheckRequest has checked the
// request; what is left is the response (RFC 6455 §4.2.2).
func hijackAndSwitch(w http.ResponseWriter, r *http.Request, o *AcceptOptions, proto string, exts []Extension) (Upgraded, error) {
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		e := refuse(http.StatusInternalServerError, "this connection cannot be upgraded")
		e.Write(w)
		return Upgraded{}, fmt.Errorf("wsconn: upgrade: %w", err)
	}
	// The response is built in the free space of the writer net/http
	// made for the hijacker, which is not used otherwise.
	b := append(rw.Writer.AvailableBuffer(), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAccept(b, strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key")))
	b = append(b, "\r\n"...)
	if proto != "" {
		b = append(append(append(b, "Sec-WebSocket-Protocol: "...), proto...), "\r\n"...)
	}
	if len(exts) > 0 {
		b = append(appendExtensions(append(b, "Sec-WebSocket-Extensions: "...), exts), "\r\n"...)
	}
	b = appendHeader(b, o.Header)
	b = append(b, "\r\n"...)

	if o.Timeout > 0 {
		_ = nc.SetWriteDeadline(time.Now().Add(o.Timeout))
	}
	if _, err := nc.Write(b); err != nil { // rw.Writer is empty: straight to the socket
		_ = nc.Close()
		return Upgraded{}, fmt.Errorf("wsconn: upgrade: writing the response: %w", err)
	}
	if o.Timeout > 0 {
		_ = nc.SetWriteDeadline(time.Time{})
	}
	u := Upgraded{Conn: nc, Request: r, Subprotocol: proto, Extensions: exts}
	if n := rw.Reader.Buffered(); n > 0 {
		p, _ := rw.Reader.Peek(n)
		u.Buffered = append([]byte(nil), p...)
	}
	return u, nil
}

// acceptGUID is the GUID that RFC 6455 §1.3 appends to the client's key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// appendAccept appends the Sec-WebSocket-Accept value for key, which
// CheckRequest found to be 24 characters long.
func appendAccept(b []byte, key string) []byte {
	var in [64]byte
	n := copy(in[:], key)
	n += copy(in[n:], acceptGUID)
	sum := sha1.Sum(in[:n])
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

// appendHeader appends the response headers of h but those the handshake
// writes itself. As net/http does, it drops fields with invalid names and
// turns line breaks in values into spaces, so that no value can add a
// field or end the response.
func appendHeader(b []byte, h http.Header) []byte {
	for k, vs := range h {
		if handshakeField(k) || !validFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = append(append(b, k...), ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// handshakeField reports whether the handshake writes header k itself.
func handshakeField(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions", "Content-Length", "Transfer-Encoding":
		return true
	}
	return false
}

// validFieldName reports whether k is a token (RFC 9110 §5.1).
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	return isToken(k)
}

// headerHasToken reports whether any of the comma-separated values of
// header name holds token, compared case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for elem := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(elem, " \t"), token) {
				return true
			}
		}
	}
	return false
}

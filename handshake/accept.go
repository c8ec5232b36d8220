package handshake

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/colibri-ws/colibri/internal/token"
	"github.com/colibri-ws/colibri/wsconn"
)

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
	Compression wsconn.Compression
}

// Accept completes the opening handshake of r: it validates the request,
// checks its origin, picks a subprotocol, hijacks the connection and writes
// the 101 response. On a refusal it writes the HTTP error itself and
// returns a *Error. The result is served with wsconn.Serve or
// wsconn.Start.
//
// Over HTTP/2 (an extended CONNECT, RFC 8441) nothing is hijacked: Accept
// answers 200 with the negotiated subprotocol and extensions, and the
// WebSocket runs over the request's stream, which net/http ends when
// ServeHTTP returns; the result has HTTP2 set. Serve it with wsconn.Serve,
// before returning, in the same goroutine, with
// context.WithoutCancel(r.Context()): the request's context ends when the
// client resets the stream, which is a failed transport, while a Serve
// context that ends means a shutdown (1001).
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (wsconn.Upgraded, error) {
	var o AcceptOptions
	if opts != nil {
		o = *opts
	}
	if e := CheckRequest(r); e != nil {
		e.Write(w)
		return wsconn.Upgraded{}, e
	}
	if !o.SkipOriginCheck {
		if e := CheckOrigin(r, o.OriginPatterns); e != nil {
			e.Write(w)
			return wsconn.Upgraded{}, e
		}
	}
	proto := SelectSubprotocol(r, o.Subprotocols)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	var exts []wsconn.Extension
	if o.Compression.Enabled {
		// Without compression the offer is not read, over either protocol.
		var e *Error
		if exts, e = negotiateExtensions(r, o.Compression); e != nil {
			e.Write(w)
			return wsconn.Upgraded{}, e
		}
	}
	if IsExtendedConnect(r) {
		return acceptStream(w, r, &o, proto, exts)
	}
	return hijackAndSwitch(w, r, &o, proto, exts)
}

// CheckExtensions returns the refusal Accept answers a malformed
// Sec-WebSocket-Extensions header with when c turns compression on (400),
// or nil. With compression off the header is not read. A router checks
// it before its upgrade decision, with the rest of the request.
func CheckExtensions(r *http.Request, c wsconn.Compression) *Error {
	if !c.Enabled {
		return nil
	}
	if _, err := ParseExtensions(r.Header[hdrExtensions]...); err != nil {
		return errMalformedExtensions()
	}
	return nil
}

func errMalformedExtensions() *Error {
	return refuse(http.StatusBadRequest, "malformed Sec-WebSocket-Extensions header")
}

// negotiateExtensions answers the request's extension offers: the
// permessage-deflate response, if c accepts an offer. It is a call of its
// own so that the parsed offers stay in its frame, which is gone by the
// time the handshake goes deeper (hashing the key, writing); held in
// Accept's frame, they made the handshake's stack deeper on the request's
// goroutine, whose stack the runtime then had to grow and copy.
func negotiateExtensions(r *http.Request, c wsconn.Compression) ([]wsconn.Extension, *Error) {
	offers, err := ParseExtensions(r.Header[hdrExtensions]...)
	if err != nil {
		return nil, errMalformedExtensions()
	}
	if resp, ok := negotiateDeflate(c, offers); ok {
		return []wsconn.Extension{resp}, nil
	}
	return nil, nil
}

// hijackAndSwitch takes the connection from net/http and writes the 101
// response in one write, bounded by o.Timeout. CheckRequest has checked the
// request; what is left is the response (RFC 6455 §4.2.2).
func hijackAndSwitch(w http.ResponseWriter, r *http.Request, o *AcceptOptions, proto string, exts []wsconn.Extension) (wsconn.Upgraded, error) {
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		e := refuse(http.StatusInternalServerError, "this connection cannot be upgraded")
		e.cause = err
		e.Write(w)
		return wsconn.Upgraded{}, e
	}
	// The response is built in the free space of the writer net/http
	// made for the hijacker, which is not used otherwise.
	b := append(rw.Writer.AvailableBuffer(), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAccept(b, strings.TrimSpace(first(r.Header[hdrKey])))
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
		return wsconn.Upgraded{}, fmt.Errorf("handshake: upgrade: writing the response: %w", err)
	}
	if o.Timeout > 0 {
		_ = nc.SetWriteDeadline(time.Time{})
	}
	u := wsconn.Upgraded{Conn: nc, Request: r, Subprotocol: proto, Extensions: exts}
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
			if strings.ContainsAny(v, "\r\n") {
				for i := 0; i < len(v); i++ {
					c := v[i]
					if c == '\r' || c == '\n' {
						c = ' '
					}
					b = append(b, c)
				}
			} else {
				b = append(b, v...)
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
	return token.Valid(k)
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

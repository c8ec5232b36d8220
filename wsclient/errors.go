package wsclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// MaxErrorBody is the number of bytes of a refusal's body that a
// HandshakeError keeps; the rest is not read.
const MaxErrorBody = 64 << 10

// ErrHandshake matches, with errors.Is, every *HandshakeError: the server
// (or the proxy) answered, but not with a valid switch to WebSocket.
var ErrHandshake = errors.New("wsclient: handshake failed")

// ErrCompressionResponse is the Err of a HandshakeError whose server
// answered the permessage-deflate offer with parameters that cannot be
// honoured (RFC 7692 §7.1).
var ErrCompressionResponse = errors.New("wsclient: unusable permessage-deflate response")

// ErrResponseHeaderTooLarge matches, with errors.Is, the error of a Dial
// whose server, or proxy, sent a status line and headers longer than
// MaxResponseHeaderBytes. It is not a HandshakeError: no answer was read.
var ErrResponseHeaderTooLarge = errors.New("wsclient: response headers too large")

// HandshakeError is an opening handshake that did not succeed although an
// HTTP answer arrived: the server refused the upgrade (any status other
// than 101), the proxy refused the CONNECT tunnel (Proxy is set), or the
// server switched protocols with a response that breaks RFC 6455 §4.1
// (StatusCode is 101 and Reason says what was wrong). Network failures and
// timeouts are not HandshakeErrors.
//
// Test for it with errors.Is(err, ErrHandshake) or read it with errors.As.
type HandshakeError struct {
	// StatusCode is the HTTP status of the answer, such as 401.
	StatusCode int
	// Status is the status line's text, such as "401 Unauthorized".
	Status string
	// Header holds the answer's headers.
	Header http.Header
	// Body holds up to MaxErrorBody bytes of the answer's body.
	Body []byte
	// Proxy is true when the answer came from the proxy refusing to open
	// the tunnel, not from the WebSocket server.
	Proxy bool
	// Reason says why a 101 answer was not accepted; empty for a refusal.
	Reason string
	// Err is the error behind Reason when there is one to test for, such
	// as ErrCompressionResponse for a permessage-deflate answer
	// that cannot be honoured.
	Err error
}

// Error says who refused and why: the status and the first line of the
// body for a refusal, the reason for an invalid 101 answer.
func (e *HandshakeError) Error() string {
	var b strings.Builder
	switch {
	case e.Reason != "":
		fmt.Fprintf(&b, "wsclient: invalid handshake response: %s", e.Reason)
		return b.String()
	case e.Proxy:
		fmt.Fprintf(&b, "wsclient: proxy refused the tunnel: %s", e.Status)
	default:
		fmt.Fprintf(&b, "wsclient: handshake refused: %s", e.Status)
	}
	if s := bodySummary(e.Body); s != "" {
		fmt.Fprintf(&b, ": %s", s)
	}
	return b.String()
}

// Is reports whether target is ErrHandshake.
func (e *HandshakeError) Is(target error) bool { return target == ErrHandshake }

// Unwrap returns Err.
func (e *HandshakeError) Unwrap() error { return e.Err }

// bodySummary returns the first line of a text body, cut to a length fit
// for an error message, or "" for a body that is empty or not text.
func bodySummary(body []byte) string {
	const maxSummary = 120
	line, _, _ := strings.Cut(string(body), "\n")
	line = strings.TrimSpace(line)
	if !utf8.ValidString(line) {
		return ""
	}
	if len(line) > maxSummary {
		cut := maxSummary
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	return line
}

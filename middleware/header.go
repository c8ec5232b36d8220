package middleware

import (
	"net/http"
	"strings"
)

// headerHasToken reports whether any value of the header field name, read
// as a comma-separated list (RFC 9110 §5.6.1), holds token. The comparison
// ignores ASCII case, as RFC 9110 §7.6.1 and §7.8 require for the
// Connection and Upgrade fields.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for item := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(item, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// isUpgradeRequest reports whether r asks to become a WebSocket: an
// HTTP/1.1 request whose Connection field holds "upgrade" and whose Upgrade
// field holds "websocket" (RFC 6455 §4.1), or an HTTP/2 extended CONNECT
// with the :protocol pseudo-header "websocket" (RFC 8441 §4), which
// net/http hands over as a header of that name.
func isUpgradeRequest(r *http.Request) bool {
	if r.ProtoMajor >= 2 {
		return r.Method == http.MethodConnect &&
			strings.EqualFold(r.Header.Get(":protocol"), "websocket")
	}
	return headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

// upgradeAccepted reports whether a handler that wrote nothing left the
// response header of an accepted WebSocket upgrade: colibri's ws routes
// record their decision by setting "Upgrade: websocket" and writing
// nothing, and the router performs the handshake after the chain returns.
func upgradeAccepted(h http.Header) bool {
	return headerHasToken(h, "Upgrade", "websocket")
}

// requestIDOf returns the request id for log lines: the one in the request
// context, or else the one an inner RequestID put on the response header,
// so that Log and Recover find it whichever side of RequestID they sit.
func requestIDOf(w http.ResponseWriter, r *http.Request) string {
	if id := RequestIDFrom(r.Context()); id != "" {
		return id
	}
	return w.Header().Get(RequestIDHeader)
}

// Package handshake answers the opening handshake of a WebSocket on the
// server side (RFC 6455 §4.2, and RFC 8441 over HTTP/2) and hands the
// result, a wsconn.Upgraded, to wsconn.Serve or wsconn.Start.
//
// Most applications never call it: the router package runs these checks
// on every ws route and accepts the upgrades its routes decide on. Use it
// to serve WebSockets from a plain net/http handler, or to make the same
// checks in code of your own.
//
// # Accepting
//
// Accept does everything in one call: it checks the request, checks its
// origin, picks a subprotocol, negotiates permessage-deflate (RFC 7692)
// when AcceptOptions.Compression enables it, hijacks the connection and
// writes the 101 response. A refusal is written as an HTTP error and
// returned as an *Error carrying its status.
//
// Over HTTP/2, a browser opens a WebSocket with an extended CONNECT
// instead (IsExtendedConnect). Accept answers it with 200 and wraps the
// request's stream in a net.Conn; nothing is hijacked, and the stream ends
// when the HTTP handler returns, so the connection must be served with
// wsconn.Serve in that handler's goroutine, with
// context.WithoutCancel(r.Context()) (the request's context ends when the
// client resets the stream, a failed transport, not a shutdown). The HTTP2
// field of its wsconn.Upgraded is set.
//
// # Checks
//
// The checks Accept makes are also functions of their own, each returning
// nil or the *Error to answer with:
//
//   - CheckRequest: the handshake's method, version and headers (400, 405,
//     426);
//   - CheckOrigin: the page's origin against the request's host and
//     allowed patterns, against cross-site WebSocket hijacking (403).
//
// IsUpgradeRequest tells a request that asks for a WebSocket from one
// that does not, without checking the rest; SelectSubprotocol picks from
// the client's offered subprotocols; ParseExtensions reads a
// Sec-WebSocket-Extensions header into wsconn.Extension values.
package handshake

// Package wsclient opens WebSocket connections to servers (RFC 6455 §4.1)
// and serves them with the same handler shape as colibri's server side: an
// inbound iterator, an outbound writer and a context, inside the
// connection's task group, where returning from the handler performs the
// closing handshake.
//
// # Running a handler
//
// Run dials and serves in one call:
//
//	err := wsclient.Run(ctx, "wss://feed.example.com/v1", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
//		if err := out.WriteText(ctx, `{"subscribe":"prices"}`); err != nil {
//			return err
//		}
//		for m := range in.Messages(0) {
//			handle(m.Payload)
//		}
//		return in.Err() // nil when the server closed cleanly
//	}, nil)
//
// Everything package wsconn says about handlers holds: the handler may
// start sibling tasks with s.Go, control frames are answered whether or not
// it reads, keep-alive pings go out on Options.Config's schedule, and the
// close code follows from what the handler returns. The session's Value is
// the server's 101 response; s.Subprotocol and s.Extensions say what was
// negotiated.
//
// # Dialing
//
// Dial performs the opening handshake only and returns a wsconn.Upgraded,
// for callers that serve it themselves with wsconn.Serve (to hand the
// handler a value of their own, or to serve it in a goroutine of theirs
// with wsconn.Start). Every
// frame the connection sends is masked with a fresh random key, and frames
// from the server must not be masked (RFC 6455 §5.1, §5.3).
//
// The handshake is checked as RFC 6455 §4.1 asks: the status must be 101,
// Upgrade and Connection must be well-formed lists that name the upgrade,
// Sec-WebSocket-Accept must answer the key that was sent, and the server
// may choose only a subprotocol and extensions that were offered, their
// names compared exactly.
//
// # TLS and proxies
//
// wss:// URLs use TLS with Options.TLSConfig, verified against the URL's
// host name unless the config names another. By default the proxy comes
// from the environment, as for net/http (HTTP_PROXY for ws://, HTTPS_PROXY
// for wss://, NO_PROXY); Options.Proxy chooses one explicitly. Both ws://
// and wss:// go through an http:// proxy as a CONNECT tunnel, with Basic
// Proxy-Authorization from the proxy URL's user information.
//
// # Errors
//
// When the server or the proxy answers with anything but a valid switch to
// WebSocket, the error is a *HandshakeError carrying the status, the
// headers and the first MaxErrorBody bytes of the body; it matches
// ErrHandshake with errors.Is. Network failures and timeouts are wrapped
// with the URL; a timeout matches context.DeadlineExceeded, and an answer
// whose status line and headers exceed MaxResponseHeaderBytes matches
// ErrResponseHeaderTooLarge.
//
// # Compression and extensions
//
// With Options.Config.Compression enabled, Dial offers permessage-deflate
// (RFC 7692), checks the server's answer (an unusable one matches
// ErrCompressionResponse) and the connection compresses as the
// config says. Other extensions go in Options.Extensions: Dial offers them,
// refuses an answer that accepts anything not offered, and passes what was
// accepted on in Upgraded.Extensions; it applies nothing to the frames.
//
// See the examples for complete programs, and package wstest for testing a
// server with this client in memory.
package wsclient

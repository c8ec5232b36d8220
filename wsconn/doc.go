// Package wsconn serves one upgraded WebSocket connection (RFC 6455) the
// way structured concurrency would: a handler receives an inbound iterator,
// an outbound writer and a context, runs inside an errgroup with the
// connection's own tasks, and returning from it performs the closing
// handshake.
//
// # Handlers
//
// A Handler has the shape
//
//	func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[T]) error
//
// where T is the value the upgrade decision handed over (see the router
// package). The handler may start sibling tasks with s.Go; they share the
// handler's context, and the connection is not torn down before they have
// returned. No goroutine outlives its connection.
//
// # Reading
//
// Inbound offers three iterators: Frames (data frames as they arrive),
// Messages (whole messages up to a size limit) and Readers (each message
// as an io.Reader, for streaming). After a loop, Inbound.Err says why it
// ended: nil when the peer closed cleanly. Yielded payloads are borrowed
// until the loop body returns.
//
// The goroutine that ranges does the reading itself, so a frame costs no
// goroutine switch and no allocation. When nobody has read for 20 ms (no
// loop runs, or a loop body is busy), a background task reads instead,
// answering PING and taking the peer's CLOSE, so that a handler that only
// writes, or a slow loop body, still keeps its connection healthy (see
// Inbound for the bound on what it reads ahead).
//
// # Writing
//
// Outbound is safe for concurrent use. Messages longer than
// Config.FragmentSize are fragmented, and control frames go out between
// fragments. Writer streams a message of unknown length and owns it until
// its Close. Close starts the closing handshake; so does returning from
// the handler. Once the connection has started closing, for whatever
// reason, writes fail with an error matching ErrClosed (a Writer opened
// before may finish its message).
//
// # Closing
//
// The code of the CLOSE frame follows from how the connection ended:
//
//	handler returned nil (or an error  1000
//	  matching context.Canceled or
//	  ErrClosed)
//	handler returned a *CloseError     its code and reason
//	handler or a task failed, panicked 1011 (logged once)
//	the peer closed first              the peer's code, echoed at once
//	peer broke the protocol            1002, 1007 or 1009
//	keep-alive or idle timeout         1001
//	server shutdown (ErrShutdown)      1001 (or the server's ShutdownCode),
//	                                   after accepted writes
//
// The first of these fixes the code. The CLOSE frame goes out after the
// message being written, except when the peer failed (a violation, a
// timeout, its end of stream): then at once, between two fragments.
// colibri then waits up to Config.CloseTimeout for the peer's CLOSE before
// closing the transport; after a keep-alive or idle timeout it closes it
// at once. docs/closing.md has every case.
//
// # Serving
//
// Serve runs a handler on an upgraded connection (an Upgraded) in the
// calling goroutine, Start in one of the connection's own. The opening
// handshake that produces an Upgraded is package handshake's job
// (handshake.Accept) on the server side, and package wsclient's on the
// client side. Most applications use the router package, which does both
// and shuts its connections down with 1001.
//
// A connection can also run over an HTTP/2 stream (an extended CONNECT,
// RFC 8441). The stream ends when the HTTP handler that accepted it
// returns, so it is served with Serve in that handler's goroutine (with
// context.WithoutCancel of the request's context: see handshake.Accept).
// Conn.HTTP2 tells the two kinds apart; nothing else differs.
package wsconn

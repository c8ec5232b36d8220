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
// goroutine switch and no allocation. While nobody ranges, a background
// task reads instead, answering PING and seeing the peer's CLOSE, so a
// handler that only writes still keeps its connection healthy.
//
// # Writing
//
// Outbound is safe for concurrent use. Messages longer than
// Config.FragmentSize are fragmented, and control frames go out between
// fragments. Writer streams a message of unknown length. Close starts the
// closing handshake; so does returning from the handler.
//
// # Closing
//
// The code of the CLOSE frame follows from how the connection ended:
//
//	handler returned nil               1000, or the peer's code echoed
//	handler returned a *CloseError     its code and reason
//	handler or a task failed, panicked 1011 (logged once)
//	peer broke the protocol            1002, 1007 or 1009
//	keep-alive or idle timeout         1001
//	server shutdown (ErrShutdown)      1001, after accepted writes are sent
//
// colibri then waits up to Config.CloseTimeout for the peer's CLOSE before
// closing the transport.
//
// # Serving
//
// Accept validates a handshake and hijacks the connection; Serve runs a
// handler on the result; Group owns many connections and shuts them down.
// Most applications use the router package, which does all three.
//
// Accept also completes a WebSocket handshake made over HTTP/2 (an
// extended CONNECT, RFC 8441): it answers 200 and the connection runs over
// the request's stream, which ends when the handler that accepted it
// returns, so it is served in that handler's goroutine (Group.Run).
// Conn.HTTP2 tells the two kinds apart; nothing else differs.
package wsconn

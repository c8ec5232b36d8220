// Package wstest helps test WebSocket applications, in the spirit of
// net/http/httptest: it runs a handler on a loopback port or entirely in
// memory, connects clients that assert on what the server sends, sends
// malformed frames on purpose, and replaces the clock so that keep-alive
// and idle timeouts happen at once.
//
// # Servers
//
// NewServer runs any http.Handler (a router, an application's handler, or
// one made by Handler) on 127.0.0.1; NewMemoryServer runs it over
// in-memory connections with no socket at all. Both use a real
// http.Server, so requests are parsed, middleware runs and Hijack works as
// in production, and both close with the test. Server.Dial connects a test
// Client; Server.NetDial lets any other client, wsclient's included, reach
// an in-memory server:
//
//	srv := wstest.NewMemoryServer(t, r) // r: the application's router
//	c := srv.Dial(t, "/ws/chat/lobby?username=ann", nil)
//	c.SendText("hello")
//	c.ExpectText(`{"from":"ann","text":"hello"}`)
//	c.Close()
//
// # Test clients
//
// A Client sends frames when told and reads frames when told. Its Expect
// methods (ExpectText, ExpectBinary, ExpectMessage, ExpectPing,
// ExpectPong, ExpectClose) fail the test with a message that says what
// was expected and what came instead, or that nothing came within
// Client.Timeout. On the way they answer PINGs, reassemble fragmented
// messages and check that the server keeps to RFC 6455.
//
// # Raw frames
//
// SendFrame sends any frame, masked and correctly framed: reserved opcodes,
// RSV bits, control frames that are too long or fragmented, text that is
// not UTF-8. SendHeader writes a header exactly as given (unmasked, with a
// length that lies) and SendRaw writes bytes. ReadFrame returns the next
// frame as it came. Together with ExpectClose they test how a server fails
// a connection:
//
//	c.SendFrame(frames.Text([]byte{0xff}))
//	c.ExpectClose(frames.CloseInvalidPayload, "invalid UTF-8 in text message")
//
// # Time
//
// Clock is a fake wsconn.Clock. Put it in the wsconn.Config of the
// connections under test (wsconn.Config{Clock: clk}); its time moves only
// when the test calls Advance, which fires due timers on the spot. A ping
// interval of 30 seconds then takes no time to test:
//
//	clk.Advance(30 * time.Second)
//	c.ExpectPing()                     // stay silent...
//	c.WaitServerReading()              // ...while the server waits
//	clk.Advance(20 * time.Second)
//	c.ExpectClose(frames.CloseGoingAway, "ping timeout")
//
// Client.WaitServerReading makes such tests deterministic: wsconn runs its
// pong and idle timeouts only while it waits for the peer, and after a jump of the
// clock the server's goroutines may not be waiting yet.
//
// # Handlers
//
// Handler turns a wsconn.Handler into an http.Handler that accepts every
// valid handshake its HandlerOptions allow, for testing a handler without
// a router.
package wstest

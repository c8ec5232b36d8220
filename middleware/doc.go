// Package middleware provides stock net/http middleware for colibri
// servers: request ids, panic recovery, request logging, Basic and bearer
// authentication, an Origin allowlist and a rate limit on WebSocket
// upgrades. Each is a func(http.Handler) http.Handler, or a constructor
// returning one, and works with any router built on net/http. From
// colibri, the package imports only handshake, whose origin check
// [Origins] shares with the ws routes, and the application's logger in the
// request context (see Order).
//
// # Middleware and WebSocket routes
//
// colibri runs the middleware chain in front of a WebSocket route as an
// ordinary HTTP request. The ws route only records its decision: to accept,
// it sets "Upgrade: websocket" and "Connection: Upgrade" on the response
// header and writes nothing; to refuse, it answers like any HTTP handler.
// The router hijacks the connection and completes the handshake only after
// the chain has returned. So middleware here never meets a hijacked
// connection, a refusal by middleware (401, 403, 429) is a plain HTTP
// response the client can read, and Log can tell an accepted upgrade from
// a refused one by what the chain left behind.
//
// Values middleware put in the request context reach the WebSocket
// handler, whose context carries the request context's values: read the
// authenticated user with [UserFrom] and the request id with
// [RequestIDFrom] inside the handler.
//
// # Order
//
// Listed from the outermost, which sees the request first and the response
// last, a sensible stack is
//
//	RequestID, Log(nil), Recover(nil), Origins(...),
//	UpgradeRateLimit(...), Bearer(...) or BasicAuth(...)
//
// Log and Recover given a nil logger log to the application's: colibri's
// app package carries its Config.Logger in every request's context, so
// one logger serves the application, its connections and its middleware.
//
// RequestID first so that every log line has the id; Log outside Recover
// so that Log's line records the 500 Recover writes for a panic (inside
// it, Log sees the panic go by before anything is written, and logs
// status 0 with panic=true); Origins and UpgradeRateLimit
// before authentication, so that foreign pages and floods are turned away
// before a verifier spends time on them. The package example builds such a
// chain; each middleware has an example of its own.
//
// # Authentication
//
// [BasicAuth] and [Bearer] check credentials with a function of yours and
// store the user name under one context key, read with [UserFrom].
// [BasicAuthUsers] builds a constant-time Basic verifier from a fixed map.
// Browsers cannot add headers to a WebSocket handshake; [BearerWith] can
// take the token from a query parameter instead, with the risks its
// [BearerOptions] spell out.
//
// # Origins
//
// Browsers let any page open a WebSocket to any server and send that
// server's cookies along. [Origins] turns away pages whose origin is not on
// an allowlist. colibri's ws routes make the same check on every handshake,
// with the patterns of router.WithOrigins: a pattern given to Origins
// alone lets a page past the middleware, and the route still refuses it.
//
// # Rate limiting
//
// [UpgradeRateLimit] keeps a token bucket per client IP for WebSocket
// upgrade requests, in a table bounded in size, without a background
// goroutine.
//
// # Writing middleware
//
// Middleware of your own that needs the status a handler answered can
// wrap the ResponseWriter with an Unwrap method, so that
// [http.ResponseController] still reaches Flush, Hijack and deadlines
// underneath. In a router's own middleware (Use) colibri needs none of
// that, since it hijacks the original writer after the chain has
// returned; a wrapper in front of the router must let it hijack (or
// flush, over HTTP/2), or upgrades fail with 500.
package middleware

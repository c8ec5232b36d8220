package wsconn

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Observer watches a server's WebSocket traffic for metrics, tracing or
// auditing: how each upgrade request ended, and the events of each
// connection it accepted. It is the one interface an observer implements,
// wherever it plugs in: app.Config.Observer, router.WithObserver or
// Config.Observer. The observe package implements it with OpenTelemetry;
// embed NopObserver to write only the methods you need.
//
// The methods of Observer may be called for many requests and connections
// at once, so they must be safe for concurrent use.
//
// Without an Observer a connection pays one nil check per event.
type Observer interface {
	// Upgraded reports how an upgrade request ended. The router (and the
	// app, for the requests it refuses itself when the connection claims
	// its place with its route's decision) calls it once for every request
	// that asks for a WebSocket upgrade (except, under the app's closure
	// form, a non-GET one, which goes to the app's handler), on the
	// request's goroutine, after the 101 response or the refusal was
	// written and, for an accepted connection, after it was handed over.
	// r is the request as the router received it. Accept and Serve, used
	// without a router, do not call it: their caller sees the handshake's
	// outcome.
	Upgraded(r *http.Request, res UpgradeResult)

	// ConnOpened is called once per connection, after the opening
	// handshake and before the handler runs, on the goroutine that starts
	// the connection (Start's caller, or Serve's). The ConnObserver it
	// returns receives that connection's events; nil ignores them.
	// Returning a value made for the connection keeps its state at hand
	// for each event with no lookup; an observer without per-connection
	// state may return itself. If it panics, the panic is logged and the
	// connection is served unobserved.
	ConnOpened(c *Conn) ConnObserver
}

// ConnObserver receives the events of one connection: it is what
// Observer.ConnOpened returns, not something plugged in on its own. Its
// methods are called on the goroutines doing the work they report (the
// handler's loop, a writer, the reader of a PONG), several at a time, so
// it must be safe for concurrent use. They run in the connection's hot
// path: they must return quickly and must not write to or close the
// connection. A panic in one is recovered and logged ("connection observer
// panicked"); the connection goes on.
//
// Closed is called once, when the connection is over, after its handler
// and tasks have returned; only a write made by a goroutine outside the
// connection's group may still be reported after it.
type ConnObserver interface {
	// Received reports a whole message read from the peer: its kind and
	// the size of its payload in bytes, as the handler sees it (for a
	// compressed message read with Inbound.Readers, as it came on the
	// wire).
	Received(kind messages.Kind, size int64)

	// Sent reports a whole message written to the peer.
	Sent(kind messages.Kind, size int64)

	// PingRTT reports the round-trip time of a keep-alive PING, measured
	// when the peer's PONG for it arrives (Conn.RTT returns the latest).
	PingRTT(rtt time.Duration)

	// ProtocolError reports a breach of RFC 6455 by the peer; the
	// connection is being failed with v.Code.
	ProtocolError(v *frames.Violation)

	// Closed reports how the connection ended.
	Closed(info CloseInfo)
}

// UpgradeResult says how an upgrade request ended; Observer.Upgraded
// receives it.
type UpgradeResult struct {
	// Route is the pattern of the ws route the request matched, as
	// ServeMux has it (without a method: "/ws/chat/{room}"), or "" when
	// it matched none or was refused by the app.
	Route string

	// Accepted says the client got its WebSocket: the status is 101
	// Switching Protocols or, for an HTTP/2 extended CONNECT (RFC 8441),
	// a 2xx, which opens the stream.
	Accepted bool

	// Status is the HTTP status the client received: 101 (or 200 over
	// HTTP/2) for an accepted connection, and otherwise the refusal's:
	// from the handshake checks (400, 403, 405, 426), from middleware
	// (401, 429), from the route's Reject, 403 or the HTTP route's own
	// status after DontUpgrade, 404 without a matching route, 503 when
	// the server is full or shutting down, and 500 when the handshake
	// failed after the decision.
	Status int

	// Duration runs from the router receiving the request to the 101
	// response or the refusal: the middleware, the decision and the
	// handshake. It is zero for a request the app refused.
	Duration time.Duration

	// Err is why the handshake failed after the route decided to upgrade
	// (the client went away, the response could not be written); nil
	// otherwise.
	Err error
}

// NopObserver is an Observer and a ConnObserver that does nothing. Embed
// it in your observer, and in the value its ConnOpened returns, to write
// only the methods you need; its own ConnOpened returns nil, so a type
// that wants connection events defines ConnOpened.
type NopObserver struct{}

// Upgraded does nothing.
func (NopObserver) Upgraded(*http.Request, UpgradeResult) {}

// ConnOpened returns nil: the connection's events are ignored.
func (NopObserver) ConnOpened(*Conn) ConnObserver { return nil }

// Received does nothing.
func (NopObserver) Received(messages.Kind, int64) {}

// Sent does nothing.
func (NopObserver) Sent(messages.Kind, int64) {}

// PingRTT does nothing.
func (NopObserver) PingRTT(time.Duration) {}

// ProtocolError does nothing.
func (NopObserver) ProtocolError(*frames.Violation) {}

// Closed does nothing.
func (NopObserver) Closed(CloseInfo) {}

// Side names one end of a connection.
type Side uint8

const (
	// SideLocal is this end: colibri or the handler.
	SideLocal Side = iota + 1
	// SidePeer is the other end.
	SidePeer
)

// String returns "local" or "peer" ("unknown" for the zero Side).
func (s Side) String() string {
	switch s {
	case SideLocal:
		return "local"
	case SidePeer:
		return "peer"
	}
	return "unknown"
}

// CloseInfo describes how a connection ended. ConnObserver.Closed receives
// it, and the "connection closed" log line carries the same facts.
type CloseInfo struct {
	// Code and Reason ended the connection: those of the side that began
	// closing (By), and
	// frames.CloseAbnormal (1006) when the transport failed before a
	// CLOSE frame went out (the peer vanished, a write failed, CloseNow).
	Code   frames.CloseCode
	Reason string

	// By is the side that began closing. SidePeer: its CLOSE frame
	// arrived before this side began closing (out.Close begins it even
	// while its CLOSE frame waits behind a message being written), or its
	// transport failed under colibri. SideLocal: the handler returned, a task failed, colibri
	// failed the connection (protocol violation, keep-alive, idle or
	// write timeout), the server shut down, or CloseNow was called.
	By Side

	// Duration is how long the connection lived, from the hand-off to the
	// end of its closing handshake, on Config.Clock.
	Duration time.Duration

	// MessagesIn, MessagesOut, BytesIn and BytesOut are the
	// connection's final Stats.
	MessagesIn, MessagesOut int64
	BytesIn, BytesOut       int64
}

// frameCount follows the message a Frames loop reads, frame by frame, to
// report it to the observer whole; only the loop touches it.
type frameCount struct {
	kind messages.Kind
	size int64
}

func (f *frameCount) add(c *Conn, op frames.Opcode, n int, last bool) {
	if c.obs == nil {
		return
	}
	if op != frames.OpContinuation {
		f.kind, f.size = messages.Kind(op), 0
	}
	f.size += int64(n)
	if last {
		c.observe(func() { c.obs.Received(f.kind, f.size) })
	}
}

// reportClose logs the end of the connection once at Debug and tells the
// observer. The caller has torn the transport down.
func (c *Conn) reportClose() {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	c.sockMu.Lock()
	out := c.w.closeOut
	c.sockMu.Unlock()
	info := CloseInfo{By: st.by, Code: st.code, Reason: st.reason}
	switch {
	case st.by == SidePeer && st.peerClosed:
		info.Code, info.Reason = st.peerCode, st.peerReason
	case st.by == SidePeer || !out:
		// The transport ended before a CLOSE frame: the peer left
		// without one, or ours could not go out.
		info.Code, info.Reason = frames.CloseAbnormal, ""
		if ce, ok := errors.AsType[*CloseError](st.cause); ok && ce.Code == frames.CloseAbnormal {
			info.Reason = ce.Reason
		}
	}
	stats := c.Stats()
	info.Duration = c.set.clock.Now().Sub(c.start)
	info.MessagesIn, info.MessagesOut = stats.MessagesIn, stats.MessagesOut
	info.BytesIn, info.BytesOut = stats.BytesIn, stats.BytesOut
	if c.debugOn() {
		c.logger().Debug("connection closed",
			slog.Int("code", int(info.Code)), slog.String("reason", info.Reason),
			slog.String("by", info.By.String()),
			slog.Duration("duration", info.Duration),
			slog.Int64("messages_in", info.MessagesIn), slog.Int64("messages_out", info.MessagesOut),
			slog.Int64("bytes_in", info.BytesIn), slog.Int64("bytes_out", info.BytesOut))
	}
	if c.obs != nil {
		c.observe(func() { c.obs.Closed(info) })
	}
}

// observe calls f, which calls a method of the ConnObserver. The observer
// is the application's code run on the connection's goroutines, the
// background reader and the closing among them, which have no recover of
// their own: a panic in it is logged with its stack and goes no further.
func (c *Conn) observe(f func()) {
	defer func() {
		if v := recover(); v != nil {
			c.logger().Error("connection observer panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		}
	}()
	f()
}

// logAttrs are the attributes of every line the connection logs.
func (c *Conn) logAttrs() []any {
	attrs := make([]any, 0, 5)
	if c.route != "" {
		// First, as the router's lines put it.
		attrs = append(attrs, slog.String("route", c.route))
	}
	return append(attrs,
		slog.Uint64("conn", c.id),
		slog.Any("remote", c.nc.RemoteAddr()),
		slog.String("subprotocol", c.proto),
		slog.String("compression", compressionOf(c.exts)))
}

// compressionOf names the negotiated compression extension, or "none".
func compressionOf(exts []Extension) string {
	for _, e := range exts {
		if e.Name == "permessage-deflate" {
			return "permessage-deflate"
		}
	}
	return "none"
}

package wsconn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Observer watches the connections served with a Config (Config.Observer)
// for metrics, tracing or auditing. The observe package implements it with
// OpenTelemetry.
//
// ConnOpened is called once per connection, after the opening handshake
// and before the handler runs, on the goroutine that serves the
// connection; it may be called for many connections at once. The
// ConnObserver it returns receives that connection's events; nil ignores
// them.
//
// Without an Observer a connection pays one nil check per event.
type Observer interface {
	ConnOpened(c *Conn) ConnObserver
}

// ConnObserver receives the events of one connection. Its methods are
// called on the goroutines doing the work they report (the handler's loop,
// a writer, the reader of a PONG), several at a time, so it must be safe
// for concurrent use. They run in the connection's hot path: they must
// return quickly and must not write to or close the connection.
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

// Side names one end of a connection.
type Side uint8

const (
	// SideLocal is this end: colibri or the handler.
	SideLocal Side = iota + 1
	// SidePeer is the other end.
	SidePeer
)

// String returns "local" or "peer".
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
	// Code and Reason ended the connection: the peer's when its CLOSE
	// frame came first, this side's when it closed first, and
	// frames.CloseAbnormal (1006) when the transport failed before a
	// CLOSE frame went out (the peer vanished, a write failed, CloseNow).
	Code   frames.CloseCode
	Reason string

	// By is the side that started the close. SidePeer: its CLOSE frame
	// arrived before this side sent one, or its transport failed under
	// colibri. SideLocal: the handler returned, a task failed, colibri
	// failed the connection (protocol violation, keep-alive, idle or
	// write timeout), the server shut down, or CloseNow was called.
	By Side

	// Duration is how long the connection lived, from the hand-off to the
	// end of its closing handshake, on Config.Clock.
	Duration time.Duration

	// MessagesIn and MessagesOut count whole messages; BytesIn and
	// BytesOut count payload bytes on the wire, control frames included
	// (see Stats).
	MessagesIn, MessagesOut int64
	BytesIn, BytesOut       int64
}

// watch is what a Conn keeps for its ConnObserver and for the facts of
// its close.
type watch struct {
	obs       ConnObserver
	route     string
	fragSize  int64         // the message WriteFrame has open: its payload bytes so far
	inSize    int64         // the message a Frames loop is reading: its payload bytes so far
	fragKind  messages.Kind // and the kinds of those two messages
	inKind    messages.Kind
	peerFirst bool // under rmu: the peer's CLOSE came before ours
}

// Route returns the pattern of the router's ws route that accepted the
// connection, as ServeMux matched it ("/ws/chat/{room}"), or "" for a
// connection served without a router.
func (c *Conn) Route() string { return c.watch.route }

// opened hands the connection to the Observer, if any.
func (c *Conn) opened() {
	if o := c.set.observer; o != nil {
		c.watch.obs = o.ConnOpened(c)
	}
}

// received reports an incoming message. It is small enough to inline, so
// that without an observer the hot path pays the nil check only.
func (c *Conn) received(kind messages.Kind, size int64) {
	if c.watch.obs != nil {
		c.watch.obs.Received(kind, size)
	}
}

// receivedFrame reports the message a Frames loop reads once its last
// frame is in. The caller holds the read token.
func (c *Conn) receivedFrame(op frames.Opcode, n int, last bool) {
	if c.watch.obs != nil {
		c.watch.frameIn(op, n, last)
	}
}

func (w *watch) frameIn(op frames.Opcode, n int, last bool) {
	if op != frames.OpContinuation {
		w.inKind, w.inSize = messages.Kind(op), 0
	}
	w.inSize += int64(n)
	if last {
		w.obs.Received(w.inKind, w.inSize)
	}
}

// sent reports an outgoing message; see received.
func (c *Conn) sent(kind messages.Kind, size int64) {
	if c.watch.obs != nil {
		c.watch.obs.Sent(kind, size)
	}
}

// sentFrame reports the message WriteFrame sends once its last frame is
// out. The caller holds the message lock.
func (c *Conn) sentFrame(op frames.Opcode, n int, last bool) {
	if c.watch.obs != nil {
		c.watch.frameOut(op, n, last)
	}
}

func (w *watch) frameOut(op frames.Opcode, n int, last bool) {
	if op != frames.OpContinuation {
		w.fragKind, w.fragSize = messages.Kind(op), 0
	}
	w.fragSize += int64(n)
	if last {
		w.obs.Sent(w.fragKind, w.fragSize)
	}
}

// measuredRTT reports a keep-alive round trip.
func (c *Conn) measuredRTT(rtt time.Duration) {
	if c.watch.obs != nil {
		c.watch.obs.PingRTT(rtt)
	}
}

// protocolError reports a violation the peer committed.
func (c *Conn) protocolError(v *frames.Violation) {
	if c.watch.obs != nil {
		c.watch.obs.ProtocolError(v)
	}
}

// closeStarter tells which side started the close, before colibri ends
// the connection itself; when it was the peer, it also returns the code
// and reason that ended the connection.
func (c *Conn) closeStarter() (Side, frames.CloseCode, string) {
	cause := context.Cause(c.ctx)
	c.rmu.Lock()
	peerFirst, code, reason := c.peerClosed && c.watch.peerFirst, c.peerCode, c.peerReason
	c.rmu.Unlock()
	if peerFirst {
		return SidePeer, code, reason
	}
	// A transport that failed under a read or a write, and not because of
	// a timeout or CloseNow on this side, was dropped by the peer.
	if ce, ok := errors.AsType[*CloseError](cause); ok && ce.byColibri && ce.Code == frames.CloseAbnormal &&
		!errors.Is(ce.Err, ErrClosed) && !errors.Is(ce.Err, ErrWriteTimeout) {
		return SidePeer, frames.CloseAbnormal, ce.Reason
	}
	return SideLocal, 0, ""
}

// reportClose logs the end of the connection once at Debug and tells the
// observer. code and reason are the peer's when it started the close, else
// the ones this side sent. The caller has torn the transport down.
func (c *Conn) reportClose(by Side, code frames.CloseCode, reason string) {
	if by == SideLocal {
		c.sockMu.Lock()
		out := c.closeOut
		c.sockMu.Unlock()
		if !out {
			code, reason = frames.CloseAbnormal, ""
			if ce, ok := errors.AsType[*CloseError](context.Cause(c.ctx)); ok && ce.Code == frames.CloseAbnormal {
				reason = ce.Reason
			}
		}
	}
	info := CloseInfo{
		Code:        code,
		Reason:      reason,
		By:          by,
		Duration:    time.Duration(c.set.clock.Now().UnixNano() - c.start),
		MessagesIn:  c.stats.MessagesIn.Load(),
		MessagesOut: c.stats.MessagesOut.Load(),
		BytesIn:     c.stats.BytesIn.Load(),
		BytesOut:    c.stats.BytesOut.Load(),
	}
	if c.debugOn() {
		c.logger().Debug("connection closed",
			slog.Int("code", int(info.Code)), slog.String("reason", info.Reason),
			slog.String("by", info.By.String()),
			slog.Duration("duration", info.Duration),
			slog.Int64("messages_in", info.MessagesIn), slog.Int64("messages_out", info.MessagesOut),
			slog.Int64("bytes_in", info.BytesIn), slog.Int64("bytes_out", info.BytesOut))
	}
	if c.watch.obs != nil {
		c.watch.obs.Closed(info)
	}
}

// logAttrs are the attributes of every line the connection logs.
func (c *Conn) logAttrs() []any {
	attrs := make([]any, 0, 5)
	if c.watch.route != "" {
		// First, as the router's lines put it.
		attrs = append(attrs, slog.String("route", c.watch.route))
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

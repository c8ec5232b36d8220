package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/colibri-ws/colibri/frames"
)

// state is where a connection is in its life. It lives in Conn.st under
// Conn.mu, which is a leaf lock: under it only the transport's
// SetReadDeadline runs (applyReadDeadline).
//
// A connection is open until closing begins, which happens once, for the
// first of: the handler returns, a task fails, the peer's CLOSE arrives,
// colibri fails the connection (protocol violation, keep-alive or idle
// timeout), the server shuts down, out.Close, or the transport fails. The
// first cause decides the CLOSE frame's code (code, reason) and the side
// that began (by); from then on no new message is written. The CLOSE
// frame itself waits for the message being written, unless the cause
// was a failure (now). The handler's context is cancelled with the cause
// (except for out.Close, after which the handler reads on until the
// peer's CLOSE). The connection is closed once the closing handshake is
// over and every task has returned.
type state struct {
	closing bool // closing has begun
	by      Side
	cause   error // what writes refused after closing began wrap
	code    frames.CloseCode
	reason  string
	noFrame bool // no CLOSE frame can go out: the transport failed
	queued  bool // our CLOSE frame is queued for the socket

	cutAtViolation bool // the background reader found a violation behind kept data, and dropped it and what followed

	peerClosed bool // the peer's CLOSE arrived, with:
	peerCode   frames.CloseCode
	peerReason string

	readEnded bool  // nothing more comes from the peer
	readErr   error // why, for Inbound.Err; nil for a clean close

	returned bool // the handler returned: Go starts no task, Writer opens no message

	// Who reads (see inbound.go and background.go).
	looping    bool  // a loop ranges over the Inbound, with:
	limit      int64 // its limit per message (Messages), and
	frameLimit int64 // per frame (Frames); 0: none
	bgRunning  bool
	handover   bool // a loop or the closing handshake waits for the background reader to step aside
	draining   bool // the closing handshake reads, for the peer's CLOSE

	closeDeadline time.Time // reads end by then once our CLOSE is out
}

// wakeReaders is a read deadline in the past: it wakes a reader blocked on
// the socket without losing a byte.
var wakeReaders = time.Unix(1, 0)

// applyReadDeadline is the one place that decides the socket's read
// deadline; c.mu is held. A reader must let go at once when a loop or the
// closing handshake asked for the socket, when the handler's context
// ended (until the closing handshake reads), and when reading is over;
// once our CLOSE is out, reads end by CloseTimeout.
func (c *Conn) applyReadDeadline() {
	var d time.Time
	switch {
	case c.st.handover || c.st.readEnded || (c.ctx.Err() != nil && !c.st.draining):
		d = wakeReaders
	case !c.st.closeDeadline.IsZero():
		d = c.st.closeDeadline
	}
	_ = c.nc.SetReadDeadline(d)
}

// interrupted reports whether a read that timed out was woken on purpose
// (see applyReadDeadline) rather than having run out of time. The only
// deadline a read can run out of is the close deadline: any other timeout
// is a wake, even when the deadline in force has changed since (a record
// of the last deadline set would be wrong then, and the reader would take
// the wake for a failed transport).
func (c *Conn) interrupted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.closeDeadline.IsZero() || time.Now().Before(c.st.closeDeadline)
}

// stop cancels the handler's context with cause (the first cause wins) and
// wakes readers blocked on the socket.
func (c *Conn) stop(cause error) {
	c.cancel(cause)
	c.mu.Lock()
	c.applyReadDeadline()
	c.mu.Unlock()
}

// closeHow is when the CLOSE frame goes out.
type closeHow uint8

const (
	afterMessage closeHow = iota // after the message being written
	closeNow                     // at once, between fragments if need be
)

// beginClose starts closing with code and reason unless closing began
// already, and reports whether it did. cause becomes the handler's
// context's cause (nil: the context goes on, for out.Close).
func (c *Conn) beginClose(by Side, code frames.CloseCode, reason string, cause error, how closeHow) bool {
	c.mu.Lock()
	if !c.markClosing(by, code, reason, cause) {
		// The first cause fixed the code: the handler's context ends with
		// it too (it went on after out.Close, whose cause is the code).
		first := c.st.cause
		c.mu.Unlock()
		if cause != nil {
			c.stop(first)
		}
		return false
	}
	c.mu.Unlock()
	if cause != nil {
		c.stop(cause)
	}
	if how == closeNow {
		c.queueClose()
	} else {
		c.sendPendingClose()
	}
	return true
}

// markClosing records that closing begins with code, reason and cause
// (nil: a cause made of the code, for out.Close) unless it began
// already, and reports whether it did; c.mu is held.
func (c *Conn) markClosing(by Side, code frames.CloseCode, reason string, cause error) bool {
	if c.st.closing {
		return false
	}
	c.st.closing, c.st.by, c.st.code, c.st.reason = true, by, code, truncateReason(reason)
	c.st.cause = cause
	if cause == nil {
		c.st.cause = &CloseError{Code: code, Reason: reason, byColibri: true}
	}
	return true
}

// closedErr is what a refused write returns: ErrClosed, wrapping why the
// connection is closing (a *CloseError with the code, ErrShutdown, ...).
func (c *Conn) closedErr() error {
	c.mu.Lock()
	cause := c.st.cause
	c.mu.Unlock()
	switch {
	case cause == nil:
		return ErrClosed
	case errors.Is(cause, ErrClosed):
		return cause
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}

// endRead marks the inbound side over, keeping the first reason.
func (c *Conn) endRead(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.readEnded {
		return
	}
	c.st.readEnded, c.st.readErr = true, err
	c.applyReadDeadline()
}

// readState returns whether the inbound side is over, and why.
func (c *Conn) readState() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.readEnded, c.st.readErr
}

// loopOutcome reports whether the inbound side ended and what a loop says
// of it: the read's error, except that the peer's clean CLOSE answering a
// close this side began for a reason of its own (a shutdown, the caller's
// context, a failed task) reports that reason, as the handler's context
// does, whichever came first to the loop. After out.Close, or once the
// handler returned, loops end cleanly.
func (c *Conn) loopOutcome() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.st.readEnded {
		return false, nil
	}
	if c.st.readErr == nil && c.st.closing && c.st.by == SideLocal && !colibriMade(c.st.cause) {
		return true, c.st.cause
	}
	return true, c.st.readErr
}

// closedBy returns the side that began closing; c.mu is not held.
func (c *Conn) closedBy() Side {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.by
}

// colibriMade reports whether cause is a close colibri made itself rather
// than a reason it was given; begun on this side, that is the handler's
// return or out.Close, after which loops end cleanly.
func colibriMade(cause error) bool {
	ce, ok := cause.(*CloseError)
	return ok && ce.byColibri
}

// fail ends the connection because of something colibri detected in the
// peer's traffic or timing: loops end with ce, and the CLOSE frame goes out
// at once, ahead of queued data.
func (c *Conn) fail(ce *CloseError) {
	c.endRead(ce)
	c.beginClose(SideLocal, ce.Code, ce.Reason, ce, closeNow)
}

// transportFailed ends a connection whose transport broke (a read or write
// failed, or CloseNow): no CLOSE frame can follow.
func (c *Conn) transportFailed(ce *CloseError, by Side) {
	c.mu.Lock()
	c.markClosing(by, frames.CloseAbnormal, ce.Reason, ce)
	first := c.st.cause // ends the context, if out.Close left it open
	c.st.noFrame = true
	c.mu.Unlock()
	c.endRead(ce)
	c.stop(first)
}

// peerClosing records the peer's CLOSE: the inbound side is over, and
// colibri answers with the same code after the message being written
// (RFC 6455 §5.5.1).
func (c *Conn) peerClosing(code frames.CloseCode, reason string) {
	c.mu.Lock()
	c.st.peerClosed, c.st.peerCode, c.st.peerReason = true, code, reason
	c.mu.Unlock()
	var readErr error
	switch code {
	case frames.CloseNormal, frames.CloseGoingAway, frames.CloseNoStatus:
	default:
		readErr = &CloseError{Code: code, Reason: reason}
	}
	if c.debugOn() {
		c.logger().Debug("peer closed", slog.Int("code", int(code)), slog.String("reason", reason))
	}
	c.endRead(readErr)
	cause := &CloseError{Code: code, Reason: reason, Err: ErrClosed, byColibri: true}
	c.beginClose(SidePeer, code, reason, cause, afterMessage)
}

// closeGoingAway begins a graceful close with 1001: the server is shutting
// down (ErrShutdown) or the context Serve was given ended (its cause).
func (c *Conn) closeGoingAway(cause error) {
	c.beginClose(SideLocal, frames.CloseGoingAway, goingAwayReason(cause), cause, afterMessage)
}

// goingAwayReason is the reason of a 1001 whose cause is cause.
func goingAwayReason(cause error) string {
	if errors.Is(cause, ErrShutdown) {
		return "server shutting down"
	}
	return "going away"
}

// taskFailed begins closing because a task returned err or panicked.
func (c *Conn) taskFailed(err error) {
	if ours(err) {
		return
	}
	if cause := context.Cause(c.ctx); cause != nil && errors.Is(err, cause) {
		// The task passes on why its context ended (a sibling's failure,
		// a protocol violation): closing began with it, and it was logged.
		return
	}
	code, reason := c.codeFor(err, "connection task")
	c.beginClose(SideLocal, code, reason, err, afterMessage)
}

// handlerClose returns how the handler's return closes the connection:
// the code and reason that follow from what it returned (a failure is
// logged), and the cause, or ok false when closing began already with the
// cause herr passes on.
func (c *Conn) handlerClose(herr error) (code frames.CloseCode, reason string, cause error, ok bool) {
	switch cause := context.Cause(c.ctx); {
	case applicationClose(herr):
		// Its code decides, whatever it wraps.
		code, reason = c.codeFor(herr, "handler")
	case herr == nil || errors.Is(herr, context.Canceled) || errors.Is(herr, ErrClosed):
		code = frames.CloseNormal
	case cause != nil && errors.Is(herr, cause):
		// The handler passes on why its context ended (a failed task, a
		// protocol violation): closing began with it, and it was logged.
		return 0, "", nil, false
	default:
		code, reason = c.codeFor(herr, "handler")
	}
	return code, reason, &CloseError{Code: code, Reason: reason, Err: ErrClosed, byColibri: true}, true
}

// codeFor returns the close code and reason for an error a task or the
// handler (who) returned, and logs the failures, once each.
func (c *Conn) codeFor(err error, who string) (frames.CloseCode, string) {
	var pe *panicError
	switch ce, isClose := errors.AsType[*CloseError](err); {
	case errors.As(err, &pe):
		c.logger().Error(who+" panicked", slog.Any("panic", pe.value), slog.String("stack", string(pe.stack)))
	case isClose:
		if ce.Code != frames.CloseNoStatus && !ce.Code.Valid() {
			c.logger().Error(who+" closed with a code that cannot be sent", slog.Int("code", int(ce.Code)))
			break
		}
		// Decided here rather than when the frame is made, so that what
		// is recorded (CloseInfo, the log, metrics) is what is sent.
		var b [frames.MaxControlPayload]byte
		if _, err := frames.AppendClose(b[:0], ce.Code, truncateReason(ce.Reason)); err != nil {
			c.logger().Error(who+" closed with a reason that cannot be sent", slog.Int("code", int(ce.Code)), slog.Any("err", err))
			return frames.CloseInternalError, ""
		}
		return ce.Code, ce.Reason
	case errors.Is(err, ErrShutdown):
		return frames.CloseGoingAway, "server shutting down"
	default:
		c.logger().Error(who+" failed", slog.Any("err", err))
	}
	return frames.CloseInternalError, "internal error"
}

// ours reports whether an error a task returned came from colibri itself
// (a close it made, a shutdown, a cancellation) rather than from a
// failure of the task. A *CloseError the application made is never
// colibri's, even when it wraps a cancellation.
func ours(err error) bool {
	if ce, ok := errors.AsType[*CloseError](err); ok {
		return ce.byColibri
	}
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrShutdown) || errors.Is(err, ErrClosed)
}

// applicationClose reports whether err is, or wraps, a *CloseError that
// the application made rather than colibri.
func applicationClose(err error) bool {
	ce, ok := errors.AsType[*CloseError](err)
	return ok && !ce.byColibri
}

// awaitPeerClose reads, discarding data, until the peer answers our CLOSE,
// CloseTimeout passes or the transport fails. It is the last reader.
func (c *Conn) awaitPeerClose() {
	c.mu.Lock()
	c.st.draining = true
	skip := c.st.readEnded || c.st.noFrame
	c.applyReadDeadline()
	c.mu.Unlock()
	if skip {
		return
	}
	for {
		c.takeRead()
		err := c.readToClose()
		c.readMu.Unlock()
		if err != errInterrupted {
			return
		}
		// A task's loop asked for the socket. Now that the handler's
		// context has ended it stops before reading a frame: wait for it
		// and read on.
	}
}

// readToClose discards data frames until reading ends (the peer's CLOSE,
// the close deadline, a failure) or another reader asks for the socket;
// the caller holds readMu.
func (c *Conn) readToClose() error {
	for {
		if _, err := c.nextData(); err != nil {
			return err
		}
		if err := c.skipPayload(c.remaining); err != nil {
			return err
		}
	}
}

// flushClose makes sure our CLOSE is on the wire before the transport
// closes: it may still wait for a message being written by a goroutine
// outside the handler and its tasks (one holding the Outbound, as a topics
// member does), and after the peer's CLOSE nothing else waits for it. The
// wait for the message is bounded by CloseTimeout, the frame under way by
// WriteTimeout.
func (c *Conn) flushClose() {
	c.mu.Lock()
	pending, queued := c.st.closing && !c.st.noFrame, c.st.queued
	c.mu.Unlock()
	if !pending {
		return
	}
	if !queued {
		t := time.NewTimer(c.set.closeTimeout)
		defer t.Stop()
		select {
		case c.msgLock <- struct{}{}:
			// Queued here, under the lock: letting it go first would let
			// a write about to be refused take it, and the CLOSE would
			// wait for that writer while the transport closes.
			c.queueClose()
			<-c.msgLock
		case <-t.C:
			return
		}
	}
	c.sockMu.Lock()
	c.flushControl()
	c.unlockSock()
}

// closeLinger is how long teardown reads, after a close the peer did not
// answer in time, for what the peer sent as our CLOSE went out: its CLOSE
// crossing ours most often. Long enough for that on loopback and a LAN;
// short enough that a peer that is not answering costs nothing.
const closeLinger = 50 * time.Millisecond

// teardown closes the transport. After a clean handshake the server closes
// TCP first (RFC 6455 §7.1.1), and the client waits for it. Otherwise it
// shuts its sending side and reads until the peer closes, so that unread
// bytes do not turn the close into a reset that could swallow the CLOSE
// frame in flight: for up to CloseTimeout after a violation (the peer is
// talking), for up to closeLinger when the peer did not answer our CLOSE
// (a timeout, a close deadline passed).
func (c *Conn) teardown() {
	c.mu.Lock()
	clean := c.st.peerClosed
	_, violated := errors.AsType[*frames.Violation](c.st.readErr)
	// The peer shut its sending side: everything it sent has been read.
	peerDone := errors.Is(c.st.readErr, io.EOF) || errors.Is(c.st.readErr, io.ErrUnexpectedEOF)
	c.mu.Unlock()
	c.sockMu.Lock()
	broken := c.w.broken || !c.w.closeOut
	c.w.broken = true
	c.sockMu.Unlock()

	defer c.rd.release()
	if (clean && !c.client) || broken || peerDone {
		_ = c.nc.Close()
		return
	}
	switch cw, ok := c.nc.(interface{ CloseWrite() error }); {
	case c.client && clean:
		// Once the server has answered, the client waits for it to close
		// TCP first (RFC 6455 §7.1.1), sending nothing, not even its FIN:
		// whoever closes first holds TIME_WAIT, and that is the server.
		deadline := time.Now().Add(c.set.closeTimeout)
		if drain(c.nc, deadline) {
			if tc, ok := c.nc.(interface{ NetConn() net.Conn }); ok {
				// TLS: its end (close_notify) may come before TCP's.
				// Wait for that on the TCP connection, and close it
				// without a close_notify of ours, which, written once
				// the server has closed, would only draw a reset.
				raw := tc.NetConn()
				drain(raw, deadline)
				_ = raw.Close()
				return
			}
		}
	case ok:
		// A peer that never answered (our CLOSE went unanswered for
		// CloseTimeout, or keep-alive gave up on it) is not waited for
		// twice, only for what crossed our CLOSE.
		wait := min(closeLinger, c.set.closeTimeout)
		if violated {
			wait = c.set.closeTimeout
		}
		_ = cw.CloseWrite()
		drain(c.nc, time.Now().Add(wait))
	}
	_ = c.nc.Close()
}

// drain reads and discards what the peer sends on nc, at most 1 MiB,
// until it closes its side or the deadline passes, and reports whether it
// closed.
func drain(nc net.Conn, deadline time.Time) (closed bool) {
	_ = nc.SetReadDeadline(deadline)
	var scratch [512]byte
	for range 1 << 11 {
		if _, err := nc.Read(scratch[:]); err != nil {
			return errors.Is(err, io.EOF)
		}
	}
	return false
}

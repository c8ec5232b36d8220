package wsconn

import (
	"errors"
	"fmt"

	"github.com/colibri-ws/colibri/frames"
)

// Sentinel errors, for errors.Is.
var (
	// ErrClosed is returned by writes after the connection started
	// closing or the peer went away (a write error matches it too), and by
	// a message reader used after its loop body returned.
	ErrClosed = errors.New("wsconn: connection closed")

	// ErrShutdown is the cause of a connection's context when the server
	// it belongs to (an app or a router) shuts down; such connections
	// close with 1001 Going Away, or the server's ShutdownCode.
	ErrShutdown = errors.New("wsconn: server shutting down")

	// ErrPingTimeout ends a connection whose peer did not answer a PING
	// within Config.PongTimeout.
	ErrPingTimeout = errors.New("wsconn: peer did not answer ping")

	// ErrIdleTimeout ends a connection whose peer sent no data frame for
	// Config.IdleTimeout.
	ErrIdleTimeout = errors.New("wsconn: idle timeout")

	// ErrWriteTimeout ends a connection whose peer stopped reading: a write
	// waited longer than Config.WriteTimeout.
	ErrWriteTimeout = errors.New("wsconn: write timeout")

	// ErrBusyReading is returned (through Inbound.Err) when a second
	// goroutine ranges over the inbound side while another one is.
	ErrBusyReading = errors.New("wsconn: inbound is already being read")

	// ErrInvalidKind is returned by a write given a messages.Kind other
	// than KindText and KindBinary (the zero Message among them); nothing
	// is sent.
	ErrInvalidKind = errors.New("wsconn: message kind is neither text nor binary")
)

// CloseCode is a close status code (RFC 6455 §7.4). The ones a handler
// most often closes with are named here; frames has them all.
type CloseCode = frames.CloseCode

// Close codes for handlers (see frames for the rest).
const (
	CloseNormal          = frames.CloseNormal          // 1000: done
	CloseGoingAway       = frames.CloseGoingAway       // 1001: server or page going away
	ClosePolicyViolation = frames.ClosePolicyViolation // 1008: the peer broke an application rule
	CloseInternalError   = frames.CloseInternalError   // 1011: the server failed
	CloseTryAgainLater   = frames.CloseTryAgainLater   // 1013: overloaded, retry later
)

// CloseError is a close with its code and reason. Handlers return one to
// close with a chosen code; Inbound.Err returns one when the peer closed
// with a code other than 1000, 1001 or 1005, or when colibri closed the
// connection because the peer broke the protocol (Err then says how, and
// is a *frames.Violation).
type CloseError struct {
	Code   CloseCode
	Reason string
	// Err is what made colibri close, if anything: a *frames.Violation
	// for a broken protocol. Inbound.Err returns a peer's close with Err
	// nil; the same close as the context's cause, or inside a refused
	// write's error, has Err ErrClosed, saying the connection is closing.
	Err error

	byColibri bool // made by colibri, not returned by a task
}

// Error describes the close: its code, its reason if any, and Err.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("wsconn: close %v", e.Code)
	}
	return fmt.Sprintf("wsconn: close %v: %s", e.Code, e.Reason)
}

// Unwrap returns Err.
func (e *CloseError) Unwrap() error { return e.Err }

// CloseStatus returns the close code carried by err, or 0 when err holds
// no *CloseError.
func CloseStatus(err error) frames.CloseCode {
	if ce, ok := errors.AsType[*CloseError](err); ok {
		return ce.Code
	}
	return 0
}

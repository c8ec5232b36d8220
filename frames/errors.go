package frames

import "errors"

// Violation is a breach of the protocol by the peer, together with the close
// code that RFC 6455 §7.4.1 says the connection should be failed with.
//
// The sentinel errors of this package and of package messages are Violation
// values, compared by identity: test for a rule with errors.Is(err,
// frames.ErrMasked) and read the code with [CodeOf] or errors.As. Callers
// must not modify a Violation, the sentinels above all: they are shared by
// every connection and goroutine.
type Violation struct {
	// Code is the close code to send when failing the connection.
	Code CloseCode
	// Reason is a short lower-case description of the breach. It is at most
	// MaxCloseReason bytes of ASCII, so it can be sent as the close reason
	// as it is.
	Reason string
}

// Error returns v.Reason. It has no package prefix because the reason is also
// what goes on the wire, where the peer has no use for Go package names.
func (v *Violation) Error() string {
	return v.Reason
}

// ErrShortHeader reports that a buffer ends before the frame header it
// begins. It is not a violation: the caller should read more bytes and parse
// again.
var ErrShortHeader = errors.New("frames: short header")

// Violations found in frame headers (RFC 6455 §5.1, §5.2, §5.5).
var (
	// ErrLengthMSB is returned by ParseHeader for a 64-bit payload length
	// whose most significant bit is set, which RFC 6455 §5.2 forbids.
	ErrLengthMSB = &Violation{Code: CloseProtocolError, Reason: "64-bit payload length with the most significant bit set"}

	// ErrReservedOpcode reports a frame with an opcode RFC 6455 §5.2 leaves
	// reserved.
	ErrReservedOpcode = &Violation{Code: CloseProtocolError, Reason: "reserved opcode"}

	// ErrReservedBits reports RSV bits that no negotiated extension defines
	// (RFC 6455 §5.2), or any RSV bit on a control frame (RFC 7692 §6).
	ErrReservedBits = &Violation{Code: CloseProtocolError, Reason: "reserved bits set without a negotiated extension"}

	// ErrFragmentedControl reports a control frame without FIN
	// (RFC 6455 §5.5).
	ErrFragmentedControl = &Violation{Code: CloseProtocolError, Reason: "fragmented control frame"}

	// ErrControlTooLong reports a control frame whose payload is longer than
	// MaxControlPayload (RFC 6455 §5.5).
	ErrControlTooLong = &Violation{Code: CloseProtocolError, Reason: "control frame payload over 125 bytes"}

	// ErrUnmasked reports a frame from a client without a mask
	// (RFC 6455 §5.1).
	ErrUnmasked = &Violation{Code: CloseProtocolError, Reason: "client frame not masked"}

	// ErrMasked reports a frame from a server with a mask (RFC 6455 §5.1).
	ErrMasked = &Violation{Code: CloseProtocolError, Reason: "server frame masked"}
)

// Violations found in close payloads (RFC 6455 §5.5.1, §7.4).
var (
	// ErrClosePayload reports a close payload of a single byte, too short to
	// hold a close code (RFC 6455 §5.5.1).
	ErrClosePayload = &Violation{Code: CloseProtocolError, Reason: "close payload of one byte"}

	// ErrInvalidCloseCode reports a close code that may not be sent in a
	// close frame; see CloseCode.Valid.
	ErrInvalidCloseCode = &Violation{Code: CloseProtocolError, Reason: "invalid close code"}

	// ErrCloseReasonTooLong reports a close reason longer than
	// MaxCloseReason bytes, which would make the control frame exceed
	// MaxControlPayload (RFC 6455 §5.5).
	ErrCloseReasonTooLong = &Violation{Code: CloseProtocolError, Reason: "close reason over 123 bytes"}

	// ErrInvalidCloseReason reports a close reason that is not valid UTF-8
	// (RFC 6455 §5.5.1), which calls for close code 1007 (RFC 6455 §8.1).
	ErrInvalidCloseReason = &Violation{Code: CloseInvalidPayload, Reason: "close reason is not valid UTF-8"}
)

// CodeOf returns the close code that err calls for, and true, if err is or
// wraps a [*Violation]. For any other error, nil included, it returns 0 and
// false; what to send then is the caller's choice (usually
// CloseInternalError).
func CodeOf(err error) (CloseCode, bool) {
	var v *Violation
	if errors.As(err, &v) && v != nil {
		return v.Code, true
	}
	return 0, false
}

// argError is what AppendClose and Close return for arguments that would
// break a rule of the protocol. It matches the corresponding sentinel with
// errors.Is, so callers can tell the rules apart, but it does not unwrap to
// the *Violation: the mistake is the caller's, not the peer's, and CodeOf
// must not suggest failing the connection with a protocol error for it.
type argError struct {
	rule *Violation
	msg  string
}

func (e *argError) Error() string { return e.msg }

func (e *argError) Is(target error) bool { return target == e.rule }

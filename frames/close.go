package frames

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// CloseCode is the status code at the start of a close frame's payload
// (RFC 6455 §5.5.1, §7.4). Codes below 3000 are defined by RFC 6455 and the
// IANA WebSocket Close Code Number Registry (RFC 6455 §11.7); 3000 to 3999
// are registered by libraries and applications with IANA; 4000 to 4999 are
// for private use by applications (RFC 6455 §7.4.2).
type CloseCode uint16

// The close codes of RFC 6455 §7.4.1 and the IANA registry.
const (
	CloseNormal             CloseCode = 1000 // the purpose of the connection is fulfilled
	CloseGoingAway          CloseCode = 1001 // a server shutting down, or a browser leaving the page
	CloseProtocolError      CloseCode = 1002 // the peer broke the protocol
	CloseUnsupportedData    CloseCode = 1003 // a message of a type the endpoint cannot accept
	CloseNoStatus           CloseCode = 1005 // never sent: the close frame had no code
	CloseAbnormal           CloseCode = 1006 // never sent: the connection ended without a close frame
	CloseInvalidPayload     CloseCode = 1007 // message data inconsistent with its type, such as bad UTF-8
	ClosePolicyViolation    CloseCode = 1008 // a message that breaks the endpoint's policy
	CloseMessageTooBig      CloseCode = 1009 // a message too big to process
	CloseMandatoryExtension CloseCode = 1010 // sent by a client: the server did not negotiate a needed extension
	CloseInternalError      CloseCode = 1011 // sent by a server: an unexpected condition
	CloseServiceRestart     CloseCode = 1012 // the service is restarting (IANA registry)
	CloseTryAgainLater      CloseCode = 1013 // temporarily overloaded (IANA registry)
	CloseBadGateway         CloseCode = 1014 // a gateway got a bad response upstream (IANA registry)
	CloseTLSHandshake       CloseCode = 1015 // never sent: the TLS handshake failed
)

// String returns the code's number and name, such as "1000 normal closure".
// A code without a name says which range it belongs to: "1004 (reserved)",
// "3000 (registered)", "4000 (application)", "999 (unused)" or
// "5000 (out of range)".
func (c CloseCode) String() string {
	n := strconv.FormatUint(uint64(c), 10)
	if name := closeNames[c]; name != "" {
		return n + " " + name
	}
	switch {
	case c < 1000:
		return n + " (unused)"
	case c < 3000:
		return n + " (reserved)"
	case c < 4000:
		return n + " (registered)"
	case c < 5000:
		return n + " (application)"
	}
	return n + " (out of range)"
}

var closeNames = map[CloseCode]string{
	CloseNormal:             "normal closure",
	CloseGoingAway:          "going away",
	CloseProtocolError:      "protocol error",
	CloseUnsupportedData:    "unsupported data",
	CloseNoStatus:           "no status received",
	CloseAbnormal:           "abnormal closure",
	CloseInvalidPayload:     "invalid payload data",
	ClosePolicyViolation:    "policy violation",
	CloseMessageTooBig:      "message too big",
	CloseMandatoryExtension: "mandatory extension",
	CloseInternalError:      "internal error",
	CloseServiceRestart:     "service restart",
	CloseTryAgainLater:      "try again later",
	CloseBadGateway:         "bad gateway",
	CloseTLSHandshake:       "TLS handshake failure",
}

// Valid reports whether c may appear in a close frame on the wire: 1000 to
// 1003, 1007 to 1014, and 3000 to 4999.
//
// Codes below 1000 are never used and 1004 is reserved (RFC 6455 §7.4.2);
// 1005, 1006 and 1015 only report locally that a close frame had no code,
// that no close frame arrived, or that TLS failed, and must not be sent
// (RFC 6455 §7.4.1). 1016 to 2999 are kept for future revisions and
// extensions and have no meaning yet; 5000 and above are outside every range
// RFC 6455 defines.
func (c CloseCode) Valid() bool {
	switch {
	case c >= 1000 && c <= 1003:
		return true
	case c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// AppendClose appends the payload of a close frame with code and reason to
// dst and returns the extended slice (RFC 6455 §5.5.1).
//
// CloseNoStatus with an empty reason appends nothing: it stands for a close
// frame without a payload. Otherwise code must be Valid, and reason at most
// MaxCloseReason bytes of valid UTF-8; if not, AppendClose returns dst
// unchanged and an error that matches ErrInvalidCloseCode,
// ErrCloseReasonTooLong or ErrInvalidCloseReason with errors.Is. Those errors
// describe the caller's arguments rather than the peer, so CodeOf reports
// false for them.
func AppendClose(dst []byte, code CloseCode, reason string) ([]byte, error) {
	if code == CloseNoStatus && reason == "" {
		return dst, nil
	}
	if !code.Valid() {
		return dst, &argError{ErrInvalidCloseCode, "frames: close code " + code.String() + " may not be sent"}
	}
	if len(reason) > MaxCloseReason {
		return dst, &argError{ErrCloseReasonTooLong, "frames: close reason of " + strconv.Itoa(len(reason)) + " bytes is over 123"}
	}
	if !utf8.ValidString(reason) {
		return dst, &argError{ErrInvalidCloseReason, "frames: close reason is not valid UTF-8"}
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...), nil
}

// ParseClose reads the payload of a close frame received from the peer
// (RFC 6455 §5.5.1, §7.4).
//
// An empty payload gives CloseNoStatus and an empty reason, as RFC 6455
// §7.1.5 prescribes. Otherwise the payload must hold a Valid code and a
// reason of at most MaxCloseReason bytes of UTF-8. A bad payload gives one of
// ErrClosePayload (a single byte), ErrInvalidCloseCode, ErrCloseReasonTooLong
// or ErrInvalidCloseReason; whenever the payload holds a code, it is returned
// with the error, for logging.
func ParseClose(p []byte) (CloseCode, string, error) {
	switch len(p) {
	case 0:
		return CloseNoStatus, "", nil
	case 1:
		return 0, "", ErrClosePayload
	}
	code := CloseCode(binary.BigEndian.Uint16(p))
	if !code.Valid() {
		return code, "", ErrInvalidCloseCode
	}
	reason := p[2:]
	if len(reason) > MaxCloseReason {
		return code, "", ErrCloseReasonTooLong
	}
	if !utf8.Valid(reason) {
		return code, "", ErrInvalidCloseReason
	}
	return code, string(reason), nil
}

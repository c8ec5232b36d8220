package frames

import (
	"strconv"
	"strings"
)

// Opcode is the four-bit frame type from the first header byte
// (RFC 6455 §5.2). Opcodes 0x8 to 0xF are control frames, 0x0 to 0x7 data
// frames; those without a defined meaning are reserved and must fail the
// connection when received.
type Opcode byte

// The opcodes defined by RFC 6455 §5.2 and §11.8.
const (
	OpContinuation Opcode = 0x0 // a further fragment of a data message (§5.4)
	OpText         Opcode = 0x1 // the first frame of a UTF-8 text message (§5.6)
	OpBinary       Opcode = 0x2 // the first frame of a binary message (§5.6)
	OpClose        Opcode = 0x8 // the closing handshake (§5.5.1)
	OpPing         Opcode = 0x9 // a keep-alive or liveness probe (§5.5.2)
	OpPong         Opcode = 0xA // the answer to a ping, or unsolicited (§5.5.3)
)

// String returns the opcode's lower-case name, such as "text" or "ping". A
// reserved opcode reads "reserved(0x3)", and a value that does not fit in
// four bits reads "opcode(0x10)".
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	if o <= 0xF {
		return "reserved(0x" + hexDigits[o:o+1] + ")"
	}
	return "opcode(0x" + strings.ToUpper(strconv.FormatUint(uint64(o), 16)) + ")"
}

// hexDigits spells opcodes the way RFC 6455 writes them: 0xB, not 0xb.
const hexDigits = "0123456789ABCDEF"

// IsControl reports whether o is a control opcode, 0x8 to 0xF, the reserved
// ones included (RFC 6455 §5.5). Control frames may be sent in the middle of a
// fragmented message.
func (o Opcode) IsControl() bool {
	return o&0xF8 == 0x8
}

// IsData reports whether o is a data opcode, 0x0 to 0x7, the reserved ones
// included (RFC 6455 §5.6).
func (o Opcode) IsData() bool {
	return o <= 0x7
}

// IsReserved reports whether o is not one of the six opcodes RFC 6455 §5.2
// defines: 0x3 to 0x7, 0xB to 0xF, and any value over four bits.
func (o Opcode) IsReserved() bool {
	switch o {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return false
	}
	return true
}

// The RSV bits as they sit in [Header.Rsv] and [Frame.Rsv]: the three bits
// after FIN in the first header byte, shifted down (RFC 6455 §5.2). They must
// be zero unless a negotiated extension gives them a meaning, as
// permessage-deflate does for RSV1 (RFC 7692 §6).
const (
	Rsv1 byte = 0x4
	Rsv2 byte = 0x2
	Rsv3 byte = 0x1
)

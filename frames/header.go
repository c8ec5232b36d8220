package frames

import "encoding/binary"

// Size limits of RFC 6455 §5.2 and §5.5.
const (
	// MaxHeaderSize is the length of the longest frame header: two fixed
	// bytes, an eight-byte extended length and a four-byte masking key.
	MaxHeaderSize = 14
	// MaxControlPayload is the largest payload of a control frame
	// (RFC 6455 §5.5).
	MaxControlPayload = 125
	// MaxCloseReason is the largest close reason: a control payload less the
	// two-byte close code (RFC 6455 §5.5.1).
	MaxCloseReason = MaxControlPayload - 2
)

// Header is a decoded frame header (RFC 6455 §5.2).
type Header struct {
	// Op is the opcode, the low four bits of the first byte.
	Op Opcode
	// Fin marks the last frame of a message.
	Fin bool
	// Rsv holds the RSV bits as Rsv1|Rsv2|Rsv3.
	Rsv byte
	// Masked reports that a masking key follows the length and that the
	// payload is masked with Mask.
	Masked bool
	// Mask is the masking key when Masked is set (RFC 6455 §5.3).
	Mask [4]byte
	// Length is the payload length in bytes, at most 1<<63 - 1.
	Length int64
}

// Bits of the first two header bytes (RFC 6455 §5.2).
const (
	bitFin    = 0x80
	bitMask   = 0x80
	rsvShift  = 4
	len7Mask  = 0x7F
	len16Code = 126 // a 16-bit length follows
	len64Code = 127 // a 64-bit length follows
)

// HeaderSize reports the size of the whole header whose first two bytes are
// b0 and b1: 2 bytes, plus 2 or 8 for an extended length, plus 4 for a masking
// key, so between 2 and MaxHeaderSize. Only b1 decides the size; b0 is taken
// so that callers can pass the first two bytes as they are.
func HeaderSize(b0, b1 byte) int {
	n := 2
	switch b1 & len7Mask {
	case len16Code:
		n += 2
	case len64Code:
		n += 8
	}
	if b1&bitMask != 0 {
		n += 4
	}
	return n
}

// ParseHeader parses the frame header at the start of b, which must hold at
// least HeaderSize(b[0], b[1]) bytes; bytes after the header are ignored, and
// the header's size is HeaderSize(b[0], b[1]).
//
// A b too short for the header gives ErrShortHeader. A 64-bit length with its
// most significant bit set gives ErrLengthMSB (RFC 6455 §5.2). Lengths
// encoded in more bytes than needed are accepted. On error the returned
// Header is the zero value.
//
// ParseHeader does not apply the rules of the protocol; follow it with
// [Header.Check]. It does not allocate.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 2 {
		return Header{}, ErrShortHeader
	}
	b0, b1 := b[0], b[1]
	if len(b) < HeaderSize(b0, b1) {
		return Header{}, ErrShortHeader
	}
	h := Header{
		Op:     Opcode(b0 & 0x0F),
		Fin:    b0&bitFin != 0,
		Rsv:    (b0 >> rsvShift) & (Rsv1 | Rsv2 | Rsv3),
		Masked: b1&bitMask != 0,
	}
	rest := b[2:]
	switch l := b1 & len7Mask; l {
	case len16Code:
		h.Length = int64(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
	case len64Code:
		l64 := binary.BigEndian.Uint64(rest)
		if l64>>63 != 0 {
			return Header{}, ErrLengthMSB
		}
		h.Length = int64(l64)
		rest = rest[8:]
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], rest)
	}
	return h, nil
}

// PutHeader writes h into b with the shortest length encoding, as
// RFC 6455 §5.2 requires, and returns the number of bytes written. The
// masking key is written only when h.Masked is set. Bits of h.Op above the
// low four and of h.Rsv above the low three are dropped.
//
// b must have room for MaxHeaderSize bytes, or at least for the header being
// written, and h.Length must not be negative; PutHeader panics otherwise, as
// both are mistakes in the caller. It does not allocate.
func PutHeader(b []byte, h Header) int {
	if h.Length < 0 {
		panic("frames: PutHeader with a negative length")
	}
	b0 := byte(h.Op&0x0F) | (h.Rsv&(Rsv1|Rsv2|Rsv3))<<rsvShift
	if h.Fin {
		b0 |= bitFin
	}
	var b1 byte
	if h.Masked {
		b1 = bitMask
	}
	var n int
	switch {
	case h.Length < len16Code:
		_ = b[1]
		b[1] = b1 | byte(h.Length)
		n = 2
	case h.Length <= 0xFFFF:
		_ = b[3]
		b[1] = b1 | len16Code
		binary.BigEndian.PutUint16(b[2:], uint16(h.Length))
		n = 4
	default:
		_ = b[9]
		b[1] = b1 | len64Code
		binary.BigEndian.PutUint64(b[2:], uint64(h.Length))
		n = 10
	}
	b[0] = b0
	if h.Masked {
		_ = b[n+3] // b[n:n+4] alone is checked against cap(b), not len(b)
		n += copy(b[n:n+4], h.Mask[:])
	}
	return n
}

// Check applies the rules of RFC 6455 to h, a header received from the peer,
// and returns the first rule it breaks as a [*Violation], or nil.
//
// fromClient says who sent the frame: a server checks frames from a client,
// which must be masked, and a client checks frames from a server, which must
// not be (RFC 6455 §5.1). allowedRsv holds the RSV bits that negotiated
// extensions may set on data frames: 0 without extensions, Rsv1 with
// permessage-deflate (RFC 7692 §6).
//
// The rules, in the order they are checked:
//   - the opcode is not reserved: ErrReservedOpcode (RFC 6455 §5.2);
//   - data frames set only allowedRsv bits and control frames set none:
//     ErrReservedBits (RFC 6455 §5.2, RFC 7692 §6);
//   - control frames have FIN: ErrFragmentedControl (RFC 6455 §5.5);
//   - control payloads are at most MaxControlPayload bytes:
//     ErrControlTooLong (RFC 6455 §5.5);
//   - the frame is masked if and only if fromClient: ErrUnmasked, ErrMasked
//     (RFC 6455 §5.1).
//
// Check knows nothing of the frames before h. RFC 7692 §6 also forbids
// RSV1 on continuation frames under permessage-deflate, where it is set on
// the first frame of a compressed message only; with allowedRsv = Rsv1, Check
// accepts it on any data frame, and the caller, who tracks messages, must
// reject it on a continuation.
func (h Header) Check(fromClient bool, allowedRsv byte) error {
	if h.Op.IsReserved() {
		return ErrReservedOpcode
	}
	if h.Op.IsControl() {
		if h.Rsv != 0 {
			return ErrReservedBits
		}
		if !h.Fin {
			return ErrFragmentedControl
		}
		if h.Length > MaxControlPayload {
			return ErrControlTooLong
		}
	} else if h.Rsv&^allowedRsv != 0 {
		return ErrReservedBits
	}
	if h.Masked != fromClient {
		if fromClient {
			return ErrUnmasked
		}
		return ErrMasked
	}
	return nil
}

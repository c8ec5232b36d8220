// Package frames is the WebSocket protocol vocabulary and frame codec of
// colibri: opcodes, close codes, the frame value, close payloads, and the
// reading, writing and checking of frame headers as RFC 6455 §5 defines them.
//
// The package holds no sockets and starts no goroutines. Its functions work on
// byte slices the caller owns, so a connection can parse a header out of its
// read buffer, unmask a payload in place and build the next header in a
// per-connection scratch array without allocating.
//
// # Headers
//
// A frame header is 2 to 14 bytes long (RFC 6455 §5.2). [HeaderSize] tells
// from the first two bytes how many bytes the whole header takes, so a reader
// knows how much to buffer before calling [ParseHeader]. [PutHeader] writes a
// header with the shortest length encoding, which RFC 6455 §5.2 requires of
// senders. ParseHeader accepts longer encodings than needed, as most
// implementations do, since they are unambiguous.
//
// Parsing and checking are separate steps. ParseHeader rejects only what
// cannot be represented (a 64-bit length with its top bit set); [Header.Check]
// then applies the rules that depend on the side of the connection and on the
// negotiated extensions: reserved opcodes, RSV bits, fragmented or oversized
// control frames, and masking (RFC 6455 §5.1, §5.2, §5.5).
//
// # Masking
//
// Frames sent by a client are masked with a four-byte key (RFC 6455 §5.3).
// [Mask] applies or removes the mask in place and returns the key position to
// continue from, so a payload can be unmasked piece by piece as it arrives.
//
// # Close frames
//
// A close frame's payload is empty or holds a two-byte [CloseCode] followed by
// a UTF-8 reason (RFC 6455 §5.5.1). [AppendClose] builds one and [ParseClose]
// reads one received from the peer; both enforce the rules of RFC 6455 §7.4
// and the IANA close code registry (RFC 6455 §11.7) through
// [CloseCode.Valid].
//
// # Errors
//
// Every breach of the protocol by the peer is reported as a [*Violation]
// carrying the close code it calls for: 1002 for a protocol error, 1007 for
// invalid UTF-8 (RFC 6455 §7.4.1). The sentinel errors such as
// [ErrReservedOpcode] are themselves Violations, so callers test for a
// particular rule with [errors.Is] and learn the close code with [CodeOf]:
//
//	h, err := frames.ParseHeader(buf)
//	if err == nil {
//		err = h.Check(true, 0)
//	}
//	if code, ok := frames.CodeOf(err); ok {
//		// fail the connection with code (RFC 6455 §7.1.7)
//	}
//
// [ErrShortHeader] is not a violation: it only says more bytes are needed.
//
// See the package examples for building and parsing close payloads.
package frames

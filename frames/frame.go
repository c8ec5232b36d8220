package frames

// Frame is one WebSocket frame as an application sees it: the header fields
// that carry meaning and the unmasked payload (RFC 6455 §5.2). Masking and
// the length encoding belong to the wire and are handled by the codec.
//
// A Frame does not own its Payload: the constructors keep the slice they are
// given, and a connection may reuse the memory of a frame it yields once the
// caller is done with it. [Frame.Clone] makes a frame that owns a copy.
type Frame struct {
	// Op is the frame's opcode.
	Op Opcode
	// Fin marks the last frame of a message; control frames always have it.
	Fin bool
	// Rsv holds the RSV bits as Rsv1|Rsv2|Rsv3; zero unless an extension
	// uses them.
	Rsv byte
	// Payload is the application data, unmasked.
	Payload []byte
}

// Text returns a final text frame carrying p, which should be valid UTF-8
// (RFC 6455 §5.6).
func Text(p []byte) Frame {
	return Frame{Op: OpText, Fin: true, Payload: p}
}

// Binary returns a final binary frame carrying p.
func Binary(p []byte) Frame {
	return Frame{Op: OpBinary, Fin: true, Payload: p}
}

// Continuation returns a continuation frame carrying p; fin marks the last
// fragment of the message (RFC 6455 §5.4).
func Continuation(p []byte, fin bool) Frame {
	return Frame{Op: OpContinuation, Fin: fin, Payload: p}
}

// Ping returns a ping frame carrying p (RFC 6455 §5.5.2). Like every control
// payload, p may be at most MaxControlPayload bytes; Ping does not check it,
// so a writer must.
func Ping(p []byte) Frame {
	return Frame{Op: OpPing, Fin: true, Payload: p}
}

// Pong returns a pong frame carrying p (RFC 6455 §5.5.3). A pong answering a
// ping carries the ping's payload. Like every control payload, p may be at
// most MaxControlPayload bytes; Pong does not check it, so a writer must.
func Pong(p []byte) Frame {
	return Frame{Op: OpPong, Fin: true, Payload: p}
}

// Close returns a close frame with code and reason (RFC 6455 §5.5.1). Its
// payload is built by AppendClose, which also says which arguments are
// refused and with what error; CloseNoStatus with an empty reason gives a
// close frame with an empty payload.
func Close(code CloseCode, reason string) (Frame, error) {
	p, err := AppendClose(nil, code, reason)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Op: OpClose, Fin: true, Payload: p}, nil
}

// Clone returns a copy of f whose Payload is a new slice, so it stays valid
// after the memory f's payload came from is reused. A nil payload stays nil.
func (f Frame) Clone() Frame {
	if f.Payload != nil {
		f.Payload = append(make([]byte, 0, len(f.Payload)), f.Payload...)
	}
	return f
}

// IsControl reports whether f is a control frame (RFC 6455 §5.5).
func (f Frame) IsControl() bool {
	return f.Op.IsControl()
}

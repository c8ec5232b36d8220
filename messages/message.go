package messages

import (
	"strconv"

	"github.com/colibri-ws/colibri/frames"
)

// Kind is the type of a data message, which RFC 6455 §5.6 sets with the
// opcode of its first frame.
type Kind uint8

// The two kinds of data message. Their values are their opcodes.
const (
	// KindText is a message of UTF-8 text.
	KindText Kind = Kind(frames.OpText)
	// KindBinary is a message of bytes whose meaning the application
	// defines.
	KindBinary Kind = Kind(frames.OpBinary)
)

// String returns "text" or "binary"; any other value reads "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindBinary:
		return "binary"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Opcode returns the opcode of a message's first frame.
func (k Kind) Opcode() frames.Opcode {
	return frames.Opcode(k)
}

// Message is a whole data message. Like a frame, it does not own its
// Payload: whoever hands a Message out says how long the payload stays
// valid, and [Message.Clone] makes a copy that owns its bytes.
type Message struct {
	// Kind is KindText or KindBinary.
	Kind Kind
	// Payload is the application data of all the message's frames.
	Payload []byte
}

// Text returns a text message whose payload is a copy of s. Peers close
// the connection with 1007 when a text message is not valid UTF-8 (RFC 6455
// §8.1).
func Text(s string) Message {
	return Message{Kind: KindText, Payload: []byte(s)}
}

// Binary returns a binary message whose payload is b itself, not a copy:
// b must not change while the message is being sent or is held for
// sending (by a topic's queue, for instance).
func Binary(b []byte) Message {
	return Message{Kind: KindBinary, Payload: b}
}

// Text returns the payload as a string. The string is a copy, so it stays
// valid after the payload's memory is reused.
func (m Message) Text() string {
	return string(m.Payload)
}

// Clone returns a copy of m whose Payload is a new slice. A nil payload stays
// nil.
func (m Message) Clone() Message {
	if m.Payload != nil {
		m.Payload = append(make([]byte, 0, len(m.Payload)), m.Payload...)
	}
	return m
}

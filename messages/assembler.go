package messages

import (
	"errors"

	"github.com/colibri-ws/colibri/frames"
)

// Violations of the rules that span the frames of a message.
var (
	// ErrTooLarge reports a message whose payload would exceed
	// Assembler.Limit; it calls for close code 1009 (RFC 6455 §7.4.1).
	ErrTooLarge = &frames.Violation{Code: frames.CloseMessageTooBig, Reason: "message too large"}

	// ErrInvalidUTF8 reports a text message that is not valid UTF-8; it
	// calls for close code 1007 (RFC 6455 §8.1).
	ErrInvalidUTF8 = &frames.Violation{Code: frames.CloseInvalidPayload, Reason: "invalid UTF-8 in text message"}

	// ErrUnexpectedContinuation reports a continuation frame outside a
	// fragmented message (RFC 6455 §5.4).
	ErrUnexpectedContinuation = &frames.Violation{Code: frames.CloseProtocolError, Reason: "continuation frame without a message to continue"}

	// ErrExpectedContinuation reports a text or binary frame while a
	// fragmented message is still open: fragments of different messages may
	// not interleave (RFC 6455 §5.4).
	ErrExpectedContinuation = &frames.Violation{Code: frames.CloseProtocolError, Reason: "new data frame inside a fragmented message"}
)

// Errors for calls out of order. They are the caller's mistakes, not the
// peer's, and are not Violations.
var (
	errNotData    = errors.New("messages: Assembler given a frame that is not a text, binary or continuation frame")
	errNegative   = errors.New("messages: Assembler given a negative frame length")
	errInFrame    = errors.New("messages: Assembler.Begin called before End of the previous frame")
	errNoFrame    = errors.New("messages: Assembler.Chunk or End called without Begin")
	errMixed      = errors.New("messages: a message given frame by frame to both Push and Begin")
	errOverlong   = errors.New("messages: Assembler.Chunk given more bytes than Begin declared")
	errIncomplete = errors.New("messages: Assembler.End called before Chunk was given the whole payload")
)

// Assembler follows the data frames of one direction of a connection and
// checks the rules that span them (RFC 6455 §5.4, §5.6): fragments of one
// message only, the size limit, and UTF-8 in text messages.
//
// The low-level form is a cycle of three calls per data frame: Begin with the
// frame's header, Chunk with each piece of its unmasked payload, in order,
// End once the payload is complete. In that form the Assembler owns no
// bytes: it only looks at the pieces, so the connection can read payloads
// into its own pooled buffers and hand them on. [Assembler.Push] is the
// convenience form, which takes whole frames and gathers the payload in a
// buffer the Assembler owns.
//
// Control frames are not given to an Assembler; they may arrive between the
// frames of a message and do not affect it (RFC 6455 §5.4). Neither are RSV
// bits: an extension that uses them decodes payloads before they get here.
//
// Errors that are [*frames.Violation] values call for failing the
// connection with their code (RFC 6455 §7.1.7); after one, the state of the
// Assembler is unspecified until Reset. Other errors report the caller's
// mistakes, such as a Chunk without Begin or a control frame given to Push;
// a call that returns one has no effect.
//
// The zero value is ready to use, with no limit and UTF-8 checked. An
// Assembler is not safe for concurrent use.
type Assembler struct {
	// Limit is the largest message payload accepted, in bytes, counting all
	// the message's frames. 0, the default, means no limit. Begin refuses a
	// frame that would take the message over the limit with ErrTooLarge
	// before any of its payload is read.
	Limit int64

	// SkipUTF8 turns off the validation of text messages. Leave it off
	// unless the application validates text itself: RFC 6455 §8.1 requires
	// an endpoint to fail a connection that sends invalid UTF-8.
	SkipUTF8 bool

	kind    Kind  // kind of the message in progress; 0 between messages
	inFrame bool  // between Begin and End
	fin     bool  // the current frame is the last of its message
	left    int64 // payload bytes of the current frame not yet chunked
	size    int64 // payload bytes of the current message so far
	utf8    UTF8
	buf     []byte // gathered payload, for Push
	pushing bool   // the message in progress began with Push, whose buffer holds it
}

// Begin starts a data frame with opcode op, the FIN flag fin and a payload of
// length bytes, before its payload is read.
//
// It checks the fragmentation rules of RFC 6455 §5.4, returning
// ErrUnexpectedContinuation for a continuation outside a message and
// ErrExpectedContinuation for a text or binary frame inside one, and it
// returns ErrTooLarge if the payload would take the message over Limit, so
// the excess is never buffered. op must be OpText, OpBinary or
// OpContinuation. Begin does not allocate.
func (a *Assembler) Begin(op frames.Opcode, fin bool, length int64) error {
	if op == frames.OpContinuation && a.kind != 0 && a.pushing {
		return errMixed
	}
	return a.begin(op, fin, length)
}

// begin is Begin without the check that the message was not begun by Push.
func (a *Assembler) begin(op frames.Opcode, fin bool, length int64) error {
	if a.inFrame {
		return errInFrame
	}
	if length < 0 {
		return errNegative
	}
	size := a.size
	switch op {
	case frames.OpContinuation:
		if a.kind == 0 {
			return ErrUnexpectedContinuation
		}
	case frames.OpText, frames.OpBinary:
		if a.kind != 0 {
			return ErrExpectedContinuation
		}
		size = 0
	default:
		return errNotData
	}
	// Written so that it cannot overflow: size <= Limit here.
	if a.Limit > 0 && length > a.Limit-size {
		return ErrTooLarge
	}
	if op != frames.OpContinuation {
		a.kind = Kind(op)
		a.size = 0
		a.utf8.Reset()
		a.pushing = false
	}
	a.inFrame, a.fin, a.left = true, fin, length
	return nil
}

// Chunk takes the next piece of the current frame's unmasked payload. The
// pieces must add up to the length given to Begin; Chunk must be called for
// binary frames too, since it keeps the count behind Size. In a text message
// it validates the piece as a continuation of the text so far and returns
// ErrInvalidUTF8 as soon as the text cannot be valid. Chunk keeps no
// reference to p and does not allocate.
func (a *Assembler) Chunk(p []byte) error {
	if !a.inFrame {
		return errNoFrame
	}
	if int64(len(p)) > a.left {
		return errOverlong
	}
	if a.kind == KindText && !a.SkipUTF8 && !a.utf8.Write(p) {
		return ErrInvalidUTF8
	}
	a.left -= int64(len(p))
	a.size += int64(len(p))
	return nil
}

// End finishes the current frame, once Chunk has been given its whole
// payload, and returns the kind of the message it belongs to.
//
// done reports that the frame had FIN, so the message is whole. Then a text
// message that ends inside a code point gives ErrInvalidUTF8, and the
// Assembler is ready for the next message. End does not allocate.
func (a *Assembler) End() (kind Kind, done bool, err error) {
	if !a.inFrame {
		return 0, false, errNoFrame
	}
	if a.left != 0 {
		return 0, false, errIncomplete
	}
	a.inFrame = false
	kind = a.kind
	if !a.fin {
		return kind, false, nil
	}
	if kind == KindText && !a.SkipUTF8 && !a.utf8.Complete() {
		return kind, false, ErrInvalidUTF8
	}
	a.kind = 0
	return kind, true, nil
}

// Active reports whether a message is in progress: its first frame has been
// begun and the frame that completes it has not yet ended. Between Begin and
// End of an unfragmented message it reports true as well.
func (a *Assembler) Active() bool {
	return a.kind != 0
}

// Size returns the number of payload bytes of the message in progress given
// to Chunk so far, or of the last message once it is done.
func (a *Assembler) Size() int64 {
	return a.size
}

// Reset abandons the message in progress, if any, and makes a ready for a
// new one. It keeps Limit, SkipUTF8 and the memory of Push's buffer.
func (a *Assembler) Reset() {
	a.kind, a.inFrame, a.fin, a.left, a.size, a.pushing = 0, false, false, 0, 0, false
	a.utf8.Reset()
	a.buf = a.buf[:0]
}

// Push takes a whole data frame, checks it as Begin, Chunk and End do, and
// appends its payload to a buffer the Assembler owns. When the frame
// completes a message, Push returns the message and true; its Payload aliases
// the buffer and is valid until the next call to Push or Reset.
//
// The buffer grows only with payload bytes actually given: its length
// never passes Limit, its capacity follows append's growth. It is reused
// from one message to the next. A message is given to Push frame by frame
// or to Begin, Chunk and End, not both: Push refuses a continuation of a
// message begun with Begin, and Begin one of a message begun with Push.
// That, and a control frame, give an error that
// is not a Violation, as it belongs to the caller and not to a message.
func (a *Assembler) Push(f frames.Frame) (Message, bool, error) {
	if f.Op.IsControl() {
		return Message{}, false, errNotData
	}
	if f.Op == frames.OpContinuation && a.kind != 0 && !a.pushing {
		return Message{}, false, errMixed
	}
	if err := a.begin(f.Op, f.Fin, int64(len(f.Payload))); err != nil {
		return Message{}, false, err
	}
	if f.Op != frames.OpContinuation {
		a.buf = a.buf[:0]
		a.pushing = true
	}
	if err := a.Chunk(f.Payload); err != nil {
		return Message{}, false, err
	}
	a.buf = append(a.buf, f.Payload...)
	kind, done, err := a.End()
	if err != nil || !done {
		return Message{}, false, err
	}
	return Message{Kind: kind, Payload: a.buf}, true, nil
}

// Kind returns the kind of the message in progress, set by the Begin of its
// first frame, so a caller can tell what a continuation frame continues. It
// returns 0 while no message is in progress (Active reports false).
func (a *Assembler) Kind() Kind {
	return a.kind
}

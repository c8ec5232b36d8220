package messages

import (
	"iter"

	"github.com/colibri-ws/colibri/frames"
)

// Fragments splits m into frames for sending (RFC 6455 §5.4). Each payload
// is at most maxPayload bytes; maxPayload <= 0 gives one frame. The first
// frame has the opcode of m.Kind, which must be KindText or KindBinary, the others
// are continuations, and the last has FIN. An empty payload gives one empty
// final frame.
//
// The frames' payloads alias m.Payload. A text message may be split inside a
// code point, which RFC 6455 §5.6 allows: only the whole message must be
// valid UTF-8.
func Fragments(m Message, maxPayload int) iter.Seq[frames.Frame] {
	return func(yield func(frames.Frame) bool) {
		p := m.Payload
		op := m.Kind.Opcode()
		for {
			n := len(p)
			if maxPayload > 0 && n > maxPayload {
				n = maxPayload
			}
			fin := n == len(p)
			if !yield(frames.Frame{Op: op, Fin: fin, Payload: p[:n:n]}) || fin {
				return
			}
			p = p[n:]
			op = frames.OpContinuation
		}
	}
}

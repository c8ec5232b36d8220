// Package readloop reads one message with each of the Inbound's
// iterators in turn, for colibri's tests of what must survive a change of
// loop (the inflate window, kept data, limits).
package readloop

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// One reads one message with the loop i picks: Messages (i%3 == 0),
// Frames (1: a compressed message comes whole, a plain one maybe in
// fragments, gathered here) or Readers (2: in reads of random sizes from
// r). It returns an error wrapping in.Err() when the loop ends with no
// message.
func One(in *wsconn.Inbound, i int, r *rand.Rand) (messages.Message, error) {
	var m messages.Message
	got := false
	switch i % 3 {
	case 0:
		for x := range in.Messages(0) {
			m, got = x.Clone(), true
			break
		}
	case 1:
		for f := range in.Frames() {
			if !got {
				m.Kind, got = messages.Kind(f.Op), true
			}
			m.Payload = append(m.Payload, f.Payload...)
			if f.Fin {
				break
			}
		}
	case 2:
		for k, rd := range in.Readers() {
			m.Kind, got = k, true
			buf := make([]byte, 1+r.IntN(3000))
			for {
				n, err := rd.Read(buf)
				m.Payload = append(m.Payload, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					return m, err
				}
			}
			break
		}
	}
	if !got {
		return m, fmt.Errorf("no message: %w", in.Err())
	}
	return m, nil
}

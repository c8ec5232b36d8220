package messages_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

func TestFragments(t *testing.T) {
	tests := []struct {
		name  string
		size  int // payload length
		max   int
		sizes []int // payload lengths of the frames
	}{
		{name: "empty", size: 0, max: 4, sizes: []int{0}},
		{name: "empty, no max", size: 0, max: 0, sizes: []int{0}},
		{name: "no max", size: 10, max: 0, sizes: []int{10}},
		{name: "negative max", size: 10, max: -1, sizes: []int{10}},
		{name: "under max", size: 3, max: 4, sizes: []int{3}},
		{name: "exactly max", size: 4, max: 4, sizes: []int{4}},
		{name: "one over max", size: 5, max: 4, sizes: []int{4, 1}},
		{name: "multiple of max", size: 12, max: 4, sizes: []int{4, 4, 4}},
		{name: "uneven", size: 10, max: 4, sizes: []int{4, 4, 2}},
		{name: "one byte each", size: 3, max: 1, sizes: []int{1, 1, 1}},
	}
	for _, tt := range tests {
		for _, kind := range []messages.Kind{messages.KindText, messages.KindBinary} {
			payload := bytes.Repeat([]byte{'z'}, tt.size)
			fs := slices.Collect(messages.Fragments(messages.Message{Kind: kind, Payload: payload}, tt.max))
			if len(fs) != len(tt.sizes) {
				t.Errorf("%s %v: %d frames, want %d", tt.name, kind, len(fs), len(tt.sizes))
				continue
			}
			off := 0
			for i, f := range fs {
				wantOp := frames.OpContinuation
				if i == 0 {
					wantOp = kind.Opcode()
				}
				wantFin := i == len(fs)-1
				if f.Op != wantOp || f.Fin != wantFin || f.Rsv != 0 || len(f.Payload) != tt.sizes[i] {
					t.Errorf("%s %v: frame %d is %v fin=%v rsv=%#x len=%d; want %v fin=%v rsv=0 len=%d",
						tt.name, kind, i, f.Op, f.Fin, f.Rsv, len(f.Payload), wantOp, wantFin, tt.sizes[i])
				}
				// Payloads alias the message; they do not copy it.
				if len(f.Payload) > 0 && &f.Payload[0] != &payload[off] {
					t.Errorf("%s %v: frame %d does not alias the message payload", tt.name, kind, i)
				}
				off += len(f.Payload)
			}
		}
	}
}

func TestFragmentsStopEarly(t *testing.T) {
	m := messages.Binary(make([]byte, 100))
	n := 0
	for range messages.Fragments(m, 10) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("ranged over %d frames, want 3", n)
	}
}

func TestFragmentsCapacity(t *testing.T) {
	// Appending to one fragment's payload must not overwrite the next.
	m := messages.Binary([]byte("aabb"))
	fs := slices.Collect(messages.Fragments(m, 2))
	_ = append(fs[0].Payload, 'X')
	if string(m.Payload) != "aabb" {
		t.Errorf("appending to a fragment changed the message to %q", m.Payload)
	}
}

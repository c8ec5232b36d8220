package messages_test

import (
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// The validator and the assembler run on every data frame, so they must not
// allocate.
func TestZeroAllocs(t *testing.T) {
	mixed := []byte("naïve café, 5€, 😀 — and some ASCII to finish")
	var v messages.UTF8
	var a messages.Assembler
	a.Limit = 1 << 20
	tests := []struct {
		name string
		fn   func()
	}{
		{name: "UTF8.Write ASCII", fn: func() { v.Reset(); v.Write(mixed[:5]) }},
		{name: "UTF8.Write mixed", fn: func() { v.Reset(); v.Write(mixed) }},
		{name: "UTF8.Write split code point", fn: func() {
			v.Reset()
			v.Write(mixed[:3])
			v.Write(mixed[3:])
			v.Complete()
		}},
		{name: "UTF8.Write invalid", fn: func() { v.Reset(); v.Write([]byte{0xED, 0xA0, 0x80}) }},
		{name: "Begin/Chunk/End text in fragments", fn: func() {
			_ = a.Begin(frames.OpText, false, 3)
			_ = a.Chunk(mixed[:3])
			_, _, _ = a.End()
			_ = a.Begin(frames.OpContinuation, true, int64(len(mixed)-3))
			_ = a.Chunk(mixed[3:10])
			_ = a.Chunk(mixed[10:])
			_, _, _ = a.End()
		}},
		{name: "Begin/Chunk/End binary", fn: func() {
			_ = a.Begin(frames.OpBinary, true, int64(len(mixed)))
			_ = a.Chunk(mixed)
			_, _, _ = a.End()
		}},
		{name: "Begin over the limit", fn: func() { _ = a.Begin(frames.OpBinary, true, 1<<30) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
}

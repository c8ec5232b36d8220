package frames_test

import (
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

var sinkInt int

// These functions run for every frame a connection reads or writes, so they
// must not allocate.
func TestZeroAllocs(t *testing.T) {
	wire := []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x37, 0xFA, 0x21, 0x3D}
	var buf [frames.MaxHeaderSize]byte
	payload := pattern(4096)
	closePayload := []byte{0x03, 0xE8, 'b', 'y', 'e'}
	h := frames.Header{Op: frames.OpBinary, Fin: true, Masked: true, Mask: key, Length: 65536}
	tests := []struct {
		name string
		fn   func()
	}{
		{name: "HeaderSize", fn: func() { sinkInt = frames.HeaderSize(wire[0], wire[1]) }},
		{name: "ParseHeader", fn: func() { _, _ = frames.ParseHeader(wire) }},
		{name: "ParseHeader short", fn: func() { _, _ = frames.ParseHeader(wire[:5]) }},
		{name: "ParseHeader MSB", fn: func() {
			_, _ = frames.ParseHeader([]byte{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0})
		}},
		{name: "PutHeader", fn: func() { frames.PutHeader(buf[:], h) }},
		{name: "Check", fn: func() { _ = h.Check(true, frames.Rsv1) }},
		{name: "Check violation", fn: func() { _ = h.Check(false, 0) }},
		{name: "Mask", fn: func() { frames.Mask(payload, key, 1) }},
		{name: "Mask short", fn: func() { frames.Mask(payload[:7], key, 3) }},
		{name: "ParseClose without reason", fn: func() { _, _, _ = frames.ParseClose(closePayload[:2]) }},
		{name: "AppendClose", fn: func() { _, _ = frames.AppendClose(buf[:0], frames.CloseGoingAway, "bye") }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
}

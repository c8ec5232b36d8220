package frames_test

import (
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

func TestOpcode(t *testing.T) {
	tests := []struct {
		op       frames.Opcode
		name     string
		control  bool
		data     bool
		reserved bool
	}{
		{op: frames.OpContinuation, name: "continuation", data: true},
		{op: frames.OpText, name: "text", data: true},
		{op: frames.OpBinary, name: "binary", data: true},
		{op: 0x3, name: "reserved(0x3)", data: true, reserved: true},
		{op: 0x4, name: "reserved(0x4)", data: true, reserved: true},
		{op: 0x5, name: "reserved(0x5)", data: true, reserved: true},
		{op: 0x6, name: "reserved(0x6)", data: true, reserved: true},
		{op: 0x7, name: "reserved(0x7)", data: true, reserved: true},
		{op: frames.OpClose, name: "close", control: true},
		{op: frames.OpPing, name: "ping", control: true},
		{op: frames.OpPong, name: "pong", control: true},
		{op: 0xB, name: "reserved(0xB)", control: true, reserved: true},
		{op: 0xC, name: "reserved(0xC)", control: true, reserved: true},
		{op: 0xD, name: "reserved(0xD)", control: true, reserved: true},
		{op: 0xE, name: "reserved(0xE)", control: true, reserved: true},
		{op: 0xF, name: "reserved(0xF)", control: true, reserved: true},
		// Values that do not fit in four bits never come off the wire, but
		// must not pass for anything they are not.
		{op: 0x10, name: "opcode(0x10)", reserved: true},
		{op: 0x18, name: "opcode(0x18)", reserved: true},
		{op: 0xFF, name: "opcode(0xFF)", reserved: true},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.name {
			t.Errorf("Opcode(%#x).String() = %q, want %q", byte(tt.op), got, tt.name)
		}
		if got := tt.op.IsControl(); got != tt.control {
			t.Errorf("Opcode(%#x).IsControl() = %v, want %v", byte(tt.op), got, tt.control)
		}
		if got := tt.op.IsData(); got != tt.data {
			t.Errorf("Opcode(%#x).IsData() = %v, want %v", byte(tt.op), got, tt.data)
		}
		if got := tt.op.IsReserved(); got != tt.reserved {
			t.Errorf("Opcode(%#x).IsReserved() = %v, want %v", byte(tt.op), got, tt.reserved)
		}
	}
}

func TestRsvBits(t *testing.T) {
	// The constants are the header's bits 6, 5 and 4 shifted down by four,
	// which is how ParseHeader stores them.
	tests := []struct {
		b0  byte
		rsv byte
	}{
		{b0: 0x40, rsv: frames.Rsv1},
		{b0: 0x20, rsv: frames.Rsv2},
		{b0: 0x10, rsv: frames.Rsv3},
		{b0: 0x70, rsv: frames.Rsv1 | frames.Rsv2 | frames.Rsv3},
	}
	for _, tt := range tests {
		h, err := frames.ParseHeader([]byte{tt.b0 | 0x81, 0x00})
		if err != nil {
			t.Fatalf("ParseHeader(%#x): %v", tt.b0, err)
		}
		if h.Rsv != tt.rsv {
			t.Errorf("first byte %#x: Rsv = %#x, want %#x", tt.b0|0x81, h.Rsv, tt.rsv)
		}
	}
}

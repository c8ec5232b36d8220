package frames_test

import (
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

func TestConstructors(t *testing.T) {
	p := []byte("payload")
	tests := []struct {
		name string
		f    frames.Frame
		op   frames.Opcode
		fin  bool
	}{
		{name: "Text", f: frames.Text(p), op: frames.OpText, fin: true},
		{name: "Binary", f: frames.Binary(p), op: frames.OpBinary, fin: true},
		{name: "Continuation", f: frames.Continuation(p, false), op: frames.OpContinuation},
		{name: "final Continuation", f: frames.Continuation(p, true), op: frames.OpContinuation, fin: true},
		{name: "Ping", f: frames.Ping(p), op: frames.OpPing, fin: true},
		{name: "Pong", f: frames.Pong(p), op: frames.OpPong, fin: true},
	}
	for _, tt := range tests {
		if tt.f.Op != tt.op || tt.f.Fin != tt.fin || tt.f.Rsv != 0 {
			t.Errorf("%s: got op %v fin %v rsv %#x, want op %v fin %v rsv 0", tt.name, tt.f.Op, tt.f.Fin, tt.f.Rsv, tt.op, tt.fin)
		}
		// Constructors keep the caller's slice rather than copying it.
		if &tt.f.Payload[0] != &p[0] {
			t.Errorf("%s: payload was copied", tt.name)
		}
		if got, want := tt.f.IsControl(), tt.op.IsControl(); got != want {
			t.Errorf("%s: IsControl = %v, want %v", tt.name, got, want)
		}
	}
}

func TestClone(t *testing.T) {
	p := []byte("abc")
	f := frames.Frame{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv1, Payload: p}
	c := f.Clone()
	p[0] = 'X'
	if string(c.Payload) != "abc" {
		t.Errorf("clone payload = %q after the original changed, want %q", c.Payload, "abc")
	}
	if c.Op != f.Op || c.Fin != f.Fin || c.Rsv != f.Rsv {
		t.Errorf("Clone = %+v, want the header fields of %+v", c, f)
	}
	if got := (frames.Frame{Op: frames.OpPing}).Clone(); got.Payload != nil {
		t.Errorf("Clone of a nil payload = %q, want nil", got.Payload)
	}
	if got := frames.Text([]byte{}).Clone(); got.Payload == nil || len(got.Payload) != 0 {
		t.Errorf("Clone of an empty payload = %#v, want empty and not nil", got.Payload)
	}
}

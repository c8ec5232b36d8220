package messages_test

import (
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

func TestKind(t *testing.T) {
	tests := []struct {
		kind messages.Kind
		name string
		op   frames.Opcode
	}{
		{kind: messages.KindText, name: "text", op: frames.OpText},
		{kind: messages.KindBinary, name: "binary", op: frames.OpBinary},
		{kind: 0, name: "kind(0)", op: frames.OpContinuation},
		{kind: 9, name: "kind(9)", op: frames.OpPing},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.name {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(tt.kind), got, tt.name)
		}
		if got := tt.kind.Opcode(); got != tt.op {
			t.Errorf("Kind(%d).Opcode() = %v, want %v", uint8(tt.kind), got, tt.op)
		}
	}
}

func TestMessageCopies(t *testing.T) {
	p := []byte("hello")
	m := messages.Message{Kind: messages.KindText, Payload: p}
	s := m.Text()
	c := m.Clone()
	p[0] = 'J'
	if s != "hello" {
		t.Errorf("Text() = %q after the payload changed, want %q", s, "hello")
	}
	if string(c.Payload) != "hello" || c.Kind != messages.KindText {
		t.Errorf("Clone() = %v %q after the payload changed, want text %q", c.Kind, c.Payload, "hello")
	}
	if got := (messages.Message{Kind: messages.KindBinary}).Clone(); got.Payload != nil {
		t.Errorf("Clone of a nil payload = %q, want nil", got.Payload)
	}
}

func TestTextAndBinaryBuildMessages(t *testing.T) {
	s := "héllo"
	if m := messages.Text(s); m.Kind != messages.KindText || string(m.Payload) != s {
		t.Errorf("Text(%q) = %v %q", s, m.Kind, m.Payload)
	}
	b := []byte{0, 1, 2}
	m := messages.Binary(b)
	if m.Kind != messages.KindBinary || len(m.Payload) != 3 || &m.Payload[0] != &b[0] {
		t.Errorf("Binary(b) = %v %v, want b itself", m.Kind, m.Payload)
	}
}

package messages_test

import (
	"fmt"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

func ExampleFragments() {
	m := messages.Text("hello, world")
	for f := range messages.Fragments(m, 5) {
		fmt.Printf("%-12v fin=%-5v %q\n", f.Op, f.Fin, f.Payload)
	}
	// Output:
	// text         fin=false "hello"
	// continuation fin=false ", wor"
	// continuation fin=true  "ld"
}

func ExampleAssembler_Push() {
	a := messages.Assembler{Limit: 1 << 10}
	in := []frames.Frame{
		{Op: frames.OpText, Payload: []byte("Gr")},
		// The ü (C3 BC) is split across frames, which RFC 6455 allows.
		frames.Continuation([]byte("\xc3"), false),
		frames.Continuation([]byte("\xbcße!"), true),
		frames.Binary([]byte{0xCA, 0xFE}),
		frames.Continuation([]byte("stray"), true),
	}
	for _, f := range in {
		m, done, err := a.Push(f)
		if err != nil {
			code, _ := frames.CodeOf(err)
			fmt.Println("fail the connection:", code, err)
			break
		}
		if done {
			fmt.Printf("%v message %q\n", m.Kind, m.Payload)
		}
	}
	// Output:
	// text message "Grüße!"
	// binary message "\xca\xfe"
	// fail the connection: 1002 protocol error continuation frame without a message to continue
}

func ExampleAssembler() {
	// A connection reads each payload into a buffer of its own; the
	// Assembler only checks the frames as they go by.
	a := messages.Assembler{Limit: 8}
	type frame struct {
		op      frames.Opcode
		fin     bool
		payload string
	}
	for _, f := range []frame{
		{frames.OpBinary, false, "1234"},
		{frames.OpContinuation, false, "5678"},
		{frames.OpContinuation, true, "9"}, // one byte over the limit
	} {
		// Begin comes before the payload is read, so the excess is
		// refused without buffering it.
		if err := a.Begin(f.op, f.fin, int64(len(f.payload))); err != nil {
			code, _ := frames.CodeOf(err)
			fmt.Printf("after %d bytes: %v (%v)\n", a.Size(), err, code)
			return
		}
		if err := a.Chunk([]byte(f.payload)); err != nil {
			fmt.Println(err)
			return
		}
		if _, _, err := a.End(); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// after 8 bytes: message too large (1009 message too big)
}

func ExampleText() {
	for _, m := range []messages.Message{messages.Text("hi"), messages.Binary([]byte{0xCA, 0xFE})} {
		fmt.Printf("%v %q\n", m.Kind, m.Payload)
	}
	// Output:
	// text "hi"
	// binary "\xca\xfe"
}

package frames_test

import (
	"errors"
	"fmt"

	"github.com/colibri-ws/colibri/frames"
)

func ExampleAppendClose() {
	p, err := frames.AppendClose(nil, frames.CloseGoingAway, "server restarting")
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", p[:2])
	fmt.Printf("%s\n", p[2:])

	// A code reserved for local use cannot be sent.
	_, err = frames.AppendClose(nil, frames.CloseAbnormal, "")
	fmt.Println(errors.Is(err, frames.ErrInvalidCloseCode))
	// Output:
	// 03 e9
	// server restarting
	// true
}

func ExampleParseClose() {
	code, reason, err := frames.ParseClose([]byte{0x03, 0xE8, 'd', 'o', 'n', 'e'})
	fmt.Println(code, reason, err)

	// An empty close payload means the peer gave no code.
	code, _, _ = frames.ParseClose(nil)
	fmt.Println(code)

	// A bad payload is a protocol violation with its own close code.
	_, _, err = frames.ParseClose([]byte{0x03, 0xE8, 0xC0, 0x80})
	bad, _ := frames.CodeOf(err)
	fmt.Println(err, "->", bad)
	// Output:
	// 1000 normal closure done <nil>
	// 1005 no status received
	// close reason is not valid UTF-8 -> 1007 invalid payload data
}

func ExampleParseHeader() {
	// A masked text frame from a client carrying "Hi".
	wire := []byte{0x81, 0x82, 0x01, 0x02, 0x03, 0x04, 'H' ^ 0x01, 'i' ^ 0x02}

	h, err := frames.ParseHeader(wire)
	if err == nil {
		err = h.Check(true, 0)
	}
	if err != nil {
		panic(err)
	}
	payload := wire[frames.HeaderSize(wire[0], wire[1]):]
	frames.Mask(payload, h.Mask, 0)
	fmt.Println(h.Op, h.Fin, h.Length, string(payload))

	// The same header arriving at a client breaks RFC 6455 §5.1.
	err = h.Check(false, 0)
	code, _ := frames.CodeOf(err)
	fmt.Println(err, "->", code)
	// Output:
	// text true 2 Hi
	// server frame masked -> 1002 protocol error
}

func ExamplePutHeader() {
	var buf [frames.MaxHeaderSize]byte
	n := frames.PutHeader(buf[:], frames.Header{Op: frames.OpBinary, Fin: true, Length: 300})
	fmt.Printf("% x\n", buf[:n])
	// Output:
	// 82 7e 01 2c
}

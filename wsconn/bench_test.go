package wsconn_test

import (
	"bufio"
	"context"
	"io"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// BenchmarkEcho measures one round trip of a message through colibri's
// echo handler over loopback TCP. The client side is a minimal frame
// writer with preallocated buffers, so allocs/op is the server's.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{32, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			benchEcho(b, size, echo)
		})
	}
}

// BenchmarkEchoFrames is the same round trip through the Frames iterator.
func BenchmarkEchoFrames(b *testing.B) {
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for f := range in.Frames() {
			if err := out.WriteBinary(ctx, f.Payload); err != nil {
				return err
			}
		}
		return in.Err()
	}
	for _, size := range []int{32, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) { benchEcho(b, size, h) })
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func benchEcho(b *testing.B, size int, h handlerFunc) {
	url, _ := testServer(b, nil, h)
	c := dialRaw(b, url)
	payload := make([]byte, size)
	mask := [4]byte{1, 2, 3, 4}
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], frames.Header{Op: frames.OpBinary, Fin: true, Masked: true, Mask: mask, Length: int64(size)})
	wire := append(hb[:n:n], payload...)
	frames.Mask(wire[n:], mask, 0)
	reply := make([]byte, size)
	br := bufio.NewReaderSize(c.br, 64<<10)
	var rh [frames.MaxHeaderSize]byte

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.nc.Write(wire); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, rh[:2]); err != nil {
			b.Fatal(err)
		}
		hn := frames.HeaderSize(rh[0], rh[1])
		if _, err := io.ReadFull(br, rh[2:hn]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, reply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.frame(frames.OpClose, true, closePayload(1000, ""))
}

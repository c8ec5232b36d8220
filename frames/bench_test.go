package frames_test

import (
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

var sinkHeader frames.Header

func BenchmarkParseHeader(b *testing.B) {
	tests := []struct {
		name string
		wire []byte
	}{
		{name: "7bit", wire: []byte{0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D}},
		{name: "16bit", wire: []byte{0x82, 0xFE, 0x01, 0x00, 0x37, 0xFA, 0x21, 0x3D}},
		{name: "64bit", wire: []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x37, 0xFA, 0x21, 0x3D}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h, err := frames.ParseHeader(tt.wire)
				if err != nil {
					b.Fatal(err)
				}
				sinkHeader = h
			}
		})
	}
}

func BenchmarkPutHeader(b *testing.B) {
	var buf [frames.MaxHeaderSize]byte
	h := frames.Header{Op: frames.OpBinary, Fin: true, Length: 4096}
	b.ReportAllocs()
	for b.Loop() {
		frames.PutHeader(buf[:], h)
	}
}

func BenchmarkMask16K(b *testing.B) {
	p := pattern(16 << 10)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		frames.Mask(p, key, 0)
	}
}

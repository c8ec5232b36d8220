package frames_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

var key = [4]byte{0x37, 0xFA, 0x21, 0x3D}

func TestHeaderRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    frames.Header
		wire []byte
	}{
		{
			name: "length 0",
			h:    frames.Header{Op: frames.OpText, Fin: true},
			wire: []byte{0x81, 0x00},
		},
		{
			name: "length 0 masked",
			h:    frames.Header{Op: frames.OpText, Fin: true, Masked: true, Mask: key},
			wire: []byte{0x81, 0x80, 0x37, 0xFA, 0x21, 0x3D},
		},
		{
			name: "length 125, the largest 7-bit length",
			h:    frames.Header{Op: frames.OpBinary, Fin: true, Length: 125},
			wire: []byte{0x82, 0x7D},
		},
		{
			name: "length 125 masked",
			h:    frames.Header{Op: frames.OpPing, Fin: true, Masked: true, Mask: key, Length: 125},
			wire: []byte{0x89, 0xFD, 0x37, 0xFA, 0x21, 0x3D},
		},
		{
			name: "length 126, the smallest 16-bit length",
			h:    frames.Header{Op: frames.OpBinary, Length: 126},
			wire: []byte{0x02, 0x7E, 0x00, 0x7E},
		},
		{
			name: "length 126 masked",
			h:    frames.Header{Op: frames.OpBinary, Masked: true, Mask: key, Length: 126},
			wire: []byte{0x02, 0xFE, 0x00, 0x7E, 0x37, 0xFA, 0x21, 0x3D},
		},
		{
			name: "length 65535, the largest 16-bit length",
			h:    frames.Header{Op: frames.OpContinuation, Fin: true, Length: 65535},
			wire: []byte{0x80, 0x7E, 0xFF, 0xFF},
		},
		{
			name: "length 65535 masked",
			h:    frames.Header{Op: frames.OpContinuation, Masked: true, Mask: key, Length: 65535},
			wire: []byte{0x00, 0xFE, 0xFF, 0xFF, 0x37, 0xFA, 0x21, 0x3D},
		},
		{
			name: "length 65536, the smallest 64-bit length",
			h:    frames.Header{Op: frames.OpText, Fin: true, Rsv: frames.Rsv1, Length: 65536},
			wire: []byte{0xC1, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00},
		},
		{
			name: "length 65536 masked",
			h:    frames.Header{Op: frames.OpText, Fin: true, Masked: true, Mask: key, Length: 65536},
			wire: []byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x37, 0xFA, 0x21, 0x3D},
		},
		{
			name: "length 2^63-1, the largest length",
			h:    frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv1 | frames.Rsv2 | frames.Rsv3, Length: math.MaxInt64},
			wire: []byte{0xF2, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		},
		{
			name: "length 2^63-1 masked",
			h:    frames.Header{Op: frames.OpBinary, Fin: true, Masked: true, Mask: key, Length: math.MaxInt64},
			wire: []byte{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x37, 0xFA, 0x21, 0x3D},
		},
		{
			name: "close with RSV2 and a zero mask",
			h:    frames.Header{Op: frames.OpClose, Fin: true, Rsv: frames.Rsv2, Masked: true, Length: 2},
			wire: []byte{0xA8, 0x82, 0, 0, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf [frames.MaxHeaderSize]byte
			n := frames.PutHeader(buf[:], tt.h)
			if !bytes.Equal(buf[:n], tt.wire) {
				t.Fatalf("PutHeader = % x, want % x", buf[:n], tt.wire)
			}
			if size := frames.HeaderSize(tt.wire[0], tt.wire[1]); size != len(tt.wire) {
				t.Errorf("HeaderSize = %d, want %d", size, len(tt.wire))
			}
			// Trailing payload bytes must be ignored.
			h, err := frames.ParseHeader(append(tt.wire, 0xAA, 0xBB))
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if h != tt.h {
				t.Errorf("ParseHeader = %+v, want %+v", h, tt.h)
			}
			// Every proper prefix is too short.
			for i := range len(tt.wire) {
				if _, err := frames.ParseHeader(tt.wire[:i]); err != frames.ErrShortHeader {
					t.Errorf("ParseHeader(first %d bytes) error = %v, want ErrShortHeader", i, err)
				}
			}
		})
	}
}

func TestHeaderSize(t *testing.T) {
	tests := []struct {
		name string
		b1   byte
		want int
	}{
		{name: "7-bit length 0", b1: 0x00, want: 2},
		{name: "7-bit length 125", b1: 0x7D, want: 2},
		{name: "16-bit length", b1: 0x7E, want: 4},
		{name: "64-bit length", b1: 0x7F, want: 10},
		{name: "masked 7-bit length 0", b1: 0x80, want: 6},
		{name: "masked 7-bit length 125", b1: 0xFD, want: 6},
		{name: "masked 16-bit length", b1: 0xFE, want: 8},
		{name: "masked 64-bit length", b1: 0xFF, want: frames.MaxHeaderSize},
	}
	for _, tt := range tests {
		// The first byte has no say in the size.
		for _, b0 := range []byte{0x00, 0x81, 0xFF} {
			if got := frames.HeaderSize(b0, tt.b1); got != tt.want {
				t.Errorf("%s: HeaderSize(%#x, %#x) = %d, want %d", tt.name, b0, tt.b1, got, tt.want)
			}
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		err  error
	}{
		{name: "nil", wire: nil, err: frames.ErrShortHeader},
		{name: "one byte", wire: []byte{0x81}, err: frames.ErrShortHeader},
		{name: "16-bit length cut", wire: []byte{0x82, 0x7E, 0x01}, err: frames.ErrShortHeader},
		{name: "64-bit length cut", wire: []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 1}, err: frames.ErrShortHeader},
		{name: "mask cut", wire: []byte{0x82, 0x85, 1, 2, 3}, err: frames.ErrShortHeader},
		{name: "mask after 64-bit length cut", wire: []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3}, err: frames.ErrShortHeader},
		{name: "length MSB", wire: []byte{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, err: frames.ErrLengthMSB},
		{name: "length all ones", wire: []byte{0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, err: frames.ErrLengthMSB},
		{name: "length MSB masked", wire: []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, err: frames.ErrLengthMSB},
	}
	for _, tt := range tests {
		h, err := frames.ParseHeader(tt.wire)
		if err != tt.err {
			t.Errorf("%s: ParseHeader(% x) error = %v, want %v", tt.name, tt.wire, err, tt.err)
		}
		if h != (frames.Header{}) {
			t.Errorf("%s: ParseHeader(% x) = %+v with an error, want the zero Header", tt.name, tt.wire, h)
		}
	}
	if code, ok := frames.CodeOf(frames.ErrLengthMSB); !ok || code != frames.CloseProtocolError {
		t.Errorf("CodeOf(ErrLengthMSB) = %v, %v; want 1002, true", code, ok)
	}
	if _, ok := frames.CodeOf(frames.ErrShortHeader); ok {
		t.Error("ErrShortHeader is a Violation; it only asks for more bytes")
	}
}

func TestParseHeaderNonMinimalLength(t *testing.T) {
	// RFC 6455 §5.2 asks senders for the shortest encoding; a longer one is
	// still unambiguous and is accepted.
	tests := []struct {
		wire []byte
		want int64
	}{
		{wire: []byte{0x82, 0x7E, 0x00, 0x05}, want: 5},
		{wire: []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0x00, 0x7D}, want: 125},
		{wire: []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, want: 65535},
	}
	for _, tt := range tests {
		h, err := frames.ParseHeader(tt.wire)
		if err != nil || h.Length != tt.want {
			t.Errorf("ParseHeader(% x) = length %d, %v; want %d, nil", tt.wire, h.Length, err, tt.want)
		}
	}
}

func TestPutHeaderDropsExtraBits(t *testing.T) {
	var buf [frames.MaxHeaderSize]byte
	n := frames.PutHeader(buf[:], frames.Header{Op: 0x11, Rsv: 0xF8 | frames.Rsv3, Fin: true})
	if want := []byte{0x91, 0x00}; !bytes.Equal(buf[:n], want) {
		t.Errorf("PutHeader = % x, want % x", buf[:n], want)
	}
}

func TestPutHeaderShortBuffer(t *testing.T) {
	// A buffer with room for the header actually written is enough.
	b := make([]byte, 2)
	if n := frames.PutHeader(b, frames.Header{Op: frames.OpPing, Fin: true}); n != 2 {
		t.Errorf("PutHeader into 2 bytes = %d, want 2", n)
	}
	tests := []struct {
		name string
		size int
		h    frames.Header
	}{
		{name: "16-bit length in 3 bytes", size: 3, h: frames.Header{Length: 300}},
		{name: "64-bit length in 9 bytes", size: 9, h: frames.Header{Length: 1 << 20}},
		{name: "mask in 5 bytes", size: 5, h: frames.Header{Masked: true}},
		{name: "negative length", size: frames.MaxHeaderSize, h: frames.Header{Length: -1}},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: PutHeader did not panic", tt.name)
				}
			}()
			frames.PutHeader(make([]byte, tt.size), tt.h)
		}()
	}
}

func TestCheck(t *testing.T) {
	type side struct {
		fromClient bool
		name       string
	}
	server := side{fromClient: true, name: "server receiving"}
	client := side{fromClient: false, name: "client receiving"}
	tests := []struct {
		name       string
		h          frames.Header // Masked is set from the side unless wrongMask
		allowedRsv byte
		wrongMask  bool
		err        error
	}{
		{name: "text", h: frames.Header{Op: frames.OpText, Fin: true, Length: 1 << 40}},
		{name: "binary fragment", h: frames.Header{Op: frames.OpBinary}},
		{name: "continuation", h: frames.Header{Op: frames.OpContinuation, Fin: true}},
		{name: "close", h: frames.Header{Op: frames.OpClose, Fin: true, Length: 2}},
		{name: "ping of 125 bytes", h: frames.Header{Op: frames.OpPing, Fin: true, Length: 125}},
		{name: "pong", h: frames.Header{Op: frames.OpPong, Fin: true}},
		{name: "RSV1 with deflate", h: frames.Header{Op: frames.OpText, Fin: true, Rsv: frames.Rsv1}, allowedRsv: frames.Rsv1},
		{name: "RSV1 on a continuation is left to the caller", h: frames.Header{Op: frames.OpContinuation, Rsv: frames.Rsv1}, allowedRsv: frames.Rsv1},

		{name: "reserved data opcode 0x3", h: frames.Header{Op: 0x3, Fin: true}, err: frames.ErrReservedOpcode},
		{name: "reserved data opcode 0x7", h: frames.Header{Op: 0x7, Fin: true}, err: frames.ErrReservedOpcode},
		{name: "reserved control opcode 0xB", h: frames.Header{Op: 0xB, Fin: true}, err: frames.ErrReservedOpcode},
		{name: "reserved control opcode 0xF", h: frames.Header{Op: 0xF, Fin: true}, err: frames.ErrReservedOpcode},
		{name: "opcode over four bits", h: frames.Header{Op: 0x11, Fin: true}, err: frames.ErrReservedOpcode},
		{name: "RSV1 without extension", h: frames.Header{Op: frames.OpText, Fin: true, Rsv: frames.Rsv1}, err: frames.ErrReservedBits},
		{name: "RSV2 without extension", h: frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, err: frames.ErrReservedBits},
		{name: "RSV3 without extension", h: frames.Header{Op: frames.OpContinuation, Fin: true, Rsv: frames.Rsv3}, err: frames.ErrReservedBits},
		{name: "RSV2 with deflate", h: frames.Header{Op: frames.OpText, Fin: true, Rsv: frames.Rsv2}, allowedRsv: frames.Rsv1, err: frames.ErrReservedBits},
		{name: "RSV1 on a ping with deflate", h: frames.Header{Op: frames.OpPing, Fin: true, Rsv: frames.Rsv1}, allowedRsv: frames.Rsv1, err: frames.ErrReservedBits},
		{name: "RSV3 on a close", h: frames.Header{Op: frames.OpClose, Fin: true, Rsv: frames.Rsv3}, err: frames.ErrReservedBits},
		{name: "fragmented ping", h: frames.Header{Op: frames.OpPing}, err: frames.ErrFragmentedControl},
		{name: "fragmented close", h: frames.Header{Op: frames.OpClose, Length: 2}, err: frames.ErrFragmentedControl},
		{name: "ping of 126 bytes", h: frames.Header{Op: frames.OpPing, Fin: true, Length: 126}, err: frames.ErrControlTooLong},
		{name: "close of 2^63-1 bytes", h: frames.Header{Op: frames.OpClose, Fin: true, Length: math.MaxInt64}, err: frames.ErrControlTooLong},
		{name: "wrong masking on text", h: frames.Header{Op: frames.OpText, Fin: true}, wrongMask: true, err: errWrongMask},
		{name: "wrong masking on pong", h: frames.Header{Op: frames.OpPong, Fin: true}, wrongMask: true, err: errWrongMask},

		// When several rules break, the first in Check's list is reported.
		{name: "reserved opcode before bits", h: frames.Header{Op: 0xC, Rsv: frames.Rsv1}, err: frames.ErrReservedOpcode},
		{name: "bits before fragmentation", h: frames.Header{Op: frames.OpPing, Rsv: frames.Rsv2, Length: 200}, err: frames.ErrReservedBits},
		{name: "fragmentation before length", h: frames.Header{Op: frames.OpPong, Length: 200}, err: frames.ErrFragmentedControl},
		{name: "length before masking", h: frames.Header{Op: frames.OpPong, Fin: true, Length: 200}, wrongMask: true, err: frames.ErrControlTooLong},
	}
	for _, s := range []side{server, client} {
		for _, tt := range tests {
			h := tt.h
			h.Masked = s.fromClient != tt.wrongMask
			if h.Masked {
				h.Mask = key
			}
			want := tt.err
			if want == errWrongMask {
				want = frames.ErrMasked
				if s.fromClient {
					want = frames.ErrUnmasked
				}
			}
			err := h.Check(s.fromClient, tt.allowedRsv)
			if err != want {
				t.Errorf("%s %s: Check = %v, want %v", s.name, tt.name, err, want)
				continue
			}
			if want != nil {
				var v *frames.Violation
				if !errors.As(err, &v) || v.Code != frames.CloseProtocolError {
					t.Errorf("%s %s: error %v is not a 1002 Violation", s.name, tt.name, err)
				}
			}
		}
	}
}

// errWrongMask stands in TestCheck for ErrUnmasked or ErrMasked, whichever
// the receiving side calls for.
var errWrongMask = errors.New("wrong mask for the side")

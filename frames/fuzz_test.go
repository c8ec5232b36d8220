package frames_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
)

// FuzzParseHeader feeds arbitrary bytes to ParseHeader and checks that it
// never panics, that its errors are the documented ones, that what it parses
// encodes back to the same header, and that Check accepts only headers that
// obey the rules it lists.
func FuzzParseHeader(f *testing.F) {
	seeds := [][]byte{
		{},
		{0x81},
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
		{0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58},
		{0x02, 0x7E, 0x01, 0x00},
		{0x82, 0xFE, 0xFF, 0xFF, 1, 2, 3, 4},
		{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0},
		{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0},
		{0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4},
		{0x08, 0x80, 1, 2, 3, 4},
		{0xF3, 0x00},
		{0xCB, 0x00},
		{0x82, 0x7E, 0x00, 0x05},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := frames.ParseHeader(b)
		switch {
		case err == frames.ErrShortHeader:
			if len(b) >= 2 && len(b) >= frames.HeaderSize(b[0], b[1]) {
				t.Fatalf("ErrShortHeader for % x, which holds a whole header", b)
			}
			return
		case err == frames.ErrLengthMSB:
			if b[1]&0x7F != 127 || b[2]&0x80 == 0 {
				t.Fatalf("ErrLengthMSB for % x", b)
			}
			return
		case err != nil:
			t.Fatalf("ParseHeader(% x): unexpected error %v", b, err)
		}
		n := frames.HeaderSize(b[0], b[1])
		if n < 2 || n > frames.MaxHeaderSize || n > len(b) {
			t.Fatalf("HeaderSize = %d for % x", n, b)
		}
		if h.Length < 0 || h.Op > 0xF || h.Rsv > 7 {
			t.Fatalf("ParseHeader(% x) = %+v: field out of range", b, h)
		}
		if h.Fin != (b[0]&0x80 != 0) || h.Masked != (b[1]&0x80 != 0) || byte(h.Op) != b[0]&0x0F {
			t.Fatalf("ParseHeader(% x) = %+v: fields disagree with the bytes", b, h)
		}
		if h.Masked && !bytes.Equal(h.Mask[:], b[n-4:n]) {
			t.Fatalf("ParseHeader(% x): mask % x", b, h.Mask)
		}
		if !h.Masked && h.Mask != [4]byte{} {
			t.Fatalf("ParseHeader(% x): mask % x without the mask bit", b, h.Mask)
		}

		var buf [frames.MaxHeaderSize]byte
		m := frames.PutHeader(buf[:], h)
		if m > n {
			t.Fatalf("PutHeader wrote %d bytes for a header read from %d", m, n)
		}
		// The encoding is minimal, so a header of the same size was
		// minimal too and must come out byte for byte.
		if m == n && !bytes.Equal(buf[:m], b[:n]) {
			t.Fatalf("PutHeader(ParseHeader(% x)) = % x", b[:n], buf[:m])
		}
		h2, err := frames.ParseHeader(buf[:m])
		if err != nil || h2 != h {
			t.Fatalf("round trip of %+v: %+v, %v", h, h2, err)
		}

		for _, fromClient := range []bool{true, false} {
			for _, allowed := range []byte{0, frames.Rsv1} {
				err := h.Check(fromClient, allowed)
				if err != nil {
					if code, ok := frames.CodeOf(err); !ok || code != frames.CloseProtocolError {
						t.Fatalf("Check(%v, %#x) of %+v = %v, not a 1002 violation", fromClient, allowed, h, err)
					}
					continue
				}
				ok := !h.Op.IsReserved() && h.Masked == fromClient
				if h.Op.IsControl() {
					ok = ok && h.Fin && h.Rsv == 0 && h.Length <= frames.MaxControlPayload
				} else {
					ok = ok && h.Rsv&^allowed == 0
				}
				if !ok {
					t.Fatalf("Check(%v, %#x) accepted %+v", fromClient, allowed, h)
				}
			}
		}
	})
}

// FuzzParseClose feeds arbitrary close payloads to ParseClose and checks that
// what it accepts obeys RFC 6455 §5.5.1 and §7.4 and is rebuilt byte for byte
// by AppendClose, and that what it refuses carries the right close code.
func FuzzParseClose(f *testing.F) {
	seeds := [][]byte{
		{},
		{0x03},
		{0x03, 0xE8},
		{0x03, 0xE9, 'b', 'y', 'e'},
		{0x03, 0xED},
		{0x03, 0xEE},
		{0x0B, 0xB8, 0xCE, 0xBA},
		{0x13, 0x88},
		{0x03, 0xE8, 0xED, 0xA0, 0x80},
		{0x03, 0xE8, 0xF0, 0x9F, 0x98},
		append([]byte{0x0F, 0xA0}, bytes.Repeat([]byte{'x'}, 124)...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := frames.ParseClose(p)
		if err != nil {
			want := frames.CloseProtocolError
			if err == frames.ErrInvalidCloseReason {
				want = frames.CloseInvalidPayload
			}
			if c, ok := frames.CodeOf(err); !ok || c != want {
				t.Fatalf("ParseClose(% x) error %v: CodeOf = %v, %v; want %v", p, err, c, ok, want)
			}
			if len(p) >= 2 && code != frames.CloseCode(binary.BigEndian.Uint16(p)) {
				t.Fatalf("ParseClose(% x) returned code %v with its error", p, code)
			}
			if reason != "" {
				t.Fatalf("ParseClose(% x) returned reason %q with an error", p, reason)
			}
			return
		}
		if len(p) == 0 {
			if code != frames.CloseNoStatus || reason != "" {
				t.Fatalf("ParseClose(empty) = %v, %q", code, reason)
			}
		} else if !code.Valid() || len(reason) > frames.MaxCloseReason || !utf8.ValidString(reason) {
			t.Fatalf("ParseClose(% x) accepted %v, %q", p, code, reason)
		}
		out, err := frames.AppendClose(nil, code, reason)
		if err != nil || !bytes.Equal(out, p) {
			t.Fatalf("AppendClose(ParseClose(% x)) = % x, %v", p, out, err)
		}
	})
}

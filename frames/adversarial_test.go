package frames_test

// Adversarial tests of package frames against its doc comments and
// RFC 6455 §5.2, §5.3, §5.5 and §7.4: boundaries the other tests do not
// pin down one by one.

import (
	"bytes"
	"errors"
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

// PutHeader: "b must have room for MaxHeaderSize bytes, or at least for
// the header being written ... PutHeader panics otherwise". Room is
// len(b): a slice whose length is too short must make it panic even when
// its capacity would hold the header, and nothing may be written past
// len(b).
func TestAdvPutHeaderShortLenSpareCap(t *testing.T) {
	cases := []struct {
		name string
		len  int
		h    frames.Header
	}{
		{"7-bit length, mask past len 2", 2, frames.Header{Op: frames.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}}},
		{"16-bit length, mask past len 4", 4, frames.Header{Op: frames.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 300}},
		{"64-bit length, mask past len 10", 10, frames.Header{Op: frames.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 1 << 20}},
	}
	for _, c := range cases {
		backing := make([]byte, frames.MaxHeaderSize)
		b := backing[:c.len]
		panicked := func() (p bool) {
			defer func() { p = recover() != nil }()
			frames.PutHeader(b, c.h)
			return false
		}()
		if !panicked {
			t.Errorf("%s: PutHeader did not panic", c.name)
		}
		if !bytes.Equal(backing[c.len:], make([]byte, frames.MaxHeaderSize-c.len)) {
			t.Errorf("%s: PutHeader wrote past len(b): % x", c.name, backing)
		}
	}
}

// The shortest encoding at each length boundary, masked and not, read
// back by ParseHeader and sized by HeaderSize (RFC 6455 §5.2).
func TestAdvHeaderLengthBoundaries(t *testing.T) {
	cases := []struct {
		length int64
		size   int // unmasked header size
		b1     byte
	}{
		{0, 2, 0}, {1, 2, 1}, {125, 2, 125}, {126, 4, 126}, {127, 4, 126},
		{0xFFFF, 4, 126}, {0x10000, 10, 127}, {1<<32 - 1, 10, 127}, {1 << 32, 10, 127}, {1<<63 - 1, 10, 127},
	}
	for _, c := range cases {
		for _, masked := range []bool{false, true} {
			h := frames.Header{Op: frames.OpBinary, Fin: true, Masked: masked, Length: c.length}
			if masked {
				h.Mask = [4]byte{0xde, 0xad, 0xbe, 0xef}
			}
			var b [frames.MaxHeaderSize]byte
			n := frames.PutHeader(b[:], h)
			want := c.size
			if masked {
				want += 4
			}
			if n != want {
				t.Errorf("len %d masked %v: wrote %d bytes, want %d", c.length, masked, n, want)
				continue
			}
			if got := b[1] & 0x7F; got != c.b1 {
				t.Errorf("len %d: 7-bit length field %d, want %d", c.length, got, c.b1)
			}
			if hs := frames.HeaderSize(b[0], b[1]); hs != n {
				t.Errorf("len %d masked %v: HeaderSize %d, want %d", c.length, masked, hs, n)
			}
			// Exactly the header parses; one byte less is short.
			got, err := frames.ParseHeader(b[:n])
			if err != nil || got != h {
				t.Errorf("len %d masked %v: ParseHeader = %+v, %v; want %+v", c.length, masked, got, err, h)
			}
			if g, err := frames.ParseHeader(b[:n-1]); err != frames.ErrShortHeader || g != (frames.Header{}) {
				t.Errorf("len %d masked %v: ParseHeader of %d bytes = %+v, %v; want zero, ErrShortHeader", c.length, masked, n-1, g, err)
			}
		}
	}
	// 64-bit lengths with the MSB set, alone and with every other bit.
	for _, l := range []uint64{1 << 63, 1<<64 - 1, 1<<63 | 1} {
		b := []byte{0x82, 127, byte(l >> 56), byte(l >> 48), byte(l >> 40), byte(l >> 32), byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)}
		h, err := frames.ParseHeader(b)
		if err != frames.ErrLengthMSB || h != (frames.Header{}) {
			t.Errorf("length %#x: %+v, %v; want zero, ErrLengthMSB", l, h, err)
		}
		if code, ok := frames.CodeOf(err); !ok || code != frames.CloseProtocolError {
			t.Errorf("length %#x: CodeOf = %v, %v", l, code, ok)
		}
	}
	// Non-minimal encodings are accepted (doc.go): 0 in 16 and in 64 bits.
	for _, b := range [][]byte{{0x81, 126, 0, 0}, {0x81, 127, 0, 0, 0, 0, 0, 0, 0, 5}} {
		h, err := frames.ParseHeader(b)
		if err != nil || h.Op != frames.OpText || !h.Fin {
			t.Errorf("% x: %+v, %v", b, h, err)
		}
	}
}

// Check on every opcode, RSV combination, FIN, mask, side, control
// length at the 125/126 boundary and allowedRsv of 0 and Rsv1, against
// the rules and their order as Check's doc comment lists them.
func TestAdvCheckEveryCombination(t *testing.T) {
	defined := map[frames.Opcode]bool{0: true, 1: true, 2: true, 8: true, 9: true, 10: true}
	for op := frames.Opcode(0); op < 0x20; op++ {
		for rsv := byte(0); rsv < 8; rsv++ {
			for _, fin := range []bool{false, true} {
				for _, masked := range []bool{false, true} {
					for _, fromClient := range []bool{false, true} {
						for _, length := range []int64{0, 125, 126, 0xFFFF} {
							for _, allowed := range []byte{0, frames.Rsv1} {
								h := frames.Header{Op: op, Rsv: rsv, Fin: fin, Masked: masked, Length: length}
								var want error
								control := op >= 8 && op <= 0xF
								switch {
								case !defined[op]:
									want = frames.ErrReservedOpcode
								case control && rsv != 0, !control && rsv&^allowed != 0:
									want = frames.ErrReservedBits
								case control && !fin:
									want = frames.ErrFragmentedControl
								case control && length > 125:
									want = frames.ErrControlTooLong
								case fromClient && !masked:
									want = frames.ErrUnmasked
								case !fromClient && masked:
									want = frames.ErrMasked
								}
								got := h.Check(fromClient, allowed)
								if got != want {
									t.Fatalf("%+v fromClient=%v allowed=%d: Check = %v, want %v", h, fromClient, allowed, got, want)
								}
								if got != nil {
									if code, ok := frames.CodeOf(got); !ok || code != frames.CloseProtocolError {
										t.Fatalf("%v: CodeOf = %v, %v", got, code, ok)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// Every opcode's classification and name (RFC 6455 §5.2, §11.8).
func TestAdvOpcodeEveryValue(t *testing.T) {
	names := map[frames.Opcode]string{0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong",
		3: "reserved(0x3)", 7: "reserved(0x7)", 0xB: "reserved(0xB)", 0xF: "reserved(0xF)", 0x10: "opcode(0x10)", 0xAB: "opcode(0xAB)", 0xFF: "opcode(0xFF)"}
	for v := 0; v < 256; v++ {
		o := frames.Opcode(v)
		if o.IsControl() != (v >= 8 && v <= 15) {
			t.Errorf("%#x IsControl = %v", v, o.IsControl())
		}
		if o.IsData() != (v <= 7) {
			t.Errorf("%#x IsData = %v", v, o.IsData())
		}
		def := v == 0 || v == 1 || v == 2 || v == 8 || v == 9 || v == 10
		if o.IsReserved() == def {
			t.Errorf("%#x IsReserved = %v", v, o.IsReserved())
		}
		if want, ok := names[o]; ok && o.String() != want {
			t.Errorf("%#x String = %q, want %q", v, o.String(), want)
		}
	}
}

// Close codes at every range boundary of RFC 6455 §7.4 and the IANA
// registry, through Valid, String, AppendClose and ParseClose.
func TestAdvCloseCodeBoundaries(t *testing.T) {
	cases := []struct {
		code  frames.CloseCode
		valid bool
		str   string
	}{
		{0, false, "0 (unused)"}, {999, false, "999 (unused)"},
		{1000, true, "1000 normal closure"}, {1003, true, "1003 unsupported data"},
		{1004, false, "1004 (reserved)"}, {1005, false, "1005 no status received"},
		{1006, false, "1006 abnormal closure"}, {1007, true, "1007 invalid payload data"},
		{1011, true, "1011 internal error"}, {1014, true, "1014 bad gateway"},
		{1015, false, "1015 TLS handshake failure"}, {1016, false, "1016 (reserved)"},
		{2999, false, "2999 (reserved)"}, {3000, true, "3000 (registered)"},
		{3999, true, "3999 (registered)"}, {4000, true, "4000 (application)"},
		{4999, true, "4999 (application)"}, {5000, false, "5000 (out of range)"},
		{65535, false, "65535 (out of range)"},
	}
	for _, c := range cases {
		if c.code.Valid() != c.valid {
			t.Errorf("%d Valid = %v", c.code, !c.valid)
		}
		if s := c.code.String(); s != c.str {
			t.Errorf("%d String = %q, want %q", c.code, s, c.str)
		}
		wire := []byte{byte(c.code >> 8), byte(c.code), 'o', 'k'}
		code, reason, err := frames.ParseClose(wire)
		if c.valid {
			if err != nil || code != c.code || reason != "ok" {
				t.Errorf("ParseClose(%d) = %v, %q, %v", c.code, code, reason, err)
			}
		} else {
			if err != frames.ErrInvalidCloseCode || code != c.code || reason != "" {
				t.Errorf("ParseClose(%d) = %v, %q, %v; want the code and ErrInvalidCloseCode", c.code, code, reason, err)
			}
		}
		dst := []byte("x")
		out, err := frames.AppendClose(dst, c.code, "ok")
		if c.valid {
			if err != nil || !bytes.Equal(out, append([]byte("x"), wire...)) {
				t.Errorf("AppendClose(%d) = % x, %v", c.code, out, err)
			}
		} else {
			if !errors.Is(err, frames.ErrInvalidCloseCode) || !bytes.Equal(out, []byte("x")) {
				t.Errorf("AppendClose(%d) = % x, %v", c.code, out, err)
			}
			if _, ok := frames.CodeOf(err); ok {
				t.Errorf("AppendClose(%d): CodeOf reports a code for a caller's mistake", c.code)
			}
			if _, err := frames.Close(c.code, "ok"); !errors.Is(err, frames.ErrInvalidCloseCode) {
				t.Errorf("Close(%d) error %v", c.code, err)
			}
		}
	}
	// 1005 alone is the empty payload; with a reason it is refused.
	if out, err := frames.AppendClose([]byte("x"), frames.CloseNoStatus, ""); err != nil || string(out) != "x" {
		t.Errorf("AppendClose(1005, \"\") = %q, %v", out, err)
	}
	if _, err := frames.AppendClose(nil, frames.CloseNoStatus, "r"); !errors.Is(err, frames.ErrInvalidCloseCode) {
		t.Errorf("AppendClose(1005, \"r\") error %v", err)
	}
	if f, err := frames.Close(frames.CloseNoStatus, ""); err != nil || len(f.Payload) != 0 || f.Op != frames.OpClose || !f.Fin {
		t.Errorf("Close(1005, \"\") = %+v, %v", f, err)
	}
}

// Close reasons at the length boundary and with UTF-8 edge cases
// (RFC 6455 §5.5.1: the reason is UTF-8; §8.1 calls for 1007).
func TestAdvCloseReasonEdges(t *testing.T) {
	long := func(n int) string { return string(bytes.Repeat([]byte{'a'}, n)) }
	cases := []struct {
		name   string
		reason string
		want   error
	}{
		{"123 bytes", long(123), nil},
		{"124 bytes", long(124), frames.ErrCloseReasonTooLong},
		{"121 + 2-byte rune = 123", long(121) + "é", nil},
		{"max code point", "\U0010FFFF", nil},
		{"last before surrogates", "\xed\x9f\xbf", nil},
		{"first surrogate", "\xed\xa0\x80", frames.ErrInvalidCloseReason},
		{"last surrogate", "\xed\xbf\xbf", frames.ErrInvalidCloseReason},
		{"past U+10FFFF", "\xf4\x90\x80\x80", frames.ErrInvalidCloseReason},
		{"overlong NUL", "\xc0\x80", frames.ErrInvalidCloseReason},
		{"overlong 3-byte", "\xe0\x9f\xbf", frames.ErrInvalidCloseReason},
		{"overlong 4-byte", "\xf0\x8f\xbf\xbf", frames.ErrInvalidCloseReason},
		{"truncated at the end", "ok\xe2\x82", frames.ErrInvalidCloseReason},
		{"stray continuation", "\x80", frames.ErrInvalidCloseReason},
		{"F5", "\xf5\x80\x80\x80", frames.ErrInvalidCloseReason},
		{"NUL is valid", "\x00", nil},
	}
	for _, c := range cases {
		p := append([]byte{0x0F, 0xA0}, c.reason...) // 4000
		code, reason, err := frames.ParseClose(p)
		if err != c.want {
			t.Errorf("ParseClose %s: error %v, want %v", c.name, err, c.want)
			continue
		}
		if code != 4000 {
			t.Errorf("ParseClose %s: code %v, want 4000 even with an error", c.name, code)
		}
		if err == nil && reason != c.reason {
			t.Errorf("ParseClose %s: reason %q", c.name, reason)
		}
		if err == frames.ErrInvalidCloseReason {
			if cc, ok := frames.CodeOf(err); !ok || cc != frames.CloseInvalidPayload {
				t.Errorf("%s: CodeOf = %v, %v; want 1007", c.name, cc, ok)
			}
		}
		out, aerr := frames.AppendClose(nil, 4000, c.reason)
		if c.want == nil {
			if aerr != nil || !bytes.Equal(out, p) {
				t.Errorf("AppendClose %s = % x, %v", c.name, out, aerr)
			}
		} else if !errors.Is(aerr, c.want) || out != nil {
			t.Errorf("AppendClose %s = % x, %v; want %v", c.name, out, aerr, c.want)
		}
	}
	// One byte, whatever it is, is ErrClosePayload with code 0.
	for _, b := range []byte{0, 0x03, 0xFF} {
		if code, r, err := frames.ParseClose([]byte{b}); err != frames.ErrClosePayload || code != 0 || r != "" {
			t.Errorf("ParseClose(% x) = %v, %q, %v", b, code, r, err)
		}
	}
	// The parsed reason must not alias the payload.
	p := append([]byte{0x03, 0xE8}, "bye"...)
	_, r, _ := frames.ParseClose(p)
	p[2] = 'X'
	if r != "bye" {
		t.Errorf("reason changed with the payload: %q", r)
	}
}

// Mask: the same call masks and unmasks; pieces of any size, with any
// (negative too) starting offset, give what one call gives (RFC 6455 §5.3).
func TestAdvMaskPiecesAndOffsets(t *testing.T) {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	orig := make([]byte, 301)
	for i := range orig {
		orig[i] = byte(i * 7)
	}
	for start := -9; start <= 9; start++ {
		want := bytes.Clone(orig)
		for i := range want {
			want[i] ^= key[((start%4+4)%4+i)%4]
		}
		for _, piece := range []int{1, 2, 3, 5, 8, 64, 300, 301} {
			got := bytes.Clone(orig)
			off := start
			for i := 0; i < len(got); i += piece {
				off = frames.Mask(got[i:min(i+piece, len(got))], key, off)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("start %d pieces of %d: wrong mask", start, piece)
			}
			if wantOff := ((start%4+4)%4 + len(orig)) % 4; off != wantOff {
				t.Fatalf("start %d: final offset %d, want %d", start, off, wantOff)
			}
			frames.Mask(got, key, start)
			if !bytes.Equal(got, orig) {
				t.Fatalf("start %d: masking twice did not restore the payload", start)
			}
		}
	}
	if off := frames.Mask(nil, key, 6); off != 2 {
		t.Errorf("Mask(nil, 6) = %d, want 2", off)
	}
}

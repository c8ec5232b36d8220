package frames_test

// Corner tests of package frames against independent references: RFC 6455
// §5.2, §5.3, §5.5 and §7.4 written out, and gobwas/ws's ReadHeader,
// WriteHeader, CheckHeader, Cipher and close helpers, driven by tables and
// by randomized inputs from a fixed seed.

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/frames"
)

// cornerRand is the randomness of these tests: a fixed seed, so that a
// failure reproduces.
func cornerRand() *rand.Rand { return rand.New(rand.NewPCG(6455, 7692)) }

// cornerLength picks a payload length near one of the boundaries of the
// length encodings of RFC 6455 §5.2.
func cornerLength(r *rand.Rand) uint64 {
	bounds := []uint64{0, 125, 126, 127, 0xFFFF, 0x10000, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64}
	b := bounds[r.IntN(len(bounds))]
	switch r.IntN(3) {
	case 0:
		return b
	case 1:
		return b + uint64(r.IntN(3)) // may wrap past MaxUint64, which is fine
	default:
		return b - uint64(r.IntN(3))
	}
}

// cornerWire builds a header on the wire with a random first byte, the
// given length in the 7-, 16- or 64-bit form (the longer forms possibly
// not minimal) and a random mask, followed by junk.
func cornerWire(r *rand.Rand) []byte {
	b := []byte{byte(r.IntN(256)), 0}
	masked := r.IntN(2) == 0
	if masked {
		b[1] = 0x80
	}
	l := cornerLength(r)
	switch form := r.IntN(3); {
	case form == 0 && l < 126:
		b[1] |= byte(l)
	case form <= 1 && l <= 0xFFFF:
		b[1] |= 126
		b = append(b, byte(l>>8), byte(l))
	default:
		b[1] |= 127
		for i := 7; i >= 0; i-- {
			b = append(b, byte(l>>(8*i)))
		}
	}
	if masked {
		b = append(b, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)))
	}
	return append(b, 0xEE, 0xEE, 0xEE)
}

// Random headers on the wire, every length form at every boundary, parsed
// by colibri and by gobwas's ReadHeader: the same fields, the same size,
// the same refusal of a 64-bit length with its top bit set (RFC 6455
// §5.2), and ErrShortHeader for every strict prefix.
func TestCornerParseHeaderRandomVsGobwas(t *testing.T) {
	r := cornerRand()
	for i := range 20000 {
		wire := cornerWire(r)
		h, err := frames.ParseHeader(wire)
		rd := bytes.NewReader(wire)
		g, gerr := ws.ReadHeader(rd)
		size := frames.HeaderSize(wire[0], wire[1])
		if gerr == ws.ErrHeaderLengthMSB {
			if err != frames.ErrLengthMSB || h != (frames.Header{}) {
				t.Fatalf("ParseHeader(% x) = %+v, %v; gobwas says the length has its MSB set", wire, h, err)
			}
			continue
		}
		if gerr != nil {
			t.Fatalf("gobwas ReadHeader(% x): %v", wire, gerr)
		}
		if err != nil {
			t.Fatalf("ParseHeader(% x): %v; gobwas read %+v", wire, err, g)
		}
		want := frames.Header{Op: frames.Opcode(g.OpCode), Fin: g.Fin, Rsv: g.Rsv, Masked: g.Masked, Mask: g.Mask, Length: g.Length}
		if h != want {
			t.Fatalf("ParseHeader(% x) = %+v, gobwas %+v", wire, h, want)
		}
		if consumed := len(wire) - rd.Len(); size != consumed {
			t.Fatalf("HeaderSize(% x) = %d, gobwas read %d bytes", wire[:2], size, consumed)
		}
		if i%50 == 0 {
			for n := range size {
				if _, err := frames.ParseHeader(wire[:n]); err != frames.ErrShortHeader {
					t.Fatalf("ParseHeader of %d bytes of % x: %v, want ErrShortHeader", n, wire[:size], err)
				}
			}
		}
		// Written back, the header takes the shortest form, exactly as
		// gobwas writes it; when the wire used it, the bytes come back.
		var out [frames.MaxHeaderSize]byte
		n := frames.PutHeader(out[:], h)
		var gb bytes.Buffer
		if err := ws.WriteHeader(&gb, g); err != nil {
			t.Fatalf("gobwas WriteHeader(%+v): %v", g, err)
		}
		if !bytes.Equal(out[:n], gb.Bytes()) || n != ws.HeaderSize(g) {
			t.Fatalf("PutHeader(%+v) = % x, gobwas % x", h, out[:n], gb.Bytes())
		}
		minimal := (h.Length < 126) == (wire[1]&0x7F < 126) && (h.Length > 0xFFFF) == (wire[1]&0x7F == 127)
		if minimal && !bytes.Equal(out[:n], wire[:size]) {
			t.Fatalf("PutHeader(ParseHeader(% x)) = % x", wire[:size], out[:n])
		}
	}
}

// Check against gobwas's CheckHeader on random headers, without
// extensions: the same verdict, accept or refuse, on which side and in
// which fragmentation state the frame is legal (RFC 6455 §5.1, §5.2, §5.5).
func TestCornerCheckRandomVsGobwas(t *testing.T) {
	r := cornerRand()
	lengths := []int64{0, 1, 124, 125, 126, 127, 0xFFFF, 0x10000, math.MaxInt64}
	for range 20000 {
		h := frames.Header{
			Op:     frames.Opcode(r.IntN(16)),
			Fin:    r.IntN(2) == 0,
			Masked: r.IntN(2) == 0,
			Length: lengths[r.IntN(len(lengths))],
		}
		if r.IntN(4) == 0 {
			h.Rsv = byte(r.IntN(8))
		}
		fromClient := r.IntN(2) == 0
		// gobwas also checks continuation rules; give it the state in
		// which the opcode is in place.
		s := ws.StateClientSide
		if fromClient {
			s = ws.StateServerSide
		}
		if h.Op == frames.OpContinuation {
			s |= ws.StateFragmented
		}
		g := ws.Header{Fin: h.Fin, Rsv: h.Rsv, OpCode: ws.OpCode(h.Op), Masked: h.Masked, Length: h.Length}
		err := h.Check(fromClient, 0)
		gerr := ws.CheckHeader(g, s)
		if (err == nil) != (gerr == nil) {
			t.Fatalf("Check(%+v, fromClient %v) = %v, gobwas %v", h, fromClient, err, gerr)
		}
		if err != nil {
			if code, ok := frames.CodeOf(err); !ok || code != frames.CloseProtocolError {
				t.Fatalf("Check(%+v) = %v: CodeOf %v, %v; want 1002", h, err, code, ok)
			}
		}
	}
}

// PutHeader panics when b is one byte short of the header it writes, for
// every length form and with or without a mask, and writes nothing
// outside the header when b is exactly long enough.
func TestCornerPutHeaderExactBuffer(t *testing.T) {
	for _, l := range []int64{0, 125, 126, 0xFFFF, 0x10000, math.MaxInt64} {
		for _, masked := range []bool{false, true} {
			h := frames.Header{Op: frames.OpBinary, Fin: true, Masked: masked, Mask: [4]byte{1, 2, 3, 4}, Length: l}
			var gb bytes.Buffer
			if err := ws.WriteHeader(&gb, ws.Header{OpCode: ws.OpBinary, Fin: true, Masked: masked, Mask: h.Mask, Length: l}); err != nil {
				t.Fatal(err)
			}
			n := gb.Len()
			buf := bytes.Repeat([]byte{0xEE}, n+4)
			if got := frames.PutHeader(buf[:n:n], h); got != n || !bytes.Equal(buf[:n], gb.Bytes()) {
				t.Errorf("length %d masked %v: PutHeader = %d, % x; want %d, % x", l, masked, got, buf[:n], n, gb.Bytes())
			}
			if !bytes.Equal(buf[n:], []byte{0xEE, 0xEE, 0xEE, 0xEE}) {
				t.Errorf("length %d masked %v: PutHeader wrote past the header: % x", l, masked, buf[n:])
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("length %d masked %v: PutHeader into %d bytes did not panic", l, masked, n-1)
					}
				}()
				frames.PutHeader(buf[:n-1], h) // spare capacity must not count
			}()
		}
	}
}

// Mask against gobwas's Cipher and RFC 6455 §5.3 written out, on random
// lengths, sub-slices starting at any alignment, any offset (negative and
// past 3 too) and random cuts: same bytes, same returned offset, and not
// one byte touched outside the slice.
func TestCornerMaskRandomVsCipher(t *testing.T) {
	r := cornerRand()
	backing := make([]byte, 1200)
	for range 3000 {
		n := r.IntN(300)
		if r.IntN(8) == 0 {
			n = r.IntN(1100)
		}
		start := r.IntN(33)
		offset := r.IntN(41) - 20
		key := [4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}
		for i := range backing {
			backing[i] = byte(r.IntN(256))
		}
		orig := bytes.Clone(backing)
		norm := ((offset % 4) + 4) % 4

		want := bytes.Clone(orig[start : start+n])
		for i := range want {
			want[i] ^= key[(norm+i)%4]
		}
		viaCipher := bytes.Clone(orig[start : start+n])
		ws.Cipher(viaCipher, key, norm)
		if !bytes.Equal(viaCipher, want) {
			t.Fatalf("oracle disagreement: ws.Cipher len %d offset %d", n, norm)
		}

		// In random pieces.
		p := backing[start : start+n]
		off := offset
		for i := 0; i < n; {
			k := min(n-i, 1+r.IntN(70))
			off = frames.Mask(p[i:i+k], key, off)
			i += k
		}
		if n == 0 {
			off = frames.Mask(p, key, off)
		}
		if !bytes.Equal(p, want) {
			t.Fatalf("Mask len %d at alignment %d offset %d: wrong bytes", n, start, offset)
		}
		if wantOff := (norm + n) % 4; off != wantOff {
			t.Fatalf("Mask len %d offset %d returned %d, want %d", n, offset, off, wantOff)
		}
		if !bytes.Equal(backing[:start], orig[:start]) || !bytes.Equal(backing[start+n:], orig[start+n:]) {
			t.Fatalf("Mask len %d at alignment %d wrote outside its slice", n, start)
		}
		// Whole, it undoes itself.
		if got := frames.Mask(p, key, offset); got != (norm+n)%4 || !bytes.Equal(backing, orig) {
			t.Fatalf("Mask twice, len %d offset %d, did not restore the payload", n, offset)
		}
	}
}

// cornerValidCode is RFC 6455 §7.4 and the IANA registry written out: what
// may be sent in a close frame.
func cornerValidCode(c int) bool {
	switch {
	case c < 1000:
		return false // §7.4.2: not used
	case c == 1004, c == 1005, c == 1006, c == 1015:
		return false // reserved, or for local use only (§7.4.1)
	case c <= 1014:
		return true // §7.4.1 and IANA: 1012 to 1014
	case c < 3000:
		return false // reserved for future revisions (§7.4.2)
	case c < 5000:
		return true // registered and private use
	}
	return false
}

// Random close payloads, of every length from 0 to 130 bytes, with codes
// near every range boundary and reasons that are valid UTF-8 or not,
// parsed by ParseClose and judged by RFC 6455 §5.5, §5.5.1 and §7.4 with
// gobwas's ParseCloseFrameData reading the code and reason.
func TestCornerParseCloseRandomVsRFC(t *testing.T) {
	r := cornerRand()
	codes := []int{0, 999, 1000, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1014, 1015, 1016, 2999, 3000, 3999, 4000, 4999, 5000, 65535}
	alphabet := []string{"a", "é", "€", "𝄞", "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff", "\x00"}
	for range 5000 {
		code := codes[r.IntN(len(codes))] + r.IntN(3) - 1
		code = min(max(code, 0), 65535)
		var sb strings.Builder
		for want := r.IntN(131); sb.Len() < want; {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		reason := sb.String()
		if r.IntN(5) == 0 {
			reason = strings.Repeat("x", 120+r.IntN(6))
		}
		p := append([]byte{byte(code >> 8), byte(code)}, reason...)
		if r.IntN(40) == 0 {
			p = p[:r.IntN(2)]
		}

		gotCode, gotReason, err := frames.ParseClose(p)
		var want error
		switch {
		case len(p) == 0:
			if gotCode != frames.CloseNoStatus || gotReason != "" || err != nil {
				t.Fatalf("ParseClose(empty) = %v, %q, %v", gotCode, gotReason, err)
			}
			continue
		case len(p) == 1:
			want = frames.ErrClosePayload
		case !cornerValidCode(code):
			want = frames.ErrInvalidCloseCode
		case len(p) > frames.MaxControlPayload:
			want = frames.ErrCloseReasonTooLong
		case !utf8.ValidString(reason):
			want = frames.ErrInvalidCloseReason
		}
		if err != want {
			t.Fatalf("ParseClose(% x) error %v, want %v", p, err, want)
		}
		gc, gr := ws.ParseCloseFrameData(p)
		if len(p) >= 2 && gotCode != frames.CloseCode(gc) {
			t.Fatalf("ParseClose(% x) code %v, gobwas %d", p, gotCode, gc)
		}
		if err == nil && gotReason != gr {
			t.Fatalf("ParseClose(% x) reason %q, gobwas %q", p, gotReason, gr)
		}
		if err != nil && gotReason != "" {
			t.Fatalf("ParseClose(% x) returned reason %q with error %v", p, gotReason, err)
		}

		// AppendClose refuses the same arguments, and builds what gobwas
		// builds from the others.
		dst := []byte("pre")
		out, aerr := frames.AppendClose(dst, frames.CloseCode(code), reason)
		var awant error
		switch {
		case code == int(frames.CloseNoStatus) && reason == "":
			// Documented: the close frame without a payload.
			if aerr != nil || string(out) != "pre" {
				t.Fatalf("AppendClose(1005, \"\") = % x, %v; want nothing appended", out, aerr)
			}
			continue
		case !cornerValidCode(code):
			awant = frames.ErrInvalidCloseCode
		case len(reason) > frames.MaxCloseReason:
			awant = frames.ErrCloseReasonTooLong
		case !utf8.ValidString(reason):
			awant = frames.ErrInvalidCloseReason
		}
		if awant != nil {
			if !errors.Is(aerr, awant) || !bytes.Equal(out, []byte("pre")) {
				t.Fatalf("AppendClose(%d, %q) = % x, %v; want dst unchanged and %v", code, reason, out, aerr, awant)
			}
			if _, ok := frames.CodeOf(aerr); ok {
				t.Fatalf("AppendClose(%d, %q): CodeOf(%v) reports a code for a caller's mistake", code, reason, aerr)
			}
			continue
		}
		if aerr != nil {
			t.Fatalf("AppendClose(%d, %q): %v", code, reason, aerr)
		}
		if body := ws.NewCloseFrameBody(ws.StatusCode(code), reason); !bytes.Equal(out[3:], body) || string(out[:3]) != "pre" {
			t.Fatalf("AppendClose(%d, %q) = % x, gobwas % x", code, reason, out, body)
		}
	}
}

package frames_test

// This file compares the pieces of package frames that gobwas/ws also
// provides: the frame header codec, the close codes and masking. The tests
// feed the same bytes to both and assert what each does; the benchmarks
// measure both side by side. docs/architecture.md records the decisions
// they support.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/frames"
)

// colibriReadHeader parses and checks wire the way wsconn does for each
// frame: ParseHeader on bytes still in the read buffer, then Check.
func colibriReadHeader(wire []byte, fromClient, deflate bool) (frames.Header, error) {
	var allowed byte
	if deflate {
		allowed = frames.Rsv1
	}
	h, err := frames.ParseHeader(wire)
	if err != nil {
		return h, err
	}
	return h, h.Check(fromClient, allowed)
}

// gobwasReadHeader does the same with gobwas/ws: ReadHeader from a reader,
// then CheckHeader with the state that describes the same connection.
func gobwasReadHeader(wire []byte, fromClient, deflate bool) (ws.Header, error) {
	h, err := ws.ReadHeader(bytes.NewReader(wire))
	if err != nil {
		return h, err
	}
	s := ws.StateClientSide
	if fromClient {
		s = ws.StateServerSide
	}
	if deflate {
		s = s.Set(ws.StateExtended)
	}
	return h, ws.CheckHeader(h, s)
}

// TestHeaderConformanceColibriVsGobwas feeds the same header bytes to
// colibri's ParseHeader and Check and to gobwas's ReadHeader and
// CheckHeader, and asserts what each one decides. The rows where the two
// differ are why colibri keeps its own codec: with permessage-deflate
// negotiated, gobwas lets RSV2 and RSV3 through and lets RSV1 through on
// control frames (RFC 6455 §5.2, RFC 7692 §6), and its errors carry no
// close code, where every colibri violation is a *frames.Violation with
// the code to fail the connection with (RFC 6455 §7.4.1).
func TestHeaderConformanceColibriVsGobwas(t *testing.T) {
	k := key[:]
	with := func(b []byte, tail ...[]byte) []byte {
		for _, t := range tail {
			b = append(b, t...)
		}
		return b
	}
	tests := []struct {
		name       string
		wire       []byte
		fromClient bool // a server reads it; false: a client reads it
		deflate    bool // permessage-deflate negotiated
		colibri    error
		gobwas     error
		length     int64 // the length both read, when both accept
	}{
		{
			name:       "masked text, 7-bit length",
			wire:       with([]byte{0x81, 0x85}, k),
			fromClient: true,
			length:     5,
		},
		{
			// RFC 6455 §5.2 asks senders for the minimal encoding; both
			// readers accept a longer one, which is unambiguous.
			name:       "length 5 in the 16-bit form (not minimal)",
			wire:       with([]byte{0x81, 0xFE, 0x00, 0x05}, k),
			fromClient: true,
			length:     5,
		},
		{
			name:       "length 126 in the 64-bit form (not minimal)",
			wire:       with([]byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x7E}, k),
			fromClient: true,
			length:     126,
		},
		{
			name:       "64-bit length with the most significant bit set",
			wire:       with([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x01}, k),
			fromClient: true,
			colibri:    frames.ErrLengthMSB,
			gobwas:     ws.ErrHeaderLengthMSB,
		},
		{
			name:       "reserved data opcode 0x3",
			wire:       with([]byte{0x83, 0x80}, k),
			fromClient: true,
			colibri:    frames.ErrReservedOpcode,
			gobwas:     ws.ErrProtocolOpCodeReserved,
		},
		{
			name:       "reserved control opcode 0xB",
			wire:       with([]byte{0x8B, 0x80}, k),
			fromClient: true,
			colibri:    frames.ErrReservedOpcode,
			gobwas:     ws.ErrProtocolOpCodeReserved,
		},
		{
			name:       "RSV1 without an extension",
			wire:       with([]byte{0xC1, 0x80}, k),
			fromClient: true,
			colibri:    frames.ErrReservedBits,
			gobwas:     ws.ErrProtocolNonZeroRsv,
		},
		{
			name:       "RSV1 on a text frame with permessage-deflate",
			wire:       with([]byte{0xC1, 0x80}, k),
			fromClient: true,
			deflate:    true,
		},
		{
			// permessage-deflate defines RSV1 only (RFC 7692 §6); gobwas's
			// state says "an extension", not which bits it gave meaning.
			name:       "RSV2 on a text frame with permessage-deflate",
			wire:       with([]byte{0xA1, 0x80}, k),
			fromClient: true,
			deflate:    true,
			colibri:    frames.ErrReservedBits,
			gobwas:     nil,
		},
		{
			name:       "RSV3 on a binary frame with permessage-deflate",
			wire:       with([]byte{0x92, 0x80}, k),
			fromClient: true,
			deflate:    true,
			colibri:    frames.ErrReservedBits,
			gobwas:     nil,
		},
		{
			// RFC 7692 §6.1: control frames are never compressed.
			name:       "RSV1 on a ping with permessage-deflate",
			wire:       with([]byte{0xC9, 0x80}, k),
			fromClient: true,
			deflate:    true,
			colibri:    frames.ErrReservedBits,
			gobwas:     nil,
		},
		{
			name:       "ping without FIN",
			wire:       with([]byte{0x09, 0x80}, k),
			fromClient: true,
			colibri:    frames.ErrFragmentedControl,
			gobwas:     ws.ErrProtocolControlNotFinal,
		},
		{
			name:       "close of 126 bytes",
			wire:       with([]byte{0x88, 0xFE, 0x00, 0x7E}, k),
			fromClient: true,
			colibri:    frames.ErrControlTooLong,
			gobwas:     ws.ErrProtocolControlPayloadOverflow,
		},
		{
			name:       "ping of 125 bytes, the most allowed",
			wire:       with([]byte{0x89, 0xFD}, k),
			fromClient: true,
			length:     125,
		},
		{
			name:       "unmasked frame from a client",
			wire:       []byte{0x81, 0x05},
			fromClient: true,
			colibri:    frames.ErrUnmasked,
			gobwas:     ws.ErrProtocolMaskRequired,
		},
		{
			name:    "masked frame from a server",
			wire:    with([]byte{0x81, 0x85}, k),
			colibri: frames.ErrMasked,
			gobwas:  ws.ErrProtocolMaskUnexpected,
		},
		{
			// gobwas's CheckHeader takes the fragmentation state from its
			// caller; colibri's Check looks at one header, and the message
			// layer (wsconn with messages) refuses the continuation.
			name:       "continuation with no message open",
			wire:       with([]byte{0x80, 0x80}, k),
			fromClient: true,
			colibri:    nil,
			gobwas:     ws.ErrProtocolContinuationUnexpected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, cerr := colibriReadHeader(tt.wire, tt.fromClient, tt.deflate)
			gh, gerr := gobwasReadHeader(tt.wire, tt.fromClient, tt.deflate)
			if !errors.Is(cerr, tt.colibri) || (tt.colibri == nil) != (cerr == nil) {
				t.Errorf("colibri: %v, want %v", cerr, tt.colibri)
			}
			if !errors.Is(gerr, tt.gobwas) || (tt.gobwas == nil) != (gerr == nil) {
				t.Errorf("gobwas: %v, want %v", gerr, tt.gobwas)
			}
			// Every refusal of colibri's names the close code to send;
			// gobwas's errors are plain errors.
			if cerr != nil {
				if code, ok := frames.CodeOf(cerr); !ok || code != frames.CloseProtocolError {
					t.Errorf("colibri: CodeOf(%v) = %v, %v; want 1002", cerr, code, ok)
				}
			}
			if gerr != nil {
				if _, ok := frames.CodeOf(gerr); ok {
					t.Errorf("gobwas: %v carries a close code", gerr)
				}
			}
			if cerr == nil && gerr == nil {
				if ch.Length != tt.length || gh.Length != tt.length {
					t.Errorf("lengths: colibri %d, gobwas %d, want %d", ch.Length, gh.Length, tt.length)
				}
				if byte(ch.Op) != byte(gh.OpCode) || ch.Fin != gh.Fin || ch.Rsv != gh.Rsv || ch.Masked != gh.Masked || ch.Mask != gh.Mask {
					t.Errorf("headers differ: colibri %+v, gobwas %+v", ch, gh)
				}
			}
		})
	}
}

// TestHeaderShortInputColibriVsGobwas shows why colibri parses headers
// from bytes rather than from a reader: given a header cut short, colibri
// reports ErrShortHeader and the bytes stay where they are, to be parsed
// again once more arrive; gobwas's ReadHeader has consumed them by the time
// it fails. colibri's reader also parses control frames that sit after
// buffered data without consuming them (it cuts them out of its buffer),
// which a reader-based parser cannot do.
func TestHeaderShortInputColibriVsGobwas(t *testing.T) {
	full := append([]byte{0x82, 0xFE, 0x01, 0x00}, key[:]...) // 8 bytes
	for _, n := range []int{0, 1, 2, 3, 7} {
		t.Run(strconv.Itoa(n)+" bytes", func(t *testing.T) {
			wire := full[:n]
			if _, err := frames.ParseHeader(wire); err != frames.ErrShortHeader {
				t.Errorf("colibri: %v, want ErrShortHeader", err)
			}
			r := bytes.NewReader(wire)
			_, err := ws.ReadHeader(r)
			// Cut right after the first two bytes, the second read finds
			// nothing and gobwas reports io.EOF, as for a clean end.
			want := io.ErrUnexpectedEOF
			if n == 0 || n == 2 {
				want = io.EOF
			}
			if err != want {
				t.Errorf("gobwas: %v, want %v", err, want)
			}
			if r.Len() != 0 {
				t.Errorf("gobwas left %d of %d bytes unread, want it to have consumed them", r.Len(), n)
			}
		})
	}
}

// TestHeaderWriteColibriVsGobwas asserts that both writers encode valid
// headers byte for byte alike, and shows what each does with a header a
// caller got wrong: colibri drops bits that do not fit and panics on a
// negative length (documented on PutHeader); gobwas lets an RSV value or
// an opcode overflow into the neighbouring bits and writes a negative
// length as a header that announces a mask and a 64-bit length it does not
// contain.
func TestHeaderWriteColibriVsGobwas(t *testing.T) {
	gobwasWrite := func(h frames.Header) []byte {
		var b bytes.Buffer
		err := ws.WriteHeader(&b, ws.Header{Fin: h.Fin, Rsv: h.Rsv, OpCode: ws.OpCode(h.Op), Masked: h.Masked, Mask: h.Mask, Length: h.Length})
		if err != nil {
			t.Fatalf("gobwas WriteHeader(%+v): %v", h, err)
		}
		return b.Bytes()
	}
	colibriWrite := func(h frames.Header) []byte {
		var b [frames.MaxHeaderSize]byte
		return b[:frames.PutHeader(b[:], h)]
	}
	for _, l := range []int64{0, 125, 126, 65535, 65536, math.MaxInt64} {
		for _, masked := range []bool{false, true} {
			h := frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv1, Masked: masked, Mask: key, Length: l}
			if c, g := colibriWrite(h), gobwasWrite(h); !bytes.Equal(c, g) {
				t.Errorf("length %d masked %v: colibri % x, gobwas % x", l, masked, c, g)
			}
		}
	}

	misuse := []struct {
		name    string
		h       frames.Header
		colibri []byte
		gobwas  []byte
	}{
		{
			name:    "RSV value over three bits",
			h:       frames.Header{Op: frames.OpText, Rsv: 0x8},
			colibri: []byte{0x01, 0x00},
			gobwas:  []byte{0x81, 0x00}, // FIN appears
		},
		{
			name:    "opcode over four bits",
			h:       frames.Header{Op: 0x11, Fin: true},
			colibri: []byte{0x81, 0x00},
			gobwas:  []byte{0x91, 0x00}, // RSV3 appears
		},
		{
			name:   "negative length",
			h:      frames.Header{Op: frames.OpBinary, Fin: true, Length: -1},
			gobwas: []byte{0x82, 0xFF}, // "masked, 64-bit length follows"
		},
	}
	for _, tt := range misuse {
		t.Run(tt.name, func(t *testing.T) {
			if g := gobwasWrite(tt.h); !bytes.Equal(g, tt.gobwas) {
				t.Errorf("gobwas wrote % x, want % x", g, tt.gobwas)
			}
			if tt.colibri == nil {
				defer func() {
					if recover() == nil {
						t.Error("colibri PutHeader did not panic")
					}
				}()
			}
			if c := colibriWrite(tt.h); !bytes.Equal(c, tt.colibri) {
				t.Errorf("colibri wrote % x, want % x", c, tt.colibri)
			}
		})
	}
}

// headerWires are frame headers of a client's frames, one per length form.
var headerWires = []struct {
	name string
	wire []byte
}{
	{name: "7bit", wire: []byte{0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D}},
	{name: "16bit", wire: []byte{0x82, 0xFE, 0x01, 0x00, 0x37, 0xFA, 0x21, 0x3D}},
	{name: "64bit", wire: []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x37, 0xFA, 0x21, 0x3D}},
}

var sinkGobwasHeader ws.Header

// BenchmarkHeaderParseColibriVsGobwas reads and checks one client frame
// header the way a server does for every frame: colibri with ParseHeader
// and Check on bytes in its buffer; gobwas with ReadHeader (which
// allocates its scratch buffer on every call) or ReadHeaderBuffer (a
// caller's buffer), each from a reader over the same bytes, then
// CheckHeader.
func BenchmarkHeaderParseColibriVsGobwas(b *testing.B) {
	for _, tt := range headerWires {
		b.Run(tt.name+"/colibri", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h, err := frames.ParseHeader(tt.wire)
				if err == nil {
					err = h.Check(true, 0)
				}
				if err != nil {
					b.Fatal(err)
				}
				sinkHeader = h
			}
		})
		b.Run(tt.name+"/gobwas-ReadHeader", func(b *testing.B) {
			r := bytes.NewReader(tt.wire)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(tt.wire)
				h, err := ws.ReadHeader(r)
				if err == nil {
					err = ws.CheckHeader(h, ws.StateServerSide)
				}
				if err != nil {
					b.Fatal(err)
				}
				sinkGobwasHeader = h
			}
		})
		b.Run(tt.name+"/gobwas-ReadHeaderBuffer", func(b *testing.B) {
			r := bytes.NewReader(tt.wire)
			scratch := make([]byte, ws.MaxHeaderSize)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(tt.wire)
				h, err := ws.ReadHeaderBuffer(r, scratch)
				if err == nil {
					err = ws.CheckHeader(h, ws.StateServerSide)
				}
				if err != nil {
					b.Fatal(err)
				}
				sinkGobwasHeader = h
			}
		})
	}
}

// appendWriter is an io.Writer that keeps what it is given, as the
// connection's write buffer would.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// BenchmarkHeaderWriteColibriVsGobwas encodes the header of a server's
// 4 KiB binary frame: colibri with PutHeader into a scratch array (the
// connection then writes header and payload at once); gobwas with
// WriteHeader (a new 14-byte buffer per call) or WriteHeaderBuffer (a
// caller's buffer), each into a writer that keeps the bytes.
func BenchmarkHeaderWriteColibriVsGobwas(b *testing.B) {
	h := frames.Header{Op: frames.OpBinary, Fin: true, Length: 4096}
	gh := ws.Header{OpCode: ws.OpBinary, Fin: true, Length: 4096}
	b.Run("colibri", func(b *testing.B) {
		var buf [frames.MaxHeaderSize]byte
		b.ReportAllocs()
		for b.Loop() {
			sinkInt = frames.PutHeader(buf[:], h)
		}
	})
	b.Run("gobwas-WriteHeader", func(b *testing.B) {
		w := &appendWriter{b: make([]byte, 0, 64)}
		b.ReportAllocs()
		for b.Loop() {
			w.b = w.b[:0]
			if err := ws.WriteHeader(w, gh); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gobwas-WriteHeaderBuffer", func(b *testing.B) {
		w := &appendWriter{b: make([]byte, 0, 64)}
		scratch := make([]byte, ws.MaxHeaderSize)
		b.ReportAllocs()
		for b.Loop() {
			w.b = w.b[:0]
			if err := ws.WriteHeaderBuffer(w, gh, scratch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCloseCodesColibriVsGobwas asserts which close codes each library
// accepts in a close frame it receives (colibri: ParseClose; gobwas:
// CheckCloseFrameData) and lets a caller send (colibri: AppendClose;
// gobwas: NewCloseFrameBody, which checks nothing). The rows where they
// differ are why frames.CloseCode stays: gobwas refuses the registered
// codes 1012 to 1014 that servers send when restarting or overloaded,
// accepts 5000 and above, which RFC 6455 §7.4.2 leaves undefined, and
// lets 1005, 1006 and 1015 be sent, which RFC 6455 §7.4.1 forbids.
func TestCloseCodesColibriVsGobwas(t *testing.T) {
	tests := []struct {
		code        uint16
		colibriRecv bool
		colibriSend bool
		gobwasRecv  bool
	}{
		{code: 0},
		{code: 999},
		{code: 1000, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1001, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1002, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1003, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1004},
		{code: 1005},
		{code: 1006},
		{code: 1007, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1008, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1009, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1010, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1011, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 1012, colibriRecv: true, colibriSend: true},
		{code: 1013, colibriRecv: true, colibriSend: true},
		{code: 1014, colibriRecv: true, colibriSend: true},
		{code: 1015},
		{code: 1016},
		{code: 2999},
		{code: 3000, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 3999, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 4000, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 4999, colibriRecv: true, colibriSend: true, gobwasRecv: true},
		{code: 5000, gobwasRecv: true},
		{code: 65535, gobwasRecv: true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(int(tt.code)), func(t *testing.T) {
			payload := binary.BigEndian.AppendUint16(nil, tt.code)
			payload = append(payload, "bye"...)

			_, _, err := frames.ParseClose(payload)
			if got := err == nil; got != tt.colibriRecv {
				t.Errorf("colibri ParseClose accepts: %v, want %v (%v)", got, tt.colibriRecv, err)
			}
			_, err = frames.AppendClose(nil, frames.CloseCode(tt.code), "bye")
			if got := err == nil; got != tt.colibriSend {
				t.Errorf("colibri AppendClose accepts: %v, want %v (%v)", got, tt.colibriSend, err)
			}

			code, reason := ws.ParseCloseFrameData(payload)
			err = ws.CheckCloseFrameData(code, reason)
			if got := err == nil; got != tt.gobwasRecv {
				t.Errorf("gobwas CheckCloseFrameData accepts: %v, want %v (%v)", got, tt.gobwasRecv, err)
			}
			// gobwas builds any close body it is asked for.
			if body := ws.NewCloseFrameBody(ws.StatusCode(tt.code), "bye"); !bytes.Equal(body, payload) {
				t.Errorf("gobwas NewCloseFrameBody = % x, want % x", body, payload)
			}
		})
	}

	// An empty close payload: RFC 6455 §7.1.5 says the close code is then
	// 1005; gobwas reports the zero code.
	if code, _, err := frames.ParseClose(nil); code != frames.CloseNoStatus || err != nil {
		t.Errorf("colibri ParseClose(empty) = %v, %v; want 1005, nil", code, err)
	}
	if code, _ := ws.ParseCloseFrameData(nil); code != 0 {
		t.Errorf("gobwas ParseCloseFrameData(empty) = %d, want 0", code)
	}
}

// byteLoopMask is RFC 6455 §5.3 written as a plain loop, the simple
// alternative to gobwas's ws.Cipher.
func byteLoopMask(p []byte, key [4]byte, offset int) int {
	for i := range p {
		p[i] ^= key[(offset+i)&3]
	}
	return (offset + len(p)) & 3
}

// wordLoopMask masks eight bytes at a time in portable Go: the key
// repeated in a uint64, XORed into little-endian loads.
func wordLoopMask(p []byte, key [4]byte, offset int) int {
	offset &= 3
	var k [8]byte
	for i := range k {
		k[i] = key[(offset+i)&3]
	}
	k8 := binary.LittleEndian.Uint64(k[:])
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k8)
	}
	for ; i < len(p); i++ {
		p[i] ^= k[i&7]
	}
	return (offset + len(p)) & 3
}

func TestMaskAlternativesAgree(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 125, 1000, 4099} {
		for offset := range 4 {
			want := pattern(n)
			next := frames.Mask(want, key, offset)
			for name, mask := range map[string]func([]byte, [4]byte, int) int{"byte loop": byteLoopMask, "word loop": wordLoopMask} {
				got := pattern(n)
				if m := mask(got, key, offset); !bytes.Equal(got, want) || m != next {
					t.Errorf("%s: len %d offset %d differs from frames.Mask", name, n, offset)
				}
			}
		}
	}
}

// BenchmarkMaskColibriVsByteLoop unmasks whole payloads (key offset 0, as
// for every frame read at once) of typical sizes with frames.Mask
// (gobwas's ws.Cipher, SIMD on amd64 and arm64), a plain byte loop, and an
// eight-byte word loop in portable Go. Under 16 bytes ws.Cipher runs a
// byte loop itself, behind a call and a check.
func BenchmarkMaskColibriVsByteLoop(b *testing.B) {
	impls := []struct {
		name string
		fn   func([]byte, [4]byte, int) int
	}{
		{name: "colibri", fn: frames.Mask},
		{name: "byteloop", fn: byteLoopMask},
		{name: "wordloop", fn: wordLoopMask},
	}
	for _, n := range []int{8, 16, 64, 125, 1 << 10, 16 << 10} {
		p := pattern(n)
		for _, impl := range impls {
			b.Run(strconv.Itoa(n)+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					sinkInt = impl.fn(p, key, 0)
				}
			})
		}
	}
}

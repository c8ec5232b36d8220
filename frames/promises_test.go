package frames_test

// Promises of the frames package's documentation checked exhaustively or
// at random rather than case by case: header round trips and sizes,
// Check's rules in their documented order, close payload round trips, and
// the form of every Violation's reason.

import (
	"errors"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// TestPromiseHeaderRoundTrip: PutHeader writes the shortest encoding and
// the key only when masked, HeaderSize tells the size from b1 alone, and
// ParseHeader reads the header back, ignoring what follows and refusing
// a buffer one byte short with ErrShortHeader (not a Violation) and the
// zero Header.
func TestPromiseHeaderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lengths := []int64{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 1<<63 - 1}
	for i := range 5000 {
		h := frames.Header{
			Op:     frames.Opcode(r.IntN(256)),
			Fin:    r.IntN(2) == 0,
			Rsv:    byte(r.IntN(256)),
			Masked: r.IntN(2) == 0,
			Length: lengths[i%len(lengths)],
		}
		if i%3 == 0 {
			h.Length = r.Int64()
		}
		if h.Masked {
			h.Mask = [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		}
		b := make([]byte, frames.MaxHeaderSize+3)
		for k := range b {
			b[k] = byte(r.Uint32())
		}
		n := frames.PutHeader(b, h)
		want := 2
		switch {
		case h.Length > 0xFFFF:
			want += 8
		case h.Length > 125:
			want += 2
		}
		if h.Masked {
			want += 4
		}
		if n != want || frames.HeaderSize(byte(r.Uint32()), b[1]) != n {
			t.Fatalf("%+v: PutHeader wrote %d bytes, HeaderSize says %d, want %d", h, n, frames.HeaderSize(0, b[1]), want)
		}
		got, err := frames.ParseHeader(b)
		exp := h
		exp.Op &= 0x0F
		exp.Rsv &= frames.Rsv1 | frames.Rsv2 | frames.Rsv3
		if err != nil || got != exp {
			t.Fatalf("ParseHeader(PutHeader(%+v)) = %+v, %v", h, got, err)
		}
		got, err = frames.ParseHeader(b[:n-1])
		if err != frames.ErrShortHeader || got != (frames.Header{}) {
			t.Fatalf("one byte short: %+v, %v", got, err)
		}
		if _, ok := frames.CodeOf(err); ok {
			t.Fatal("ErrShortHeader is a Violation")
		}
	}
}

// TestPromiseCheckRules: Check against the rules of its doc comment,
// taken in their order, for every opcode, RSV, FIN, masking and side.
func TestPromiseCheckRules(t *testing.T) {
	for op := frames.Opcode(0); op < 0x12; op++ {
		for rsv := byte(0); rsv < 8; rsv++ {
			for _, allowed := range []byte{0, frames.Rsv1} {
				for _, length := range []int64{0, 125, 126} {
					for bits := range 8 {
						fin, masked, fromClient := bits&1 != 0, bits&2 != 0, bits&4 != 0
						h := frames.Header{Op: op, Fin: fin, Rsv: rsv, Masked: masked, Length: length}
						var want error
						control := op >= 0x8 && op <= 0xF
						switch {
						case !(op <= 2 || (op >= 8 && op <= 10)):
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
						if err := h.Check(fromClient, allowed); err != want {
							t.Fatalf("%+v from client %v allowing %b: %v, want %v", h, fromClient, allowed, err, want)
						}
					}
				}
			}
		}
	}
}

// TestPromiseCloseRoundTrip: for every code, AppendClose succeeds exactly
// for Valid codes (and 1005 without a reason, as an empty payload), leaves
// dst as it was on an error that is not a Violation, and ParseClose reads
// back what it wrote; ParseClose returns the code along with its error.
func TestPromiseCloseRoundTrip(t *testing.T) {
	dst := []byte("prefix")
	reasons := []string{"", "bye", "é€𝄞", string(make([]byte, frames.MaxCloseReason)), string(make([]byte, frames.MaxCloseReason+1)), "bad \xff"}
	for code := frames.CloseCode(0); code < 5100; code++ {
		for _, reason := range reasons {
			out, err := frames.AppendClose(dst, code, reason)
			switch {
			case code == frames.CloseNoStatus && reason == "":
				if err != nil || string(out) != "prefix" {
					t.Fatalf("1005 without a reason: %q %v", out, err)
				}
				continue
			case !code.Valid():
				if !errors.Is(err, frames.ErrInvalidCloseCode) {
					t.Fatalf("code %v: %v", code, err)
				}
			case len(reason) > frames.MaxCloseReason:
				if !errors.Is(err, frames.ErrCloseReasonTooLong) {
					t.Fatalf("code %v, %d-byte reason: %v", code, len(reason), err)
				}
			case !utf8.ValidString(reason):
				if !errors.Is(err, frames.ErrInvalidCloseReason) {
					t.Fatalf("code %v, bad reason: %v", code, err)
				}
			default:
				if err != nil {
					t.Fatalf("code %v %q: %v", code, reason, err)
				}
				c, rs, perr := frames.ParseClose(out[len(dst):])
				if perr != nil || c != code || rs != reason {
					t.Fatalf("ParseClose(AppendClose(%v, %q)) = %v %q %v", code, reason, c, rs, perr)
				}
				f, ferr := frames.Close(code, reason)
				if ferr != nil || f.Op != frames.OpClose || !f.Fin || string(f.Payload) != string(out[len(dst):]) {
					t.Fatalf("Close(%v, %q) = %+v, %v", code, reason, f, ferr)
				}
				continue
			}
			if string(out) != "prefix" || len(out) != len(dst) {
				t.Fatalf("code %v: dst changed to %q on error", code, out)
			}
			if _, ok := frames.CodeOf(err); ok {
				t.Fatalf("code %v: the caller's error %v is a Violation", code, err)
			}
			// The same bytes received: ParseClose names the code with the error.
			raw := append([]byte{byte(code >> 8), byte(code)}, reason...)
			c, _, perr := frames.ParseClose(raw)
			if perr == nil || c != code {
				t.Fatalf("ParseClose(% x) = %v, %v; want the code and an error", raw[:2], c, perr)
			}
			if _, ok := frames.CodeOf(perr); !ok {
				t.Fatalf("ParseClose error %v is not a Violation", perr)
			}
		}
	}
}

// TestPromiseViolationReasons: every sentinel Violation, of frames and of
// messages, has a short printable ASCII reason that can go on the wire,
// and Error returns it.
func TestPromiseViolationReasons(t *testing.T) {
	all := []*frames.Violation{
		frames.ErrLengthMSB, frames.ErrReservedOpcode, frames.ErrReservedBits, frames.ErrFragmentedControl,
		frames.ErrControlTooLong, frames.ErrUnmasked, frames.ErrMasked, frames.ErrClosePayload,
		frames.ErrInvalidCloseCode, frames.ErrCloseReasonTooLong, frames.ErrInvalidCloseReason,
		messages.ErrTooLarge, messages.ErrInvalidUTF8, messages.ErrUnexpectedContinuation, messages.ErrExpectedContinuation,
	}
	for _, v := range all {
		if v.Error() != v.Reason || len(v.Reason) == 0 || len(v.Reason) > frames.MaxCloseReason {
			t.Errorf("%q: bad length or Error", v.Reason)
		}
		for i := 0; i < len(v.Reason); i++ {
			if c := v.Reason[i]; c >= 0x80 || c < 0x20 {
				t.Errorf("%q is not printable ASCII", v.Reason)
			}
		}
		if !v.Code.Valid() {
			t.Errorf("%q carries code %v, which may not be sent", v.Reason, v.Code)
		}
	}
}

package messages_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/messages"
)

// utf8Cases are valid and invalid UTF-8 in the spirit of the classic decoder
// stress tests. bad is the index of the byte with which the input stops being
// the start of any valid UTF-8 text, or -1 if every prefix could still be;
// complete says whether the whole input is valid.
var utf8Cases = []struct {
	name     string
	in       string
	bad      int
	complete bool
}{
	// Valid text, boundaries of each sequence length included.
	{name: "empty", in: "", bad: -1, complete: true},
	{name: "ASCII", in: "hello, world", bad: -1, complete: true},
	{name: "NUL", in: "\x00", bad: -1, complete: true},
	{name: "DEL", in: "\x7f", bad: -1, complete: true},
	{name: "U+0080 first 2-byte", in: "\xc2\x80", bad: -1, complete: true},
	{name: "U+07FF last 2-byte", in: "\xdf\xbf", bad: -1, complete: true},
	{name: "U+0800 first 3-byte", in: "\xe0\xa0\x80", bad: -1, complete: true},
	{name: "U+D7FF before the surrogates", in: "\xed\x9f\xbf", bad: -1, complete: true},
	{name: "U+E000 after the surrogates", in: "\xee\x80\x80", bad: -1, complete: true},
	{name: "U+FFFD", in: "\xef\xbf\xbd", bad: -1, complete: true},
	{name: "U+FFFF last 3-byte", in: "\xef\xbf\xbf", bad: -1, complete: true},
	{name: "U+10000 first 4-byte", in: "\xf0\x90\x80\x80", bad: -1, complete: true},
	{name: "U+10FFFF last code point", in: "\xf4\x8f\xbf\xbf", bad: -1, complete: true},
	{name: "Greek word", in: "κόσμε", bad: -1, complete: true},
	{name: "mixed", in: "price: 5€, mood: 😀, naïve café — ok", bad: -1, complete: true},
	{name: "long ASCII then 4-byte", in: strings.Repeat("a", 37) + "😀", bad: -1, complete: true},

	// Past U+10FFFF.
	{name: "U+110000", in: "\xf4\x90\x80\x80", bad: 1},
	{name: "F4 BF", in: "\xf4\xbf\xbf\xbf", bad: 1},
	{name: "F5 lead", in: "\xf5\x80\x80\x80", bad: 0},
	{name: "F7 lead, would be U+1FFFFF", in: "\xf7\xbf\xbf\xbf", bad: 0},
	{name: "5-byte form", in: "\xf8\x88\x80\x80\x80", bad: 0},
	{name: "6-byte form", in: "\xfc\x84\x80\x80\x80\x80", bad: 0},
	{name: "FE", in: "\xfe", bad: 0},
	{name: "FF", in: "a\xff", bad: 1},

	// Continuation bytes where a lead is due.
	{name: "lone 80", in: "\x80", bad: 0},
	{name: "lone BF", in: "\xbf", bad: 0},
	{name: "stray continuation between ASCII", in: "a\x80b", bad: 1},
	{name: "continuation after a whole 2-byte", in: "\xc2\x80\x80", bad: 2},
	{name: "continuation after a whole 4-byte", in: "\xf0\x9f\x98\x80\x80", bad: 4},
	{name: "continuation after a euro sign", in: "€\xbf", bad: 3},

	// Overlong forms.
	{name: "overlong NUL", in: "\xc0\x80", bad: 0},
	{name: "overlong slash 2-byte", in: "\xc0\xaf", bad: 0},
	{name: "overlong C1", in: "\xc1\xbf", bad: 0},
	{name: "overlong slash 3-byte", in: "\xe0\x80\xaf", bad: 1},
	{name: "overlong U+07FF 3-byte", in: "\xe0\x9f\xbf", bad: 1},
	{name: "overlong slash 4-byte", in: "\xf0\x80\x80\xaf", bad: 1},
	{name: "overlong U+FFFF 4-byte", in: "\xf0\x8f\xbf\xbf", bad: 1},

	// UTF-16 surrogates, single and paired.
	{name: "U+D800", in: "\xed\xa0\x80", bad: 1},
	{name: "U+DB7F", in: "\xed\xad\xbf", bad: 1},
	{name: "U+DC00", in: "\xed\xb0\x80", bad: 1},
	{name: "U+DFFF", in: "\xed\xbf\xbf", bad: 1},
	{name: "surrogate pair", in: "\xed\xa0\x80\xed\xb0\x80", bad: 1},
	{name: "surrogate after ASCII run", in: strings.Repeat("a", 20) + "\xed\xa0\x80", bad: 21},

	// Truncated at the end: still a valid start, but not complete.
	{name: "2-byte missing 1", in: "\xc2", bad: -1},
	{name: "3-byte missing 1", in: "\xe0\xa0", bad: -1},
	{name: "3-byte missing 2", in: "ab\xe2", bad: -1},
	{name: "4-byte missing 1", in: "\xf4\x8f\xbf", bad: -1},
	{name: "4-byte missing 3", in: "\xf0", bad: -1},
	{name: "euro then truncated emoji", in: "€\xf0\x9f\x98", bad: -1},

	// Truncated by what follows.
	{name: "2-byte cut by ASCII", in: "\xc2A", bad: 1},
	{name: "3-byte cut by ASCII", in: "\xe0\xa0A", bad: 2},
	{name: "4-byte cut by ASCII", in: "\xf0\x90\x80A", bad: 3},
	{name: "3-byte cut by a lead", in: "\xe2\xe2\x82\xac", bad: 1},
	{name: "2-byte cut by a lead", in: "\xc2\xc2\x80", bad: 1},
	{name: "4-byte cut by a 4-byte", in: "\xf0\x9f\xf0\x9f\x98\x80", bad: 2},
	{name: "invalid after long ASCII", in: strings.Repeat("x", 30) + "\xff" + strings.Repeat("y", 10), bad: 30},
}

func TestUTF8Whole(t *testing.T) {
	for _, tt := range utf8Cases {
		var v messages.UTF8
		if got, want := v.Write([]byte(tt.in)), tt.bad < 0; got != want {
			t.Errorf("%s: Write = %v, want %v", tt.name, got, want)
		}
		if got := v.Complete(); got != tt.complete {
			t.Errorf("%s: Complete = %v, want %v", tt.name, got, tt.complete)
		}
		// The table must agree with the standard library.
		if utf8.ValidString(tt.in) != tt.complete {
			t.Errorf("%s: table says complete=%v, utf8.ValidString disagrees", tt.name, tt.complete)
		}
	}
}

// firstFailure feeds chunks to a fresh UTF8 and returns the index of the
// first chunk Write rejects, or -1. It also checks that a rejection sticks.
func firstFailure(t *testing.T, chunks ...[]byte) (int, *messages.UTF8) {
	t.Helper()
	var v messages.UTF8
	failed := -1
	for i, c := range chunks {
		ok := v.Write(c)
		if failed >= 0 && ok {
			t.Fatalf("Write accepted chunk %d after rejecting chunk %d", i, failed)
		}
		if !ok && failed < 0 {
			failed = i
		}
	}
	return failed, &v
}

func TestUTF8Split(t *testing.T) {
	for _, tt := range utf8Cases {
		in := []byte(tt.in)
		n := len(in)
		// Two chunks, split at every boundary, both ends included.
		for k := 0; k <= n; k++ {
			want := -1
			if tt.bad >= 0 {
				want = 1
				if tt.bad < k {
					want = 0
				}
			}
			got, v := firstFailure(t, in[:k], in[k:])
			if got != want {
				t.Errorf("%s split at %d: first failing chunk %d, want %d", tt.name, k, got, want)
			}
			if v.Complete() != tt.complete {
				t.Errorf("%s split at %d: Complete = %v, want %v", tt.name, k, v.Complete(), tt.complete)
			}
		}
		// Three chunks, split at every pair of boundaries.
		for i := 0; i <= n; i++ {
			for j := i; j <= n; j++ {
				want := -1
				switch {
				case tt.bad < 0:
				case tt.bad < i:
					want = 0
				case tt.bad < j:
					want = 1
				default:
					want = 2
				}
				if got, _ := firstFailure(t, in[:i], in[i:j], in[j:]); got != want {
					t.Errorf("%s split at %d and %d: first failing chunk %d, want %d", tt.name, i, j, got, want)
				}
			}
		}
	}
}

func TestUTF8ByteByByte(t *testing.T) {
	for _, tt := range utf8Cases {
		var v messages.UTF8
		for i := range len(tt.in) {
			ok := v.Write([]byte{tt.in[i]})
			if want := tt.bad < 0 || i < tt.bad; ok != want {
				t.Errorf("%s: Write of byte %d = %v, want %v", tt.name, i, ok, want)
				break
			}
			// Between bytes, Complete is true exactly at the ends of
			// valid code points.
			if got, want := v.Complete(), utf8.ValidString(tt.in[:i+1]); got != want {
				t.Errorf("%s: Complete after byte %d = %v, want %v", tt.name, i, got, want)
			}
		}
	}
}

func TestUTF8Reset(t *testing.T) {
	var v messages.UTF8
	if v.Write([]byte("\xff")) || v.Write([]byte("ok")) || v.Complete() {
		t.Fatal("an invalid byte did not stick")
	}
	v.Reset()
	if !v.Write([]byte("ok")) || !v.Complete() {
		t.Fatal("Reset did not clear an invalid state")
	}
	if !v.Write([]byte("\xe2\x82")) || v.Complete() {
		t.Fatal("a truncated code point was taken as complete")
	}
	v.Reset()
	if !v.Complete() || !v.Write([]byte("\x41")) {
		t.Fatal("Reset did not clear a pending code point")
	}
}

func TestUTF8EveryRune(t *testing.T) {
	// Every scalar value, and every surrogate, encoded by hand, fed in
	// two pieces split after the first byte.
	var buf [4]byte
	for r := rune(0); r <= 0x10FFFF; r++ {
		n := encodeRaw(buf[:], r)
		valid := r < 0xD800 || r > 0xDFFF
		var v messages.UTF8
		ok := v.Write(buf[:1]) && v.Write(buf[1:n])
		if ok != valid || v.Complete() != valid {
			t.Fatalf("U+%04X (% x): Write %v, Complete %v; want %v", r, buf[:n], ok, v.Complete(), valid)
		}
	}
}

// encodeRaw writes r in the UTF-8 bit layout even for surrogates, which
// utf8.EncodeRune would replace with U+FFFD.
func encodeRaw(b []byte, r rune) int {
	switch {
	case r < 0x80:
		b[0] = byte(r)
		return 1
	case r < 0x800:
		b[0], b[1] = 0xC0|byte(r>>6), 0x80|byte(r)&0x3F
		return 2
	case r < 0x10000:
		b[0], b[1], b[2] = 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F
		return 3
	}
	b[0], b[1], b[2], b[3] = 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F
	return 4
}

func ExampleUTF8() {
	var v messages.UTF8
	// The euro sign E2 82 AC arrives split over two pieces.
	fmt.Println(v.Write([]byte("5 \xe2\x82")), v.Complete())
	fmt.Println(v.Write([]byte("\xac")), v.Complete())
	// A surrogate is refused at its second byte, not at the end.
	fmt.Println(v.Write([]byte("\xed\xa0")))
	// Output:
	// true false
	// true true
	// false
}

func TestUTF8CasesAgreeWithReference(t *testing.T) {
	// Guard the table: each bad index must be where the reference says the
	// input stops being a valid start.
	for _, tt := range utf8Cases {
		if want := firstBad([]byte(tt.in)); want != tt.bad {
			t.Errorf("%s: table says bad=%d, reference says %d", tt.name, tt.bad, want)
		}
	}
}

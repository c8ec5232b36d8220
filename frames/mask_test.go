package frames_test

import (
	"bytes"
	"testing"

	"github.com/colibri-ws/colibri/frames"
)

// naiveMask is RFC 6455 §5.3 written out: octet i of the data is XORed with
// octet (i mod 4) of the key.
func naiveMask(p []byte, key [4]byte, offset int) {
	for i := range p {
		p[i] ^= key[(offset+i)%4]
	}
}

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

func TestMask(t *testing.T) {
	// Lengths around the 16- and 32-byte blocks of the vector code.
	for n := range 100 {
		for offset := range 4 {
			got := pattern(n)
			want := pattern(n)
			next := frames.Mask(got, key, offset)
			naiveMask(want, key, offset)
			if !bytes.Equal(got, want) {
				t.Fatalf("Mask(len %d, offset %d) = % x, want % x", n, offset, got, want)
			}
			if wantNext := (offset + n) % 4; next != wantNext {
				t.Errorf("Mask(len %d, offset %d) returned %d, want %d", n, offset, next, wantNext)
			}
			// Masking twice gives the input back.
			frames.Mask(got, key, offset)
			if !bytes.Equal(got, pattern(n)) {
				t.Fatalf("Mask twice (len %d, offset %d) did not restore the input", n, offset)
			}
		}
	}
}

func TestMaskInPieces(t *testing.T) {
	// A payload unmasked as it arrives, in pieces, must come out the same
	// as when unmasked whole.
	const n = 300
	want := pattern(n)
	frames.Mask(want, key, 0)
	for _, step := range []int{1, 2, 3, 5, 7, 16, 17, 31, 64, 100, n} {
		got := pattern(n)
		offset := 0
		for i := 0; i < n; i += step {
			offset = frames.Mask(got[i:min(i+step, n)], key, offset)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pieces of %d bytes: result differs from masking whole", step)
		}
	}
}

func TestMaskOffsetOutOfRange(t *testing.T) {
	tests := []struct {
		offset int
		same   int // the offset in 0..3 it stands for
	}{
		{offset: 4, same: 0},
		{offset: 7, same: 3},
		{offset: -1, same: 3},
		{offset: -4, same: 0},
		{offset: -6, same: 2},
	}
	for _, tt := range tests {
		for _, n := range []int{3, 40} {
			got, want := pattern(n), pattern(n)
			next := frames.Mask(got, key, tt.offset)
			wantNext := frames.Mask(want, key, tt.same)
			if !bytes.Equal(got, want) || next != wantNext {
				t.Errorf("Mask(len %d, offset %d) differs from offset %d", n, tt.offset, tt.same)
			}
		}
	}
}

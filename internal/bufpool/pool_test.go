package bufpool

import (
	"testing"

	"github.com/colibri-ws/colibri/internal/race"
)

func TestClasses(t *testing.T) {
	tests := []struct {
		n       int
		wantCap int
	}{
		{0, 256},
		{1, 256},
		{256, 256},
		{257, 512},
		{4096, 4096},
		{4097, 8192},
		{16 << 20, 16 << 20},
		{16<<20 + 1, 16<<20 + 1},
	}
	for _, tt := range tests {
		b := Get(tt.n)
		if len(*b) != tt.n || cap(*b) != tt.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d",
				tt.n, len(*b), cap(*b), tt.n, tt.wantCap)
		}
		Put(b)
	}
}

func TestGrowKeepsContents(t *testing.T) {
	b := Get(3)
	copy(*b, "abc")
	b = Grow(b, 1000)
	if string(*b) != "abc" || cap(*b) < 1000 {
		t.Fatalf("Grow: got %q cap %d", *b, cap(*b))
	}
	Put(b)
	if g := Grow(nil, 10); len(*g) != 0 || cap(*g) < 10 {
		t.Fatalf("Grow(nil): len %d cap %d", len(*g), cap(*g))
	}
}

func TestPutDropsForeignSizes(t *testing.T) {
	odd := make([]byte, 0, 300)
	Put(&odd) // must not panic nor be handed out as a 512-byte class
	b := Get(300)
	if cap(*b) != 512 {
		t.Fatalf("cap %d, want 512", cap(*b))
	}
	Put(nil)
}

func TestGetPutDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items under -race")
	}
	Put(Get(1024))
	if n := testing.AllocsPerRun(100, func() { Put(Get(1024)) }); n != 0 {
		t.Fatalf("allocs per Get/Put = %v, want 0", n)
	}
}

// TestGrowDoublesPastTheLargestClass: a buffer grown a piece at a time past
// 16 MiB moves a few times, not once per piece.
func TestGrowDoublesPastTheLargestClass(t *testing.T) {
	b := Get(0)
	moves := 0
	piece := make([]byte, 256<<10)
	for len(*b) < 64<<20 {
		nb := Grow(b, len(*b)+len(piece))
		if nb != b {
			moves++
		}
		b = nb
		*b = append(*b, piece...)
	}
	// Through the classes up to 16 MiB (one move per class), then 32 and
	// 64 MiB.
	if moves > 20 {
		t.Fatalf("%d moves to grow to 64 MiB in 256 KiB pieces", moves)
	}
}

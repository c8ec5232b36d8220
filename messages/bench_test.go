package messages_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// benchText returns n bytes of ASCII or of mixed text: mostly Latin with
// accents, some Greek, CJK and emoji, cut at a code point boundary and
// padded with ASCII.
func benchText(n int, mixed bool) []byte {
	unit := "The quick brown fox jumps over the lazy dog. "
	if mixed {
		unit = "Größe café naïve — κόσμε, 世界, 😀! "
	}
	s := strings.Repeat(unit, n/len(unit)+1)[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return []byte(s + strings.Repeat(".", n-len(s)))
}

func BenchmarkUTF8(b *testing.B) {
	for _, kind := range []struct {
		name  string
		mixed bool
	}{{"ascii", false}, {"mixed", true}} {
		for _, size := range []struct {
			name string
			n    int
		}{{"32B", 32}, {"16KiB", 16 << 10}} {
			p := benchText(size.n, kind.mixed)
			b.Run(kind.name+"/"+size.name, func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				var v messages.UTF8
				for b.Loop() {
					v.Reset()
					if !v.Write(p) || !v.Complete() {
						b.Fatal("invalid")
					}
				}
			})
			// The same bytes arriving in 1 KiB pieces that split code
			// points, as a reader with a small buffer would pass them.
			if size.n > 1024 {
				b.Run(kind.name+"/"+size.name+"/1KiB-pieces", func(b *testing.B) {
					b.SetBytes(int64(len(p)))
					b.ReportAllocs()
					var v messages.UTF8
					for b.Loop() {
						v.Reset()
						for q := p; len(q) > 0; {
							n := min(len(q), 1021)
							v.Write(q[:n])
							q = q[n:]
						}
						if !v.Complete() {
							b.Fatal("invalid")
						}
					}
				})
			}
		}
	}
}

func BenchmarkAssembler(b *testing.B) {
	p := benchText(16<<10, true)
	b.Run("text/16KiB/4-fragments", func(b *testing.B) {
		a := messages.Assembler{Limit: 1 << 20}
		b.SetBytes(int64(len(p)))
		b.ReportAllocs()
		q := len(p) / 4
		for b.Loop() {
			for i := range 4 {
				op := frames.OpContinuation
				if i == 0 {
					op = frames.OpText
				}
				piece := p[i*q : (i+1)*q]
				if i == 3 {
					piece = p[i*q:]
				}
				_ = a.Begin(op, i == 3, int64(len(piece)))
				_ = a.Chunk(piece)
				if _, _, err := a.End(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

package messages_test

import (
	"sort"
	"unicode/utf8"
)

// validPrefix reports whether b can be the start of valid UTF-8 text: it is
// valid, or it ends in an unfinished sequence that some continuation bytes
// would complete. It is a reference for the tests, built on utf8.Valid and
// independent of the UTF8 type.
func validPrefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	// An unfinished sequence starts at the last lead byte, in the last
	// three bytes, and everything before it must be valid.
	for k := 1; k <= 3 && k <= len(b); k++ {
		need := 0
		switch c := b[len(b)-k]; {
		case c >= 0xC2 && c <= 0xDF:
			need = 2
		case c >= 0xE0 && c <= 0xEF:
			need = 3
		case c >= 0xF0 && c <= 0xF4:
			need = 4
		}
		if need <= k {
			continue
		}
		if !utf8.Valid(b[:len(b)-k]) {
			return false
		}
		// Try to finish the sequence: 80, 90 and A0 between them fall in
		// the allowed range of every second byte (RFC 3629 §4), and 80
		// suits any later byte.
		seconds := []byte{0x80, 0x90, 0xA0}
		if k > 1 {
			seconds = seconds[:1] // the second byte is already there
		}
		for _, second := range seconds {
			var t [4]byte
			n := copy(t[:], b[len(b)-k:])
			t[n] = second
			for i := n + 1; i < need; i++ {
				t[i] = 0x80
			}
			if utf8.Valid(t[:need]) {
				return true
			}
		}
		return false
	}
	return false
}

// firstBad returns the index of the byte with which b stops being the start
// of valid UTF-8 text, or -1 if it never does. Once a prefix is not valid no
// longer one is, so a binary search finds the index.
func firstBad(b []byte) int {
	i := sort.Search(len(b), func(i int) bool { return !validPrefix(b[:i+1]) })
	if i == len(b) {
		return -1
	}
	return i
}

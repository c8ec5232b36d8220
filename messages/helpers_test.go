package messages_test

import "unicode/utf8"

// validPrefix reports whether b can be the start of valid UTF-8 text: it is
// valid, or it ends in an unfinished sequence that some continuation bytes
// would complete. It is a reference for the tests, built on utf8.Valid and
// independent of the UTF8 type.
func validPrefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	// An unfinished sequence starts in the last three bytes. Try to finish
	// it: 80, 90 and A0 between them fall in the allowed range of every
	// second byte (RFC 3629 §4), and 80 suits any later byte.
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
		seconds := []byte{0x80, 0x90, 0xA0}
		if k > 1 {
			seconds = seconds[:1] // the second byte is already there
		}
		for _, second := range seconds {
			t := append([]byte(nil), b...)
			t = append(t, second)
			for len(t) < len(b)-k+need {
				t = append(t, 0x80)
			}
			if utf8.Valid(t) {
				return true
			}
		}
	}
	return false
}

package messages

import "unicode/utf8"

// UTF8 validates UTF-8 text written to it in pieces that may split a code
// point anywhere (RFC 3629, as RFC 6455 §5.6 requires of text messages).
//
// Write reports failure as soon as the bytes written so far cannot be the
// start of any valid UTF-8 text: on the piece holding a stray continuation
// byte, an overlong form (C0, C1, E0 80, F0 80), a surrogate (ED A0 to
// ED BF), a code point past U+10FFFF (F4 90, F5 to FF), or a lead byte cut
// short by the next character. Only a code point truncated at the very end
// waits for [UTF8.Complete] to be found. This lets a connection fail a bad
// text message on the frame where it goes wrong, as RFC 6455 §8.1 asks.
//
// The zero value is ready to use. A UTF8 is not safe for concurrent use.
type UTF8 struct {
	need   uint8 // continuation bytes still due for the current code point
	lo, hi byte  // the range allowed for the next continuation byte
	bad    bool  // an invalid byte has been seen
}

// Write validates p as the continuation of the bytes written before and
// reports whether all of them may still be valid UTF-8. Once it returns false
// it keeps returning false until Reset. It does not allocate.
func (v *UTF8) Write(p []byte) bool {
	if v.bad {
		return false
	}
	// Finish the code point left open by the previous piece.
	for v.need > 0 {
		if len(p) == 0 {
			return true
		}
		if !v.next(p[0]) {
			return false
		}
		p = p[1:]
	}
	// Split off an incomplete code point at the end: it can only start in
	// the last three bytes, since no sequence is longer than four. What
	// precedes it is whole code points when valid, which utf8.Valid checks
	// fast, skipping ASCII a word at a time.
	body, tail := p, p[:0]
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		c := p[i]
		if c&0xC0 == 0x80 {
			continue // a continuation byte: keep looking for its lead
		}
		if n := leads[c].size; i+int(n) > len(p) {
			body, tail = p[:i], p[i:]
		}
		break
	}
	if !utf8.Valid(body) {
		v.bad = true
		return false
	}
	if len(tail) == 0 {
		return true
	}
	// tail[0] is a lead byte of a 2- to 4-byte sequence and the rest are
	// continuation bytes, fewer than it needs.
	l := leads[tail[0]]
	v.need, v.lo, v.hi = l.size-1, l.lo, l.hi
	for _, c := range tail[1:] {
		if !v.next(c) {
			return false
		}
	}
	return true
}

// next checks c as the next continuation byte of an open code point.
func (v *UTF8) next(c byte) bool {
	if c < v.lo || c > v.hi {
		v.bad = true
		return false
	}
	v.need--
	v.lo, v.hi = 0x80, 0xBF
	return true
}

// Complete reports whether the bytes written since the last Reset are valid
// UTF-8 with no code point left unfinished.
func (v *UTF8) Complete() bool {
	return !v.bad && v.need == 0
}

// Reset forgets everything written, making v ready for a new text.
func (v *UTF8) Reset() {
	*v = UTF8{}
}

// lead describes a byte that starts a UTF-8 sequence: the sequence's length
// in bytes and the range its second byte must be in. The narrower ranges of
// E0, ED, F0 and F4 exclude overlong forms, surrogates and code points past
// U+10FFFF (RFC 3629 §4).
type lead struct {
	size   uint8 // 1 for ASCII and for bytes that cannot start a sequence
	lo, hi byte
}

var leads = func() (t [256]lead) {
	for c := range t {
		switch {
		case c >= 0xC2 && c <= 0xDF:
			t[c] = lead{2, 0x80, 0xBF}
		case c == 0xE0:
			t[c] = lead{3, 0xA0, 0xBF}
		case c == 0xED:
			t[c] = lead{3, 0x80, 0x9F}
		case c >= 0xE1 && c <= 0xEF:
			t[c] = lead{3, 0x80, 0xBF}
		case c == 0xF0:
			t[c] = lead{4, 0x90, 0xBF}
		case c >= 0xF1 && c <= 0xF3:
			t[c] = lead{4, 0x80, 0xBF}
		case c == 0xF4:
			t[c] = lead{4, 0x80, 0x8F}
		default:
			// ASCII is whole by itself; any other byte is invalid as a
			// lead, which utf8.Valid reports since it is never split off
			// as a tail.
			t[c] = lead{size: 1}
		}
	}
	return t
}()

package frames

import "github.com/gobwas/ws"

// Mask XORs p in place with key, starting at position offset of the key, and
// returns the key position for the byte after p (RFC 6455 §5.3). The same
// call masks and unmasks.
//
// To unmask a payload that arrives in pieces, start at offset 0 and pass
// each returned offset to the next call. Offsets outside 0 to 3 are taken
// modulo 4.
func Mask(p []byte, key [4]byte, offset int) int {
	offset &= 3
	ws.Cipher(p, key, offset)
	return (offset + len(p)) & 3
}

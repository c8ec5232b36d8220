// Package token checks the tokens of HTTP header syntax, which the
// handshake, the client and extension parameters share.
package token

import "github.com/gobwas/httphead"

// Valid reports whether s is a non-empty token (RFC 9110 §5.6.2).
func Valid(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httphead.OctetTypes[s[i]].IsToken() {
			return false
		}
	}
	return true
}

package token

import "testing"

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"":                   false,
		"permessage-deflate": true,
		"x!#$%&'*+-.^_`|~9":  true,
		"a b":                false,
		"a,b":                false,
		`"q"`:                false,
		"a=b":                false,
		"é":                  false,
		"\x7f":               false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}

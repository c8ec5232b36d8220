package handshake_test

// ParseExtensions against a hand-written oracle of the RFC 6455 §9.1 /
// RFC 9110 §5.6 grammar of Sec-WebSocket-Extensions.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// rlTchar reports whether c is a tchar (RFC 9110 §5.6.2).
func rlTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// rlOracle parses the combined field value of the lines (RFC 9110 §5.3:
// lines are joined with ", "), with quoted-pairs resolved; ok false when
// the value is outside the grammar. An empty list (only empty elements)
// gives nil, true: the combined value of several lines may hold empty
// elements, which a recipient must ignore (RFC 9110 §5.6.1.2).
func rlOracle(lines ...string) (exts []wsconn.Extension, ok bool) {
	s, i := strings.Join(lines, ", "), 0
	ows := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	token := func() (string, bool) {
		j := i
		for i < len(s) && rlTchar(s[i]) {
			i++
		}
		return s[j:i], i > j
	}
	quoted := func() (string, bool) {
		if i >= len(s) || s[i] != '"' {
			return "", false
		}
		i++
		var b strings.Builder
		for i < len(s) {
			c := s[i]
			i++
			switch {
			case c == '"':
				return b.String(), true
			case c == '\\':
				if i == len(s) || !(s[i] == '\t' || s[i] >= ' ' && s[i] != 0x7f) {
					return "", false
				}
				b.WriteByte(s[i])
				i++
			case c == '\t' || c >= ' ' && c != 0x7f:
				b.WriteByte(c)
			default:
				return "", false
			}
		}
		return "", false
	}
	for {
		ows()
		if i == len(s) {
			return exts, true
		}
		if s[i] == ',' {
			i++
			continue
		}
		name, ok := token()
		if !ok {
			return nil, false
		}
		e := wsconn.Extension{Name: name}
		for ows(); i < len(s) && s[i] == ';'; ows() {
			i++
			ows()
			p, ok := token()
			if !ok {
				return nil, false
			}
			ows()
			v := ""
			if i < len(s) && s[i] == '=' {
				i++
				ows()
				if v, ok = token(); !ok {
					if v, ok = quoted(); !ok {
						return nil, false
					}
					// RFC 6455 §9.1: unquoted, the value is a token.
					for j := range len(v) {
						ok = ok && rlTchar(v[j])
					}
					if !ok || v == "" {
						return nil, false
					}
				}
			}
			e.Params = append(e.Params, wsconn.ExtensionParam{Name: p, Value: v})
		}
		exts = append(exts, e)
		if i < len(s) && s[i] != ',' {
			return nil, false
		}
	}
}

func rlCompare(t *testing.T, lines ...string) {
	t.Helper()
	want, wantOK := rlOracle(lines...)
	got, err := handshake.ParseExtensions(lines...)
	if (err == nil) != wantOK {
		t.Errorf("ParseExtensions(%q): err %v, grammar says valid=%v", lines, err, wantOK)
		return
	}
	if wantOK && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("ParseExtensions(%q) = %#v, want %#v", lines, got, want)
	}
}

// What the code handles as the grammar says: a regression table.
func TestCornerGrammarCorners(t *testing.T) {
	for _, v := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; client_max_window_bits; server_max_window_bits=10",
		"permessage-deflate;client_no_context_takeover;server_no_context_takeover",
		"permessage-deflate ; client_max_window_bits = 15 , x-foo",
		"  permessage-deflate  ,  x  ",
		", , permessage-deflate",
		"permessage-deflate, , x,",
		"permessage-deflate,",
		"PERMESSAGE-DEFLATE; Client_Max_Window_Bits",
		"!#$%&'*+-.^_`|~; !#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
		`permessage-deflate; server_max_window_bits="10"`,
		`x; a="a\"b"`,    // a"b: not a token once unquoted
		`x; a="a;b,c=d"`, // idem
		`x; a="(", y`,
		"x; a=\"\x80\xff\"",
		"x; a=\"tab\there\"",
		`x; a=""`,
		`x; a="b", y; c="\d"`,
		// Outside the grammar.
		"permessage-deflate;",
		"permessage-deflate; a=",
		"permessage-deflate; =1",
		"permessage-deflate a",
		"a b",
		"permessage-deflate; a=b c",
		"permessage-deflate; a=\"open",
		`permessage-deflate; a="x"y`,
		"permessage-deflate; a=1=2",
		"x;;y",
		"perm\xe9ssage",
		"x; a=\xff",
		"x; a=\"\x01\"",
		"x; a=\"\x7f\"",
		"x(y)",
		"x; a=(c)",
		"x/y",
		"x@y",
		";a",
		"=",
	} {
		rlCompare(t, v)
	}
	rlCompare(t, "permessage-deflate", "x; a=1")
	rlCompare(t, "permessage-deflate", "x y")
	rlCompare(t, "a b", "permessage-deflate")
}

// HTAB is OWS (RFC 9110 §5.6.3) like SP; wellFormed takes it, httphead
// does not: its OctetTypes table is built from 32 up, so '\t' is neither
// space nor token and its scanner fails. Such an offer gets 400.
func TestCornerGrammarTabIsWhitespace(t *testing.T) {
	for _, v := range []string{
		"permessage-deflate;\tclient_max_window_bits",
		"permessage-deflate\t; client_max_window_bits",
		"x,\tpermessage-deflate",
		"\tpermessage-deflate\t",
		"permessage-deflate; server_max_window_bits\t=\t10",
	} {
		rlCompare(t, v)
	}
}

// quoted-pair (RFC 9110 §5.6.4): "\" followed by the octet it stands for.
// httphead's lexer drops every '\' (RemoveByte, which also loses the last
// byte when the last '\' is one of the last two), and ends the string at
// the first '"' not preceded by '\', so an escaped '\' before the closing
// quote runs on.
func TestCornerGrammarQuotedPairs(t *testing.T) {
	for _, v := range []string{
		`x; a="a\\b"`, // a\b, comes back "a"
		`x; a="\x"`,   // x, comes back ""
		`permessage-deflate; server_max_window_bits="1\0"`, // 10, comes back "1"
		`x; a="a\\b\\c"`,                // a\b\c, comes back "ab"
		`x; a="a\\"`,                    // a\, refused
		`x; a="\\", permessage-deflate`, // \, refused
	} {
		rlCompare(t, v)
	}
}

// Several lines are one comma-separated list (RFC 9110 §5.3), and a list
// may hold empty elements (§5.6.1.2): an empty or blank line among them
// is such an element. Each line is handed to httphead alone, which fails
// on one without an element ("" or "  " or ","), so the handshake gets 400
// where the single line "permessage-deflate, " passes.
func TestCornerGrammarEmptyLineAmongSeveral(t *testing.T) {
	for _, lines := range [][]string{
		{"permessage-deflate", ""},
		{"permessage-deflate", "  "},
		{"", "permessage-deflate"},
		{"permessage-deflate", ","},
	} {
		rlCompare(t, lines...)
	}
	rlCompare(t, "permessage-deflate, ")
}

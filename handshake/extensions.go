package handshake

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gobwas/httphead"

	"github.com/colibri-ws/colibri/internal/token"
	"github.com/colibri-ws/colibri/wsconn"
)

// ParseExtensions parses Sec-WebSocket-Extensions header values (RFC 6455
// §9.1), each a comma-separated list, into one list in their order. A
// quoted parameter value comes back unquoted and unescaped. It fails on
// the first value that does not follow the header's grammar: extensions
// separated by commas (empty elements allowed, RFC 9110 §5.6.1), each a
// token followed by parameters, ";" token [ "=" ( token / quoted-string ) ],
// with optional whitespace (spaces and tabs) around the separators; a
// quoted value, once unquoted, must be a token too.
func ParseExtensions(values ...string) ([]wsconn.Extension, error) {
	var exts []wsconn.Extension
	for _, v := range values {
		var ok bool
		if exts, ok = appendParsed(exts, v); !ok {
			return nil, fmt.Errorf("handshake: malformed Sec-WebSocket-Extensions %q", v)
		}
	}
	return exts, nil
}

// appendParsed appends the extensions of the header value v to exts, and
// reports whether v follows the grammar.
func appendParsed(exts []wsconn.Extension, v string) ([]wsconn.Extension, bool) {
	s := scanner{s: v}
	for {
		s.ows()
		switch {
		case s.done():
			return exts, true
		case s.skip(','):
			continue
		}
		name, ok := s.token()
		if !ok {
			return nil, false
		}
		e := wsconn.Extension{Name: name}
		for s.ows(); s.skip(';'); s.ows() {
			s.ows()
			var p wsconn.ExtensionParam
			if p.Name, ok = s.token(); !ok {
				return nil, false
			}
			s.ows()
			if s.skip('=') {
				s.ows()
				if p.Value, ok = s.token(); !ok {
					// RFC 6455 §9.1: unquoted, the value must be a token.
					if p.Value, ok = s.quoted(); !ok || !token.Valid(p.Value) {
						return nil, false
					}
				}
			}
			e.Params = append(e.Params, p)
		}
		exts = append(exts, e)
		if !s.done() && !s.skip(',') {
			return nil, false
		}
	}
}

// scanner reads a header value from its start.
type scanner struct {
	s string
	i int
}

func (s *scanner) done() bool { return s.i == len(s.s) }

// skip consumes c if it comes next.
func (s *scanner) skip(c byte) bool {
	if s.i < len(s.s) && s.s[s.i] == c {
		s.i++
		return true
	}
	return false
}

// ows consumes optional whitespace.
func (s *scanner) ows() {
	for s.i < len(s.s) && (s.s[s.i] == ' ' || s.s[s.i] == '\t') {
		s.i++
	}
}

// token consumes a token and returns it, if there is one.
func (s *scanner) token() (string, bool) {
	start := s.i
	for s.i < len(s.s) && httphead.OctetTypes[s.s[s.i]].IsToken() {
		s.i++
	}
	return s.s[start:s.i], s.i > start
}

// quoted consumes a quoted-string (RFC 9110 §5.6.4) and returns its
// content with the quoted pairs resolved, if there is a whole one.
func (s *scanner) quoted() (string, bool) {
	if !s.skip('"') {
		return "", false
	}
	start, escaped := s.i, false
	for s.i < len(s.s) {
		c := s.s[s.i]
		s.i++
		switch {
		case c == '"':
			v := s.s[start : s.i-1]
			if escaped {
				v = unescape(v)
			}
			return v, true
		case c == '\\':
			if s.i == len(s.s) || !quotable(s.s[s.i]) {
				return "", false
			}
			s.i++
			escaped = true
		case !quotable(c):
			return "", false
		}
	}
	return "", false
}

// quotable reports whether c may stand in a quoted-string: HTAB, SP,
// visible ASCII and obs-text.
func quotable(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f }

// unescape resolves the quoted pairs of a quoted-string's content, which
// quoted has checked: each backslash stands for the byte after it.
func unescape(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++
		}
		b = append(b, v[i])
	}
	return string(b)
}

// appendExtensions appends exts as one header value, comma-separated.
func appendExtensions(b []byte, exts []wsconn.Extension) []byte {
	for i, e := range exts {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, e.String()...)
	}
	return b
}

const (
	deflateName   = "permessage-deflate"
	maxWindowBits = 15 // the largest window, 32 KiB
	minWindowBits = 8  // the smallest window RFC 7692 §7.1.2 allows
)

// negotiateDeflate picks the first of a client's permessage-deflate
// offers that this server can honour (RFC 7692 §5, §7.1) and returns the
// response, or ok false when it declines them all or c is not enabled. An
// offer that limits the server's window with server_max_window_bits (8 to
// 15) is honoured: the response repeats the value and the server
// compresses with that window. Offers that repeat a parameter, carry an
// unknown one or a bad value are declined rather than failing the
// handshake.
func negotiateDeflate(c wsconn.Compression, offers []wsconn.Extension) (resp wsconn.Extension, ok bool) {
	if !c.Enabled {
		return resp, false
	}
	for _, offer := range offers {
		if offer.Name != deflateName {
			continue
		}
		var seen [4]bool
		serverNoTakeover, serverWindow, valid := false, "", true
		for _, p := range offer.Params {
			i := -1
			switch p.Name {
			case "server_no_context_takeover":
				i, valid = 0, p.Value == ""
				serverNoTakeover = true
			case "client_no_context_takeover":
				i, valid = 1, p.Value == ""
			case "server_max_window_bits":
				i, valid = 2, windowValue(p.Value) > 0
				serverWindow = p.Value
			case "client_max_window_bits":
				// A hint that the client could use a smaller window; our
				// decompressor handles any, so the response leaves it out.
				i, valid = 3, p.Value == "" || windowValue(p.Value) > 0
			default:
				valid = false
			}
			if valid && seen[i] {
				valid = false
			}
			if !valid {
				break
			}
			seen[i] = true
		}
		if !valid {
			continue
		}
		resp = wsconn.Extension{Name: deflateName, Params: make([]wsconn.ExtensionParam, 0, 3)}
		if serverNoTakeover || !c.ContextTakeover {
			resp.Params = append(resp.Params, wsconn.ExtensionParam{Name: "server_no_context_takeover"})
		}
		if seen[1] || !c.ContextTakeover {
			// An offer with client_no_context_takeover says the client
			// resets its context anyway; saying so in the answer costs
			// nothing, lets the decompressor be pooled, and is what
			// clients such as gorilla/websocket require to accept the
			// answer (RFC 7692 §7.1.1.2).
			resp.Params = append(resp.Params, wsconn.ExtensionParam{Name: "client_no_context_takeover"})
		}
		if seen[2] {
			// The same value: the server's compressor is limited to it
			// (RFC 7692 §7.1.2.1).
			resp.Params = append(resp.Params, wsconn.ExtensionParam{Name: "server_max_window_bits", Value: serverWindow})
		}
		if len(resp.Params) == 0 {
			resp.Params = nil
		}
		return resp, true
	}
	return resp, false
}

// windowValue returns the window size in bits that v, the value of a
// *_max_window_bits parameter, names: 8 to 15 written as plain digits
// (RFC 7692 §7.1.2.1), or 0 when v is not a valid value.
func windowValue(v string) int {
	if len(v) == 0 || len(v) > 2 || v[0] == '0' || strings.Trim(v, "0123456789") != "" {
		return 0 // not plain digits: Atoi would take "+9"
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minWindowBits || n > maxWindowBits {
		return 0
	}
	return n
}

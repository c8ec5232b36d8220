package wsconn

import (
	"bytes"
	"fmt"

	"github.com/gobwas/httphead"
)

// Extension is a WebSocket extension with its parameters, as one element
// of a Sec-WebSocket-Extensions header carries it (RFC 6455 §9.1): an
// offer in a client's request, or what the server accepted in its answer.
// Conn.Extensions and Upgraded.Extensions hold the negotiated ones.
//
// Names are compared as they are written, case included; the order of
// Params is the order on the wire.
type Extension struct {
	// Name is the extension's token, such as "permessage-deflate".
	Name string
	// Params are the extension's parameters, in order.
	Params []ExtensionParam
}

// ExtensionParam is one parameter of an Extension. Value is empty for a
// parameter given without one, such as server_no_context_takeover.
type ExtensionParam struct {
	Name, Value string
}

// Param returns the value of e's first parameter called name, and whether
// e has one.
func (e Extension) Param(name string) (value string, ok bool) {
	for _, p := range e.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// String returns e as it appears in a Sec-WebSocket-Extensions header:
// "permessage-deflate; server_max_window_bits=10". A value that is not a
// token is quoted.
func (e Extension) String() string {
	return string(e.appendTo(nil))
}

// appendTo appends e in its header form to b.
func (e Extension) appendTo(b []byte) []byte {
	b = append(b, e.Name...)
	for _, p := range e.Params {
		b = append(append(b, "; "...), p.Name...)
		if p.Value == "" {
			continue
		}
		b = append(b, '=')
		if isToken(p.Value) {
			b = append(b, p.Value...)
			continue
		}
		b = append(b, '"')
		for i := 0; i < len(p.Value); i++ {
			if c := p.Value[i]; c == '"' || c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, p.Value[i])
		}
		b = append(b, '"')
	}
	return b
}

// appendExtensions appends exts as one header value, comma-separated.
func appendExtensions(b []byte, exts []Extension) []byte {
	for i, e := range exts {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = e.appendTo(b)
	}
	return b
}

// isToken reports whether s is a non-empty token (RFC 9110 §5.6.2).
func isToken(s string) bool {
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

// ParseExtensions parses Sec-WebSocket-Extensions header values (RFC 6455
// §9.1), each a comma-separated list, into one list in their order. A
// quoted parameter value comes back unquoted. It fails on the first value
// that does not follow the header's grammar.
func ParseExtensions(values ...string) ([]Extension, error) {
	var opts []httphead.Option
	for _, v := range values {
		var ok bool
		if opts, ok = httphead.ParseOptions([]byte(v), opts); !ok {
			return nil, fmt.Errorf("wsconn: malformed Sec-WebSocket-Extensions %q", v)
		}
	}
	if len(opts) == 0 {
		return nil, nil
	}
	exts := make([]Extension, len(opts))
	for i, o := range opts {
		exts[i].Name = string(o.Name)
		if n := o.Parameters.Size(); n > 0 {
			exts[i].Params = make([]ExtensionParam, 0, n)
		}
		o.Parameters.ForEach(func(k, v []byte) bool {
			exts[i].Params = append(exts[i].Params, ExtensionParam{Name: string(k), Value: unescape(v)})
			return true
		})
	}
	return exts, nil
}

// unescape returns a parameter value with the quoted-pair escapes of a
// quoted string resolved; httphead removes only the quotes.
func unescape(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v)
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b = append(b, v[i])
	}
	return string(b)
}

package wsconn

import "github.com/colibri-ws/colibri/internal/token"

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
// token is quoted, which keeps the list readable, but RFC 6455 §9.1 wants
// every value to be a token, quoted or not: peers, colibri among them,
// refuse such a header.
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
		if token.Valid(p.Value) {
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

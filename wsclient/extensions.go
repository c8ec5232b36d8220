package wsclient

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/token"
	"github.com/colibri-ws/colibri/wsconn"
)

// deflateName is the token of permessage-deflate (RFC 7692 §7).
const deflateName = "permessage-deflate"

// offers returns the extensions Dial offers: Options.Extensions, then
// permessage-deflate when Config.Compression asks for it and Extensions
// does not offer it already.
func offers(o *Options) []wsconn.Extension {
	exts := o.Extensions
	if o.Config == nil || !o.Config.Compression.Enabled {
		return exts
	}
	for _, e := range exts {
		if e.Name == deflateName {
			return exts
		}
	}
	return append(slices.Clip(exts), deflateOffer(o.Config.Compression))
}

// deflateOffer returns the permessage-deflate offer for c: without
// context takeover (the default) it asks both sides to reset their
// context after every message.
func deflateOffer(c wsconn.Compression) wsconn.Extension {
	o := wsconn.Extension{Name: deflateName}
	if !c.ContextTakeover {
		o.Params = []wsconn.ExtensionParam{{Name: "client_no_context_takeover"}, {Name: "server_no_context_takeover"}}
	}
	return o
}

// formatOffers returns the Sec-WebSocket-Extensions value that offers
// exts, or an error when a name or a value is not a token, which the header
// could not carry (RFC 6455 §9.1).
func formatOffers(exts []wsconn.Extension) (string, error) {
	var b strings.Builder
	for i, e := range exts {
		if !token.Valid(e.Name) {
			return "", fmt.Errorf("wsclient: extension name %q is not a token", e.Name)
		}
		for _, p := range e.Params {
			if !token.Valid(p.Name) {
				return "", fmt.Errorf("wsclient: extension %s: parameter name %q is not a token", e.Name, p.Name)
			}
			if p.Value != "" && !token.Valid(p.Value) {
				return "", fmt.Errorf("wsclient: extension %s: parameter %s: value %q is not a token", e.Name, p.Name, p.Value)
			}
			// A window the client would have to keep to (RFC 7692 §7.1.2).
			if e.Name == deflateName && p.Name == "client_max_window_bits" && p.Value != "" && !windowBits(p.Value) {
				return "", fmt.Errorf("wsclient: permessage-deflate: client_max_window_bits=%s is not 8 to 15", p.Value)
			}
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.String())
	}
	return b.String(), nil
}

// checkExtensions validates the server's Sec-WebSocket-Extensions against
// what was offered (RFC 6455 §9.1) and returns what it accepted, or the
// reason the answer is refused and the error behind it, if any.
//
// Names are compared exactly, as colibri's server and wsconn compare them:
// RFC 6455 §9.1 and RFC 7692 §7 name an extension by a registered token
// and, unlike "websocket" in Upgrade, never say that another case names it
// too. An answer "PERMESSAGE-DEFLATE" thus accepts nothing that was offered.
func checkExtensions(h http.Header, offered []wsconn.Extension) ([]wsconn.Extension, string, error) {
	var exts []wsconn.Extension
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		more, err := handshake.ParseExtensions(v)
		if err != nil {
			return nil, fmt.Sprintf("malformed Sec-WebSocket-Extensions %q", v), nil
		}
		exts = append(exts, more...)
	}
	for i, e := range exts {
		var mine []wsconn.Extension
		for _, x := range offered {
			if x.Name == e.Name {
				mine = append(mine, x)
			}
		}
		if len(mine) == 0 {
			return nil, fmt.Sprintf("server accepted extension %q, which was not offered", e.Name), nil
		}
		reason := ""
		for _, prev := range exts[:i] {
			if prev.Name == e.Name {
				reason = "accepted twice"
			}
		}
		if reason == "" && e.Name == deflateName {
			reason = checkDeflate(e, mine)
			if reason == "" {
				exts[i] = keepWindowHint(e, mine)
			}
		}
		switch {
		case reason != "" && e.Name == deflateName:
			return nil, "permessage-deflate: " + reason, ErrCompressionResponse
		case reason != "":
			return nil, fmt.Sprintf("extension %q: %s", e.Name, reason), nil
		}
	}
	return exts, "", nil
}

// checkDeflate applies RFC 7692 §7.1 to a permessage-deflate response,
// given the client's offers of it. colibri's compressor can use any window
// from 8 to 15 bits and its decompressor inflates any.
func checkDeflate(resp wsconn.Extension, offers []wsconn.Extension) string {
	offered := func(param string) (all, any bool) {
		all = true
		for _, o := range offers {
			_, has := o.Param(param)
			all, any = all && has, any || has
		}
		return all, any
	}
	seen := map[string]bool{}
	for _, p := range resp.Params {
		if seen[p.Name] {
			return fmt.Sprintf("parameter %s given twice", p.Name)
		}
		seen[p.Name] = true
		switch p.Name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.Value != "" {
				return fmt.Sprintf("parameter %s takes no value, got %q", p.Name, p.Value)
			}
		case "server_max_window_bits", "client_max_window_bits":
			if !windowBits(p.Value) {
				return fmt.Sprintf("%s=%q is not 8 to 15", p.Name, p.Value)
			}
			// client_max_window_bits is allowed only if offered, and no
			// larger than offered (RFC 7692 §7.1.2.2).
			if p.Name == "client_max_window_bits" {
				if _, any := offered(p.Name); !any {
					return "client_max_window_bits was not offered"
				}
				if _, most, anyWindow := offeredWindows(offers); !anyWindow && atoi(p.Value) > most {
					return fmt.Sprintf("client_max_window_bits=%s is larger than offered (%d)", p.Value, most)
				}
			}
		default:
			return fmt.Sprintf("unknown parameter %q", p.Name)
		}
	}
	if all, _ := offered("server_no_context_takeover"); all && !seen["server_no_context_takeover"] {
		// Every offer asked for it; an answer without it answers none of them
		// (RFC 7692 §7.1.1.1).
		return "server_no_context_takeover was asked for and not granted"
	}
	return ""
}

// offeredWindows returns the smallest and the largest client_max_window_bits
// value among the offers (0 when none carries one) and whether an offer
// carries the parameter without a value (any window then).
func offeredWindows(offers []wsconn.Extension) (least, most int, anyWindow bool) {
	for _, o := range offers {
		v, has := o.Param("client_max_window_bits")
		switch {
		case !has:
		case v == "":
			anyWindow = true
		default:
			n := atoi(v)
			if least == 0 || n < least {
				least = n
			}
			most = max(most, n)
		}
	}
	return least, most, anyWindow
}

// keepWindowHint returns the accepted permessage-deflate extension resp
// with the client's window: a client_max_window_bits value in an offer
// tells the server the client will not use a larger window (RFC 7692
// §7.1.2.2), so an answer that names no window, or a larger one than some
// offer, gets the smallest offered.
func keepWindowHint(resp wsconn.Extension, offers []wsconn.Extension) wsconn.Extension {
	least, _, _ := offeredWindows(offers)
	if least == 0 {
		return resp
	}
	if v, has := resp.Param("client_max_window_bits"); has && atoi(v) <= least {
		return resp
	}
	params := make([]wsconn.ExtensionParam, 0, len(resp.Params)+1)
	for _, p := range resp.Params {
		if p.Name != "client_max_window_bits" {
			params = append(params, p)
		}
	}
	resp.Params = append(params, wsconn.ExtensionParam{Name: "client_max_window_bits", Value: strconv.Itoa(least)})
	return resp
}

func atoi(v string) int {
	n, _ := strconv.Atoi(v)
	return n
}

// windowBits reports whether v is a window size RFC 7692 §7.1.2 allows: 8
// to 15, in plain digits.
func windowBits(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 8 && n <= 15 && strconv.Itoa(n) == v
}

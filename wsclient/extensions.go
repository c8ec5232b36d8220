package wsclient

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/gobwas/httphead"

	"github.com/colibri-ws/colibri/wsconn"
)

// deflateName is the token of permessage-deflate (RFC 7692 §7).
const deflateName = "permessage-deflate"

// offers returns the extensions Dial offers: Options.Extensions, then
// permessage-deflate when Config.Compression asks for it and Extensions
// does not offer it already.
func offers(o *Options) []httphead.Option {
	exts := o.Extensions
	if o.Config == nil || !o.Config.Compression.Enabled {
		return exts
	}
	for _, e := range exts {
		if string(e.Name) == deflateName {
			return exts
		}
	}
	return append(slices.Clip(exts), o.Config.Compression.Offer())
}

// checkExtensions validates the server's Sec-WebSocket-Extensions against
// what was offered (RFC 6455 §9.1) and returns what it accepted, or the
// reason the answer is refused and the error behind it, if any.
func checkExtensions(h http.Header, offered []httphead.Option) ([]httphead.Option, string, error) {
	var exts []httphead.Option
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		var ok bool
		if exts, ok = httphead.ParseOptions([]byte(v), exts); !ok {
			return nil, fmt.Sprintf("malformed Sec-WebSocket-Extensions %q", v), nil
		}
	}
	for i, e := range exts {
		var mine []httphead.Option
		for _, x := range offered {
			if bytes.EqualFold(x.Name, e.Name) {
				mine = append(mine, x)
			}
		}
		if len(mine) == 0 {
			return nil, fmt.Sprintf("server accepted extension %q, which was not offered", e.Name), nil
		}
		reason := ""
		for _, prev := range exts[:i] {
			if bytes.EqualFold(prev.Name, e.Name) {
				reason = "accepted twice"
			}
		}
		if reason == "" && string(e.Name) == deflateName {
			reason = checkDeflate(e, mine)
		}
		switch {
		case reason != "" && string(e.Name) == deflateName:
			return nil, "permessage-deflate: " + reason, wsconn.ErrCompressionResponse
		case reason != "":
			return nil, fmt.Sprintf("extension %q: %s", e.Name, reason), nil
		}
	}
	return exts, "", nil
}

// checkDeflate applies RFC 7692 §7.1 to a permessage-deflate response,
// given the client's offers of it, with what colibri's compressor can do:
// it always uses a 32 KiB window.
func checkDeflate(resp httphead.Option, offers []httphead.Option) string {
	offered := func(param string) (all, any bool) {
		all = true
		for _, o := range offers {
			_, has := o.Parameters.Get(param)
			all, any = all && has, any || has
		}
		return all, any
	}
	seen := map[string]bool{}
	reason := ""
	resp.Parameters.ForEach(func(k, v []byte) bool {
		name := string(k)
		if seen[name] {
			reason = fmt.Sprintf("parameter %s given twice", name)
			return false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if len(v) > 0 {
				reason = fmt.Sprintf("parameter %s takes no value, got %q", name, v)
			}
		case "server_max_window_bits":
			if n, err := strconv.Atoi(string(v)); err != nil || n < 8 || n > 15 {
				reason = fmt.Sprintf("server_max_window_bits=%q is not 8 to 15", v)
			}
		case "client_max_window_bits":
			// Allowed only if offered (RFC 7692 §7.1.2.2); colibri's
			// compressor needs the full window.
			if _, any := offered(name); !any {
				reason = "client_max_window_bits was not offered"
			} else if string(v) != "15" {
				reason = fmt.Sprintf("client_max_window_bits=%q: the client compresses with a 15-bit window", v)
			}
		default:
			reason = fmt.Sprintf("unknown parameter %q", name)
		}
		return reason == ""
	})
	if reason != "" {
		return reason
	}
	if all, _ := offered("server_no_context_takeover"); all && !seen["server_no_context_takeover"] {
		// Every offer asked for it; an answer without it answers none of them
		// (RFC 7692 §7.1.1.1).
		return "server_no_context_takeover was asked for and not granted"
	}
	return ""
}

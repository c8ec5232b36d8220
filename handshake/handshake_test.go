package handshake_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

func TestCheckOriginNormalisesDefaultPorts(t *testing.T) {
	for _, tc := range []struct {
		origin, host string
		ok           bool
	}{
		{"https://example.com", "example.com:443", true},
		{"http://example.com:80", "example.com", true},
		{"https://example.com:8443", "example.com", false},
		{"null", "example.com", false},
		{"https://EXAMPLE.com", "example.com", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://"+tc.host+"/", nil)
		r.Host = tc.host
		r.Header.Set("Origin", tc.origin)
		if err := handshake.CheckOrigin(r, nil); (err == nil) != tc.ok {
			t.Errorf("origin %q host %q: %v, want ok=%v", tc.origin, tc.host, err, tc.ok)
		}
	}
}

func TestNegotiation(t *testing.T) {
	on := wsconn.Compression{Enabled: true}
	tests := []struct {
		offer string
		cfg   wsconn.Compression
		want  string // "" declines
	}{
		{"permessage-deflate", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"permessage-deflate; client_max_window_bits", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"},
		{"permessage-deflate; server_max_window_bits=15", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15"},
		{"permessage-deflate; server_max_window_bits=8", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"},
		{`permessage-deflate; server_max_window_bits="9"`, on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"},
		{"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=16, permessage-deflate", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits=09", on, ""},
		{"permessage-deflate; server_max_window_bits", on, ""},
		{"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", on, ""},
		{"permessage-deflate; client_max_window_bits=16", on, ""},
		{"permessage-deflate; unknown_param", on, ""},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", on, ""},
		{"permessage-deflate; server_no_context_takeover=1", on, ""},
		{"x-webkit-deflate-frame", on, ""},
		{"permessage-deflate", wsconn.Compression{}, ""},
		{"permessage-deflate", wsconn.Compression{Enabled: true, ContextTakeover: true}, "permessage-deflate"},
		{"permessage-deflate; server_no_context_takeover", wsconn.Compression{Enabled: true, ContextTakeover: true}, "permessage-deflate; server_no_context_takeover"},
		{"permessage-deflate; client_no_context_takeover", wsconn.Compression{Enabled: true, ContextTakeover: true}, "permessage-deflate; client_no_context_takeover"},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", wsconn.Compression{Enabled: true, ContextTakeover: true}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"permessage-deflate; server_max_window_bits=12", wsconn.Compression{Enabled: true, ContextTakeover: true}, "permessage-deflate; server_max_window_bits=12"},
	}
	for _, tt := range tests {
		offers, err := handshake.ParseExtensions(tt.offer)
		if err != nil {
			t.Fatalf("bad test offer %q: %v", tt.offer, err)
		}
		resp, accepted := handshake.NegotiateDeflate(tt.cfg, offers)
		got := ""
		if accepted {
			got = resp.String()
		}
		if got != tt.want {
			t.Errorf("offer %q: got %q, want %q", tt.offer, got, tt.want)
		}
	}
}

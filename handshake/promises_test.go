package handshake_test

// Tests of what docs/configuration.md (handshake.AcceptOptions) and
// docs/security.md promise about Accept, through a loopback socket and
// clients colibri does not share code with.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// AcceptOptions as configuration.md has them: the client's most preferred
// of Subprotocols, OriginPatterns besides the same host, SkipOriginCheck,
// compression off unless enabled, and extra Header fields in the 101 that
// cannot replace the handshake's own. A refusal is written as an HTTP
// error and returned as a *handshake.Error with its status.
func TestPromiseAcceptOptions(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	refusals := make(chan error, 16)
	opts := map[string]*handshake.AcceptOptions{
		"/plain": nil,
		"/chat":  {Subprotocols: []string{"v1", "v2"}, OriginPatterns: []string{"*.example.com"}},
		"/open":  {SkipOriginCheck: true},
		"/extra": {Subprotocols: []string{"v1"}, Header: http.Header{
			"X-Extra":                  {"yes"},
			"Upgrade":                  {"h2c"},
			"Connection":               {"close"},
			"Sec-WebSocket-Accept":     {"forged"},
			"Sec-WebSocket-Protocol":   {"v9"},
			"Sec-WebSocket-Extensions": {"x-forged"},
		}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, opts[r.URL.Path])
		if err != nil {
			refusals <- err
			return
		}
		_ = wsconn.Serve(context.Background(), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			return out.WriteText(ctx, fmt.Sprintf("[%s] deflate=%v", s.Subprotocol(), len(u.Extensions) > 0))
		}, &wsconn.Config{Logger: quietLogger})
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		path   string
		protos []string
		origin string
		want   string // the handler's line, or the refusal's status
	}{
		{"/plain", []string{"v1"}, "", "[] deflate=false"}, // compression is off by default; coder offers it
		{"/chat", []string{"v2", "v1"}, "", "[v2] deflate=false"},
		{"/chat", []string{"v3", "v1"}, "", "[v1] deflate=false"},
		{"/chat", []string{"v3"}, "", "[] deflate=false"},
		{"/chat", nil, "https://app.example.com", "[] deflate=false"},
		{"/chat", nil, "https://example.com", "403"},
		{"/plain", nil, "https://app.example.com", "403"},
		{"/open", nil, "https://anyone.test", "[] deflate=false"},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := coder.Dial(ctx, url+tc.path, &coder.DialOptions{Subprotocols: tc.protos, HTTPHeader: h,
			CompressionMode: coder.CompressionContextTakeover})
		if tc.want == "403" {
			if err == nil {
				c.CloseNow()
				t.Errorf("%s from %s: accepted, want 403", tc.path, tc.origin)
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s from %s: %v, want 403", tc.path, tc.origin, err)
			}
			select {
			case got := <-refusals:
				if he, ok := errors.AsType[*handshake.Error](got); !ok || he.Status != http.StatusForbidden {
					t.Errorf("Accept returned %v, want a *handshake.Error with 403", got)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Accept returned no refusal")
			}
			continue
		}
		if err != nil {
			t.Errorf("%s offering %q from %q: %v", tc.path, tc.protos, tc.origin, err)
			continue
		}
		_, p, err := c.Read(ctx)
		c.CloseNow()
		if err != nil || string(p) != tc.want {
			t.Errorf("%s offering %q from %q: %q %v, want %q", tc.path, tc.protos, tc.origin, p, err, tc.want)
		}
	}

	// The handshake's own fields cannot be overridden by Header.
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(nc, "GET /extra HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: v1\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", key)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	for field, want := range map[string]string{
		"X-Extra":                  "yes",
		"Upgrade":                  "websocket",
		"Connection":               "Upgrade",
		"Sec-WebSocket-Accept":     base64.StdEncoding.EncodeToString(sum[:]),
		"Sec-WebSocket-Protocol":   "v1",
		"Sec-WebSocket-Extensions": "",
	} {
		got := resp.Header.Values(field)
		if want == "" && len(got) != 0 || want != "" && (len(got) != 1 || got[0] != want) {
			t.Errorf("101 %s: %q, want %q only", field, got, want)
		}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("status %d, want 101", resp.StatusCode)
	}
}

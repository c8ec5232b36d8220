package router_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// Reject's headers reach the refusal, added to what middleware set: a 401
// can carry the WWW-Authenticate RFC 9110 requires of it, a 429 its
// Retry-After. The fields of the body and of the handshake stay the
// router's, however the decision spells them.
func TestRejectCarriesItsHeaders(t *testing.T) {
	rt := router.New()
	rt.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Request-Id", "r1")
			next.ServeHTTP(w, r)
		})
	})
	router.WS(rt, "/ws", func(r *http.Request) (struct{}, router.Decision) {
		if r.URL.Query().Get("slow") != "" {
			return struct{}{}, router.Reject(http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}}, "slow down")
		}
		return struct{}{}, router.Reject(http.StatusUnauthorized, http.Header{
			"www-authenticate":       {`Bearer realm="chat"`},
			"X-Request-Id":           {"r2"},
			"content-type":           {"application/json"},
			"Content-Length":         {"1000"},
			"upgrade":                {"websocket"},
			"Connection":             {"Upgrade"},
			"sec-websocket-protocol": {"chat"},
		}, "token required")
	}, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		t.Error("the handler ran for a rejected upgrade")
		return nil
	})
	srv := httptest.NewServer(rt)
	defer srv.Close()

	get := func(query string) (*http.Response, string) {
		t.Helper()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := "GET /ws" + query + " HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() +
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	resp, body := get("")
	if resp.StatusCode != http.StatusUnauthorized || body != "token required\n" {
		t.Fatalf("got %d %q, want 401 %q", resp.StatusCode, body, "token required\n")
	}
	h := resp.Header
	if got := h.Get("WWW-Authenticate"); got != `Bearer realm="chat"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	if got := h.Values("X-Request-Id"); len(got) != 2 || got[0] != "r1" || got[1] != "r2" {
		t.Errorf("X-Request-Id %q, want middleware's r1 and the decision's r2", got)
	}
	if got := h.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q, want the router's plain text", got)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for a %d-byte body", resp.ContentLength, len(body))
	}
	for _, k := range []string{"Upgrade", "Sec-WebSocket-Protocol"} {
		if v := h.Values(k); len(v) > 0 {
			t.Errorf("the refusal carries the handshake's %s: %q", k, v)
		}
	}
	if v := h.Get("Connection"); v == "Upgrade" {
		t.Errorf("the refusal says Connection: %s", v)
	}

	resp, body = get("?slow=1")
	if resp.StatusCode != http.StatusTooManyRequests || body != "slow down\n" || resp.Header.Get("Retry-After") != "30" {
		t.Errorf("got %d %q Retry-After %q, want 429 with Retry-After 30", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

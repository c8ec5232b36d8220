package router_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/router"
)

// upgradeRequest returns a valid handshake request for url.
func upgradeRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
	return req
}

// rawBody returns resp's whole body, untrimmed.
func rawBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every plain-text refusal the router writes ends in one newline: Reject's,
// the handshake checks', the decline's and the plain GET's, like
// http.Error's.
func TestRefusalBodiesEndInOneNewline(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws/{why}", func(req *http.Request) (struct{}, router.Decision) {
		switch req.PathValue("why") {
		case "reject":
			return struct{}{}, router.Reject(http.StatusBadRequest, nil, "username required")
		case "reject-newline":
			return struct{}{}, router.Reject(http.StatusBadRequest, nil, "username required\n")
		case "reject-empty":
			return struct{}{}, router.Reject(http.StatusTooManyRequests, nil, "")
		case "decline":
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}])
	base := serve(t, r)

	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		body   string
	}{
		{"Reject", func() *http.Request { return upgradeRequest(t, base+"/ws/reject") }, 400, "username required\n"},
		{"Reject with its own newline", func() *http.Request { return upgradeRequest(t, base+"/ws/reject-newline") }, 400, "username required\n"},
		{"Reject without a body", func() *http.Request { return upgradeRequest(t, base+"/ws/reject-empty") }, 429, ""},
		{"DontUpgrade", func() *http.Request { return upgradeRequest(t, base+"/ws/decline") }, 403, "this WebSocket endpoint declined the upgrade\n"},
		{"handshake error", func() *http.Request {
			req := upgradeRequest(t, base+"/ws/accept")
			req.Header.Del("Sec-Websocket-Key")
			return req
		}, 400, "WebSocket handshake needs exactly one Sec-WebSocket-Key header\n"},
		{"plain GET", func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, base+"/ws/accept", nil)
			return req
		}, 426, "this endpoint speaks WebSocket only: send Upgrade: websocket\n"},
	} {
		resp, err := http.DefaultClient.Do(tc.req())
		if err != nil {
			t.Fatal(err)
		}
		if b := rawBody(t, resp); resp.StatusCode != tc.status || b != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, b, tc.status, tc.body)
		}
	}
}

// requireToken is an authentication middleware: 401 without the token.
func requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// A plain request to a ws route behind authentication meets the
// authentication first: without credentials it gets 401, like an upgrade,
// and learns nothing of the route; with them it gets 426.
func TestAuthAnswersPlainRequestsBeforeTheRoute(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws/public", nil, echo[struct{}])
	r.Group(func(r *router.Router) {
		r.Use(requireToken)
		router.WS(r, "/ws/private", nil, echo[struct{}])
	})
	base := serve(t, r)

	get := func(path string, token bool, upgrade bool) int {
		t.Helper()
		var req *http.Request
		if upgrade {
			req = upgradeRequest(t, base+path)
		} else {
			req, _ = http.NewRequest(http.MethodGet, base+path, nil)
		}
		if token {
			req.Header.Set("Authorization", "Bearer s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := rawBody(t, resp)
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(b, "WebSocket") {
			t.Errorf("GET %s: the 401 speaks of WebSocket: %q", path, b)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path           string
		token, upgrade bool
		want           int
	}{
		{"/ws/private", false, false, http.StatusUnauthorized},
		{"/ws/private", true, false, http.StatusUpgradeRequired},
		{"/ws/private", false, true, http.StatusUnauthorized},
		{"/ws/public", false, false, http.StatusUpgradeRequired},
		{"/nowhere", false, false, http.StatusNotFound},
	} {
		if got := get(tc.path, tc.token, tc.upgrade); got != tc.want {
			t.Errorf("GET %s (token %v, upgrade %v): %d, want %d", tc.path, tc.token, tc.upgrade, got, tc.want)
		}
	}
}

// Origin: null is what sandboxed pages and local files send; the refusal
// says so rather than calling the header malformed.
func TestNullOriginIsRefusedAsOpaque(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithOrigins("*"))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	req := upgradeRequest(t, base+"/ws")
	req.Header.Set("Origin", "null")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b := rawBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, `opaque origin "null"`) || strings.Contains(b, "malformed") {
		t.Fatalf("Origin: null got %d %q, want 403 naming an opaque origin", resp.StatusCode, b)
	}
}

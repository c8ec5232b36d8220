package middleware_test

// Adversarial tests of the stock middleware over real loopback sockets:
// auth header edge cases, middleware that wraps the ResponseWriter
// without Unwrap, a panic after the upgrade decision with no Recover,
// upgrade requests spelled oddly at the rate limiter, and log injection.
// They reuse the helpers of promises_test.go and helpers_external_test.go.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// bearer.go: the scheme name is case-insensitive; a header with another
// scheme, or with no token, counts as no token (401 "Bearer", verify not
// called); a rejected token gets invalid_token; the body never repeats
// the token.
func TestAdvBearerHeaderEdgeCases(t *testing.T) {
	var verified atomic.Int32
	verify := func(ctx context.Context, token string) (string, error) {
		verified.Add(1)
		return verifyGood(ctx, token)
	}
	var decisions atomic.Int32
	r := newRouter()
	r.With(middleware.Bearer(verify)).Group(func(r *router.Router) { router.WS(r, "/ws", counting(&decisions), who) })
	base := serve(t, r)
	url := wsURL(base, "/ws")

	for _, auth := range []string{"bearer good-token", "BEARER good-token", "Bearer   good-token  "} {
		msg, _, closeFn := accepted(t, url, http.Header{"Authorization": {auth}})
		if !strings.Contains(msg, `user="alice" ok=true`) {
			t.Errorf("%q: handler saw %s", auth, msg)
		}
		closeFn()
	}
	huge := strings.Repeat("A", 200<<10)
	for _, tc := range []struct {
		name      string
		header    []string
		challenge string
		verifies  bool
	}{
		{"empty header", []string{""}, "Bearer", false},
		{"scheme only", []string{"Bearer"}, "Bearer", false},
		{"scheme and spaces", []string{"Bearer    "}, "Bearer", false},
		{"other scheme", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:good-token"))}, "Bearer", false},
		{"scheme glued to token", []string{"Bearergood-token"}, "Bearer", false},
		{"tab instead of space", []string{"Bearer\tgood-token"}, "Bearer", false},
		{"bad token", []string{"Bearer bad-token"}, `Bearer error="invalid_token"`, true},
		{"huge token", []string{"Bearer " + huge}, `Bearer error="invalid_token"`, true},
		{"another scheme first", []string{"Basic Zm9vOmJhcg==", "Bearer good-token"}, "Bearer", false},
		{"two headers", []string{"Bearer good-token", "Bearer bad-token"}, "Bearer", false},
		{"blank inside the token", []string{"Bearer good-token extra"}, "Bearer", false},
	} {
		before := verified.Load()
		resp, body := refused(t, url, http.Header{"Authorization": tc.header})
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q, want 401 with %q", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.challenge)
		}
		if strings.Contains(body, "good-token") || strings.Contains(body, "bad-token") || strings.Contains(body, "AAAA") {
			t.Errorf("%s: the body repeats the token: %q", tc.name, body)
		}
		if got := verified.Load() != before; got != tc.verifies {
			t.Errorf("%s: verify called %v, want %v", tc.name, got, tc.verifies)
		}
	}
	if n := decisions.Load(); n != 3 {
		t.Fatalf("shouldUpgrade ran %d times, want 3 (the accepted ones)", n)
	}
}

// basicauth.go (RFC 7617): the scheme is case-insensitive, the password
// may hold colons (the user-id ends at the first one), and malformed or
// missing credentials get 401 with the challenge, before the decision.
func TestAdvBasicAuthHeaderEdgeCases(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	verify := func(_ context.Context, user, password string) bool {
		mu.Lock()
		seen = append(seen, user+"|"+password)
		mu.Unlock()
		return user == "alice" && password == "won:der:land"
	}
	var decisions atomic.Int32
	r := newRouter()
	r.With(middleware.BasicAuth("r", verify)).Group(func(r *router.Router) { router.WS(r, "/ws", counting(&decisions), who) })
	base := serve(t, r)
	url := wsURL(base, "/ws")
	good := base64.StdEncoding.EncodeToString([]byte("alice:won:der:land"))
	for _, auth := range []string{"Basic " + good, "basic " + good, "BASIC " + good} {
		msg, _, closeFn := accepted(t, url, http.Header{"Authorization": {auth}})
		if !strings.Contains(msg, `user="alice" ok=true`) {
			t.Errorf("%q: handler saw %s", auth, msg)
		}
		closeFn()
	}
	const challenge = `Basic realm="r", charset="UTF-8"`
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"none", nil},
		{"empty", []string{""}},
		{"scheme only", []string{"Basic"}},
		{"scheme and space", []string{"Basic "}},
		{"not base64", []string{"Basic !!!"}},
		{"no colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alicewon"))}},
		{"bearer scheme", []string{"Bearer " + good}},
		{"wrong password", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:won"))}},
		{"two headers", []string{"Basic " + good, "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:won"))}},
	} {
		var h http.Header
		if tc.header != nil {
			h = http.Header{"Authorization": tc.header}
		}
		resp, _ := refused(t, url, h)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != challenge {
			t.Errorf("%s: %d %q, want 401 with the challenge", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if n := decisions.Load(); n != 3 {
		t.Fatalf("shouldUpgrade ran %d times, want 3", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[0] != "alice|won:der:land" {
		t.Fatalf("verify saw %q first, want user alice and the password with its colons", seen)
	}
}

// plainWrapper wraps a ResponseWriter with none of its optional
// interfaces and no Unwrap.
type plainWrapper struct{ w http.ResponseWriter }

func (p plainWrapper) Header() http.Header         { return p.w.Header() }
func (p plainWrapper) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWrapper) WriteHeader(code int)        { p.w.WriteHeader(code) }

// middleware doc / recorder doc: "colibri's router does not need this: it
// hijacks after the middleware chain has returned, on the writer it was
// given". A middleware that wraps the writer without Unwrap or Hijack,
// outside and inside Log, does not stop the upgrade, and Log still
// records it as accepted.
func TestAdvWrapperWithoutUnwrapDoesNotBreakTheUpgrade(t *testing.T) {
	logger, logs := newSink()
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(plainWrapper{w}, req)
		})
	}
	r := newRouter()
	r.Use(wrap, middleware.RequestID, middleware.Log(logger), wrap)
	router.WS(r, "/ws", func(*http.Request) (string, router.Decision) {
		return "v", router.Upgrade(http.Header{"X-Decided": {"yes"}})
	}, who)
	base := serve(t, r)
	msg, resp, closeFn := accepted(t, wsURL(base, "/ws"), nil)
	defer closeFn()
	if !strings.Contains(msg, "value=v") || resp.Header.Get("X-Decided") != "yes" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("handler saw %s; 101 headers %v", msg, resp.Header)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request"}), map[string]any{"status": int64(101), "upgrade": "accepted"})
}

// A panic after the decision with no Recover in the chain: net/http
// recovers it and drops the connection. The upgrade must not happen: no
// 101, no session, no place held.
func TestAdvPanicAfterDecisionWithoutRecover(t *testing.T) {
	var decisions, sessions atomic.Int32
	r := newRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			panic("after the decision")
		})
	})
	router.WS(r, "/ws", counting(&decisions), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		sessions.Add(1)
		return who(ctx, in, out, s)
	})
	r.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, r, ln)
	c, resp, err := dial(t, "ws://"+ln.Addr().String()+"/ws", nil)
	if err == nil {
		c.Close()
		t.Fatalf("upgrade accepted (%d) although the chain panicked after the decision", resp.StatusCode)
	}
	if decisions.Load() != 1 || sessions.Load() != 0 {
		t.Fatalf("decisions %d, sessions %d; want 1, 0", decisions.Load(), sessions.Load())
	}
	if n := r.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after the panic", n)
	}
}

// rawRequest sends raw request bytes on a fresh connection and returns
// the status line and headers of the answer.
func rawRequest(t *testing.T, addr, req string) (status string, header http.Header) {
	t.Helper()
	resp, _, err := rawExchange(t, addr, req)
	if resp == nil {
		t.Fatal(err)
	}
	return resp.Status, resp.Header
}

// ratelimit.go: every request the router takes for an upgrade costs a
// token, however its Connection and Upgrade fields are spelled (case,
// lists, repeated lines): otherwise a client escapes the limit by
// spelling its upgrades oddly.
func TestAdvUpgradeRateLimitCatchesOddlySpelledUpgrades(t *testing.T) {
	var sessions atomic.Int32
	r := newRouter()
	r.With(middleware.UpgradeRateLimit(0.001, 1)).Group(func(r *router.Router) {
		router.WS(r, "/ws", func(*http.Request) (string, router.Decision) {
			sessions.Add(1)
			return "", router.Upgrade(nil)
		}, who)
	})
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")
	key := "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	// The first spends the token.
	if st, _ := rawRequest(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+key+"\r\n"); !strings.HasPrefix(st, "101") {
		t.Fatalf("first upgrade: %s", st)
	}
	for _, hdr := range []string{
		"Connection: keep-alive,  UPGRADE\r\nUpgrade: WebSocket\r\n",
		"Connection: keep-alive\r\nConnection: upgrade\r\nUpgrade: h2c, websocket\r\n",
		"Connection: Upgrade\r\nUpgrade: foo\r\nUpgrade: WEBSOCKET\r\n",
		"Connection:\tUpgrade\t\r\nUpgrade:\twebsocket \r\n",
	} {
		st, h := rawRequest(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\n"+hdr+key+"\r\n")
		if !strings.HasPrefix(st, "429") || h.Get("Retry-After") == "" {
			t.Errorf("upgrade spelled %q: %s, want 429 with Retry-After", hdr, st)
		}
	}
	if n := sessions.Load(); n != 1 {
		t.Fatalf("%d upgrades decided, want 1", n)
	}
}

// RateLimitOptions.MaxClients: the table never holds more clients than
// the cap; a flood from many keys forgets the least recently seen client
// (which starts again with a full bucket) but not one seen since.
func TestAdvUpgradeRateLimitFloodKeepsRecentClientLimited(t *testing.T) {
	mw := middleware.UpgradeRateLimitWith(0.001, 1, middleware.RateLimitOptions{
		MaxClients: 3,
		ClientIP:   func(r *http.Request) string { return r.Header.Get("X-Client") },
	})
	r := newRouter()
	r.With(mw).Group(func(r *router.Router) { router.WS(r, "/ws", nil, who) })
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")
	up := func(client string) string {
		st, _ := rawRequest(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Client: "+client+"\r\n\r\n")
		return st[:3]
	}
	if up("quiet") != "101" || up("busy") != "101" {
		t.Fatal("first upgrades refused")
	}
	// busy stays the most recently seen, between floods of two new keys.
	for i := range 6 {
		if st := up("busy"); st != "429" {
			t.Fatalf("busy client, round %d: %s, want 429", i, st)
		}
		if st := up(fmt.Sprintf("flood-%d", i)); st != "101" {
			t.Fatalf("flood key %d: %s, want 101", i, st)
		}
	}
	// quiet was pushed out and starts again with a full bucket.
	if st := up("quiet"); st != "101" {
		t.Fatalf("quiet client after the flood: %s, want 101 (forgotten)", st)
	}
}

// Log and Recover write the request's path and id as attribute values:
// a path holding a newline or a forged "level=" and an X-Request-ID with
// terminal escapes do not forge a log line with a text handler.
func TestAdvLogAndRecoverResistLogInjection(t *testing.T) {
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	r := newRouter()
	r.Use(middleware.RequestID, middleware.Log(logger), middleware.Recover(logger))
	r.HandleFunc("/", func(http.ResponseWriter, *http.Request) { panic("boom") })
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")
	st, h := rawRequest(t, addr, "GET /x%0Atime=forged%20level=ERROR%20msg=forged HTTP/1.1\r\nHost: x\r\n"+
		"X-Request-ID: id\xc2\x85forged\r\n\r\n")
	if !strings.HasPrefix(st, "500") {
		t.Fatalf("status %s, want 500", st)
	}
	if id := h.Get("X-Request-Id"); strings.Contains(id, "forged") || id == "" {
		t.Fatalf("X-Request-ID %q: the insane id was kept", id)
	}
	out := logs.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (panic and request):\n%s", len(lines), out)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "time=forged") || strings.Contains(l, "\u0085") || strings.Contains(l, "\xc2\x85") {
			t.Fatalf("forged or raw log content: %q", l)
		}
	}
}

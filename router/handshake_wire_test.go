package router_test

// Review of the HTTP side of the opening handshake over HTTP/1.1: raw
// requests on a loopback socket, each refusal checked on the wire (status,
// body, headers, the connection's reuse) against what router.Observer's
// UpgradeResult and middleware.Log say about it.

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

const reviewHSKey = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// reviewHSUpgrade is an upgrade request for path with method and the
// handshake's fields, minus those drop names, plus extra (whole lines).
func reviewHSUpgrade(addr, method, path, extra string, drop ...string) string {
	fields := []string{
		"Upgrade: websocket\r\n",
		"Connection: Upgrade\r\n",
		"Sec-WebSocket-Version: 13\r\n",
		reviewHSKey,
	}
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n")
	for _, f := range fields {
		name, _, _ := strings.Cut(f, ":")
		if !slices.Contains(drop, name) {
			b.WriteString(f)
		}
	}
	b.WriteString(extra + "\r\n")
	return b.String()
}

// Every bad handshake, sent one after the other on one keep-alive
// connection (each followed by a plain GET that must still be answered):
// its status, a plain-text body that ends in a newline, the headers that go
// with the status (Allow on 405, Sec-WebSocket-Version: 13 on 426,
// WWW-Authenticate on 401, no Upgrade or Connection: upgrade on any other
// refusal), and the same status and route in the observer's UpgradeResult
// and in middleware.Log's line, marked refused.
func TestHandshakeCornerBadHandshakesAgreeOnTheWireObserverAndLog(t *testing.T) {
	obs := newWatcher()
	sink := &rvtSink{}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	r.Use(middleware.Log(sink.logger()), middleware.Recover(sink.logger()))
	r.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain page") })
	router.WS(r, "/ws/{room}", func(req *http.Request) (struct{}, router.Decision) {
		switch req.PathValue("room") {
		case "reject":
			return struct{}{}, router.Reject(http.StatusForbidden, nil, "room closed")
		case "decline":
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}], router.WithSubprotocols("chat"))
	r.Group(func(r *router.Router) {
		r.Use(middleware.BasicAuth("chat", func(_ context.Context, u, p string) bool { return u == "a" && p == "b" }))
		router.WS(r, "/private", nil, echo[struct{}])
	})
	r.Group(func(r *router.Router) {
		r.Use(func(http.Handler) http.Handler {
			return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
		})
		router.WS(r, "/panics", nil, echo[struct{}])
	})
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	type want struct {
		status int
		body   string // a part of the body
		header map[string]string
		route  string
	}
	cases := []struct {
		name string
		req  string
		want want
	}{
		{"version 8", reviewHSUpgrade(addr, "GET", "/ws/a", "Sec-WebSocket-Version: 8\r\n", "Sec-WebSocket-Version"),
			want{426, `"8"`, map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"}, "/ws/{room}"}},
		{"version 13, 8", reviewHSUpgrade(addr, "GET", "/ws/a", "Sec-WebSocket-Version: 13, 8\r\n", "Sec-WebSocket-Version"),
			want{426, "version 13", map[string]string{"Sec-WebSocket-Version": "13"}, "/ws/{room}"}},
		{"no key", reviewHSUpgrade(addr, "GET", "/ws/a", "", "Sec-WebSocket-Key"),
			want{400, "Sec-WebSocket-Key", nil, "/ws/{room}"}},
		{"two keys", reviewHSUpgrade(addr, "GET", "/ws/a", reviewHSKey),
			want{400, "exactly one Sec-WebSocket-Key", nil, "/ws/{room}"}},
		{"key of 20 bytes", reviewHSUpgrade(addr, "GET", "/ws/a", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n", "Sec-WebSocket-Key"),
			want{400, "16 bytes in base64", nil, "/ws/{room}"}},
		{"key with a blank inside", reviewHSUpgrade(addr, "GET", "/ws/a", "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ=\r\n", "Sec-WebSocket-Key"),
			want{400, "16 bytes in base64", nil, "/ws/{room}"}},
		{"POST", reviewHSUpgrade(addr, "POST", "/ws/a", ""),
			want{405, "must use GET, not POST", map[string]string{"Allow": "GET"}, "/ws/{room}"}},
		{"OPTIONS", reviewHSUpgrade(addr, "OPTIONS", "/ws/a", ""),
			want{405, "not OPTIONS", map[string]string{"Allow": "GET"}, "/ws/{room}"}},
		{"CONNECT over HTTP/1.1", reviewHSUpgrade(addr, "CONNECT", "/ws/a", ""),
			want{405, "not CONNECT", map[string]string{"Allow": "GET"}, "/ws/{room}"}},
		{"a body on the GET", reviewHSUpgrade(addr, "GET", "/ws/a", "Content-Length: 5\r\n") + "hello",
			want{400, "must not have a body", nil, "/ws/{room}"}},
		{"a chunked body on the GET", reviewHSUpgrade(addr, "GET", "/ws/a", "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n",
			want{400, "must not have a body", nil, "/ws/{room}"}},
		{"cross origin", reviewHSUpgrade(addr, "GET", "/ws/a", "Origin: http://evil.example\r\n"),
			want{403, "evil.example", nil, "/ws/{room}"}},
		{"Origin with a path", reviewHSUpgrade(addr, "GET", "/ws/a", "Origin: http://"+addr+"/\r\n"),
			want{403, "malformed Origin", nil, "/ws/{room}"}},
		{"Origin null", reviewHSUpgrade(addr, "GET", "/ws/a", "Origin: null\r\n"),
			want{403, "opaque origin", nil, "/ws/{room}"}},
		{"Reject", reviewHSUpgrade(addr, "GET", "/ws/reject", ""),
			want{403, "room closed", nil, "/ws/{room}"}},
		{"DontUpgrade without an HTTP route", reviewHSUpgrade(addr, "GET", "/ws/decline", ""),
			want{403, "declined the upgrade", nil, "/ws/{room}"}},
		{"Basic auth refuses", reviewHSUpgrade(addr, "GET", "/private", ""),
			want{401, "unauthorized", map[string]string{"WWW-Authenticate": `Basic realm="chat", charset="UTF-8"`}, "/private"}},
		{"middleware panics", reviewHSUpgrade(addr, "GET", "/panics", ""),
			want{500, "Internal Server Error", nil, "/panics"}},
		{"no route", reviewHSUpgrade(addr, "GET", "/nowhere", ""),
			want{404, "not found", nil, ""}},
	}
	var reqs []string
	for _, tc := range cases {
		reqs = append(reqs, tc.req, rvtPlain(addr, "/plain"))
	}
	got := rvtExchange(t, addr, reqs...)

	obs.mu.Lock()
	results := slices.Clone(obs.upgrades)
	obs.mu.Unlock()
	if len(results) != len(cases) {
		t.Fatalf("the observer was told of %d upgrade requests, want %d", len(results), len(cases))
	}
	sink.mu.Lock()
	var lines []map[string]any
	for _, l := range sink.lines {
		if l["msg"] == "request" && l["upgrade"] != nil {
			lines = append(lines, l)
		}
	}
	sink.mu.Unlock()
	if len(lines) != len(cases) {
		t.Fatalf("middleware.Log logged %d upgrade requests, want %d", len(lines), len(cases))
	}

	for i, tc := range cases {
		raw, next := got[2*i], got[2*i+1]
		status := raw.resp.StatusCode
		if status != tc.want.status {
			t.Errorf("%s: status %d, want %d\n%s", tc.name, status, tc.want.status, strings.Join(raw.lines, "\n"))
			continue
		}
		if !strings.Contains(raw.body, tc.want.body) || !strings.HasSuffix(raw.body, "\n") || strings.Count(raw.body, "\n") != 1 {
			t.Errorf("%s: body %q, want one line naming %q", tc.name, raw.body, tc.want.body)
		}
		if ct := raw.resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
		if raw.resp.ContentLength != int64(len(raw.body)) {
			t.Errorf("%s: Content-Length %d for a body of %d bytes", tc.name, raw.resp.ContentLength, len(raw.body))
		}
		for k, v := range tc.want.header {
			if f := raw.fields(k); len(f) != 1 || f[0] != v {
				t.Errorf("%s: %s %q, want %q", tc.name, k, f, v)
			}
		}
		if status != http.StatusUpgradeRequired {
			if f := raw.fields("Upgrade"); len(f) > 0 {
				t.Errorf("%s: a %d refusal carries Upgrade %q", tc.name, status, f)
			}
			for _, c := range raw.fields("Connection") {
				if strings.Contains(strings.ToLower(c), "upgrade") {
					t.Errorf("%s: a %d refusal carries Connection %q", tc.name, status, c)
				}
			}
		}
		if next.resp.StatusCode != http.StatusOK || next.body != "plain page" {
			t.Errorf("%s: the request after the refusal got %d %q", tc.name, next.resp.StatusCode, next.body)
		}

		res := results[i]
		if res.Status != status || res.Accepted || res.Route != tc.want.route || res.Err != nil {
			t.Errorf("%s: the observer says status %d accepted %v route %q err %v; the wire says %d, route %q",
				tc.name, res.Status, res.Accepted, res.Route, res.Err, status, tc.want.route)
		}
		l := lines[i]
		if l["status"] != float64(status) || l["upgrade"] != "refused" {
			t.Errorf("%s: middleware.Log says status %v upgrade %v; the wire says %d", tc.name, l["status"], l["upgrade"], status)
		}
	}
}

// A ServeMux redirect of an upgrade request (a path with "//" or "..")
// is a refusal like any other: the observer's route is the ws route's
// pattern, not the path the client sent (a metrics label must not take
// one value per path an attacker makes up), and its status is the
// redirect's, as on the wire and in middleware.Log.
func TestHandshakeCornerRedirectedUpgradeReportsThePattern(t *testing.T) {
	obs := newWatcher()
	sink := &rvtSink{}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	r.Use(middleware.Log(sink.logger()))
	router.WS(r, "/ws/{room}", nil, echo[struct{}])
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	got := rvtExchange(t, addr,
		reviewHSUpgrade(addr, "GET", "/ws//x1", ""),
		reviewHSUpgrade(addr, "GET", "/ws/a/../x2", ""))
	obs.mu.Lock()
	results := slices.Clone(obs.upgrades)
	obs.mu.Unlock()
	if len(results) != 2 {
		t.Fatalf("the observer was told of %d requests, want 2", len(results))
	}
	for i, loc := range []string{"/ws/x1", "/ws/x2"} {
		raw := got[i]
		if raw.resp.StatusCode != http.StatusTemporaryRedirect || raw.resp.Header.Get("Location") != loc {
			t.Errorf("request %d: %d Location %q, want 307 to %s", i, raw.resp.StatusCode, raw.resp.Header.Get("Location"), loc)
		}
		if res := results[i]; res.Route != "/ws/{room}" || res.Status != raw.resp.StatusCode || res.Accepted {
			t.Errorf("request %d: the observer says route %q status %d accepted %v", i, res.Route, res.Status, res.Accepted)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, l := range sink.lines {
		if l["msg"] == "request" && (l["status"] != float64(http.StatusTemporaryRedirect) || l["upgrade"] != "refused") {
			t.Errorf("middleware.Log: %v", l)
		}
	}
}

// A site that sends 103 Early Hints from middleware, as for every page
// (TestUpgradeCornerEarlyHintsDoNotCancelTheUpgrade keeps that working),
// and an upgrade request that ends as an ordinary response written without
// WriteHeader (an HTTP route after DontUpgrade, or an upgrade request to a
// path with only an HTTP route): the client's final status is 200, and
// middleware.Log says 200, but the router's observer reports the 103.
func TestHandshakeCornerObserverStatusIsTheFinalOneAfterEarlyHints(t *testing.T) {
	obs := newWatcher()
	sink := &rvtSink{}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	r.Use(middleware.Log(sink.logger()), earlyHints)
	r.HandleFunc("GET /feed", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "snapshot") })
	r.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain page") })
	router.WS(r, "/feed", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.DontUpgrade()
	}, echo[struct{}])
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	for _, path := range []string{"/feed", "/plain"} {
		resps := ucRaw(t, base, reviewHSUpgrade(addr, "GET", path, ""))
		final := resps[len(resps)-1]
		if len(resps) != 2 || resps[0].StatusCode != http.StatusEarlyHints || final.StatusCode != http.StatusOK {
			t.Fatalf("%s: responses %d, final %d; want 103 then 200", path, len(resps), final.StatusCode)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(obs.upgrades) != 2 || len(sink.lines) != 2 {
		t.Fatalf("the observer was told of %d requests, want 2", len(obs.upgrades))
	}
	for i, res := range obs.upgrades {
		if res.Status != http.StatusOK {
			t.Errorf("request %d: UpgradeResult.Status %d; the client got 200 (middleware.Log: %v)", i, res.Status, sink.lines[i]["status"])
		}
	}
}

// An upgrade request whose method is not GET, on a path where an HTTP
// route serves that method: the ws route answers 405 with "Allow: GET",
// saying the resource does not support POST while it does (RFC 9110
// §10.2.1: Allow lists the methods the target resource supports). The
// same POST without the Upgrade fields gets the HTTP route, and a method
// no route takes gets a 405 whose Allow lists them all
// (TestUpgradeCorner405AllowListsTheHTTPRoutesMethods). Either the HTTP
// route answers (a server may ignore Upgrade, RFC 9110 §7.8), or the 405's
// Allow names POST too.
func TestHandshakeCornerUpgradeWithAMethodAnHTTPRouteServes(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.HandleFunc("POST /room", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "posted") })
	router.WS(r, "/room", nil, echo[struct{}])
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	raw := rvtExchange(t, addr, reviewHSUpgrade(addr, "POST", "/room", "Content-Length: 0\r\n"))[0]
	switch raw.resp.StatusCode {
	case http.StatusOK:
		if raw.body != "posted" {
			t.Errorf("200 %q, want the POST route's answer", raw.body)
		}
	case http.StatusMethodNotAllowed:
		allow := strings.Split(strings.ReplaceAll(raw.resp.Header.Get("Allow"), " ", ""), ",")
		if !slices.Contains(allow, http.MethodPost) || !slices.Contains(allow, http.MethodGet) {
			t.Errorf("405 with Allow %q, but POST /room is served (and GET is the ws route's)", raw.resp.Header.Get("Allow"))
		}
	default:
		t.Errorf("status %d %q", raw.resp.StatusCode, raw.body)
	}
}

// The body of a version refusal says what is wrong: a missing
// Sec-WebSocket-Version is reported as missing (today: `unsupported
// Sec-WebSocket-Version ""`), and two lines of "13" as one header too many
// (today: `unsupported Sec-WebSocket-Version "13, 13": this server speaks
// version 13`, which contradicts itself), as the key's check does
// ("needs exactly one Sec-WebSocket-Key header").
func TestHandshakeCornerVersionRefusalBodiesSayWhatIsWrong(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	got := rvtExchange(t, addr,
		reviewHSUpgrade(addr, "GET", "/ws", "", "Sec-WebSocket-Version"),
		reviewHSUpgrade(addr, "GET", "/ws", "Sec-WebSocket-Version: 13\r\n"))
	missing, twice := got[0], got[1]
	if missing.resp.StatusCode != http.StatusUpgradeRequired ||
		strings.Contains(missing.body, `""`) || !strings.Contains(strings.ToLower(missing.body), "sec-websocket-version") {
		t.Errorf("no version: %d %q, want 426 and a body saying the header is missing", missing.resp.StatusCode, missing.body)
	}
	if strings.Contains(twice.body, "unsupported") || !strings.Contains(twice.body, "one") {
		t.Errorf("two version lines: %d %q, want a body saying there must be exactly one", twice.resp.StatusCode, twice.body)
	}
}

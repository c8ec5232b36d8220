package main

// Corner cases of the example server against what README.md,
// docs/getting-started.md and the pages they link to promise, driven by
// clients that share no code with colibri: gorilla/websocket,
// coder/websocket, raw TCP and headless Chromium.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/testlog"
)

// cornerStart runs the example server like startExample, but hands back
// a stop function that shuts it down and returns what Run returned.
func cornerStart(t *testing.T) (base string, srv *server, logs *testlog.Buffer, stop func() error, a *app.App) {
	t.Helper()
	return cornerStartNATS(t, "")
}

// cornerStartNATS is cornerStart with the chat rooms on NATS at natsURL.
func cornerStartNATS(t *testing.T, natsURL string) (base string, srv *server, logs *testlog.Buffer, stop func() error, a *app.App) {
	t.Helper()
	logs = &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := newServer(options{Token: "t0ken", NATS: natsURL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan net.Addr, 1)
	a = app.New(srv.Router, app.Config{Addr: "127.0.0.1:0", Logger: logger, NoSignals: true, OnListen: func(a net.Addr) { addr <- a }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base = "http://" + (<-addr).String()
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
			srv.Close()
			http.DefaultClient.CloseIdleConnections()
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return base, srv, logs, stop, a
}

// cornerNoErrors fails when the server logged anything at error level.
func cornerNoErrors(t *testing.T, logs *testlog.Buffer) {
	t.Helper()
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("the server logged an error: %s", line)
		}
	}
}

// cornerGet returns the status, headers and body of a GET.
func cornerGet(t *testing.T, url string, hdr http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	c.CloseIdleConnections()
	return resp.StatusCode, resp.Header, string(b)
}

// cornerRefused dials url with coder/websocket and returns the refusal's
// status, headers and body.
func cornerRefused(t *testing.T, url string, hdr http.Header) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{HTTPHeader: hdr, HTTPClient: hc})
	if err == nil {
		c.CloseNow()
		t.Fatalf("%s: upgraded, want a refusal", url)
	}
	if resp == nil {
		t.Fatalf("%s: %v, without a response", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, string(b)
}

// The token auth of README.md ("token auth") refuses as docs/security.md
// and routing.md say: 401 with "WWW-Authenticate: Bearer" without a
// token, `Bearer error="invalid_token"` with a wrong one, bodies that never
// repeat the token, and the 401 (not 426) for a plain GET to the ws route.
func TestExampleCornerTokenRefusals(t *testing.T) {
	base, _, _, _, _ := cornerStart(t)
	const wrong = "not-the-t0ken-XYZ"
	type want struct {
		challenge, body string
	}
	none := want{"Bearer", "unauthorized\n"}
	bad := want{`Bearer error="invalid_token"`, "invalid token\n"}
	check := func(what string, status int, h http.Header, body string, w want) {
		t.Helper()
		if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") != w.challenge || body != w.body || strings.Contains(body, wrong) {
			t.Errorf("%s: %d, WWW-Authenticate %q, body %q; want 401, %q, %q", what, status, h.Get("WWW-Authenticate"), body, w.challenge, w.body)
		}
	}
	// The upgrades, from coder/websocket.
	s, h, b := cornerRefused(t, wsURL(base, "/ws/stats"), nil)
	check("feed, no token", s, h, b, none)
	s, h, b = cornerRefused(t, wsURL(base, "/ws/stats?access_token="+wrong), nil)
	check("feed, wrong query token", s, h, b, bad)
	s, h, b = cornerRefused(t, wsURL(base, "/ws/stats"), http.Header{"Authorization": {"Bearer " + wrong}})
	check("feed, wrong header token", s, h, b, bad)
	s, h, b = cornerRefused(t, wsURL(base, "/ws/stats"), http.Header{"Authorization": {"Basic dDBrZW46"}})
	check("feed, Basic scheme", s, h, b, none)
	// A header with a wrong token wins over a right one in the query.
	s, h, b = cornerRefused(t, wsURL(base, "/ws/stats?access_token=t0ken"), http.Header{"Authorization": {"Bearer " + wrong}})
	check("feed, wrong header and right query", s, h, b, bad)

	// Plain requests: the 401 answers first; with the token, the route
	// says it speaks WebSocket only.
	s, h, b = cornerGet(t, base+"/ws/stats", nil)
	check("plain GET to the feed", s, h, b, none)
	s, h, b = cornerGet(t, base+"/api/stats", http.Header{"Authorization": {"Bearer " + wrong}})
	check("stats, wrong token", s, h, b, bad)
	if s, h, _ := cornerGet(t, base+"/ws/stats", http.Header{"Authorization": {"bearer t0ken"}}); s != http.StatusUpgradeRequired || h.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("plain GET to the feed with the token: %d %v, want 426", s, h)
	}
	if s, _, b := cornerGet(t, base+"/api/stats?access_token=t0ken", nil); s != 200 || !strings.Contains(b, `"chat_members":0`) {
		t.Errorf("stats with the query token: %d %q", s, b)
	}
}

// getting-started.md: a plain request to a WebSocket route explains
// itself with 426 and its headers; /healthz says ok.
func TestExampleCornerPlainRequests(t *testing.T) {
	base, _, _, _, _ := cornerStart(t)
	for _, path := range []string{"/ws/echo", "/ws/chat/lobby?username=ada"} {
		s, h, b := cornerGet(t, base+path, nil)
		if s != http.StatusUpgradeRequired || h.Get("Upgrade") != "websocket" || h.Get("Sec-WebSocket-Version") != "13" ||
			!strings.Contains(h.Get("Connection"), "Upgrade") || b != "this endpoint speaks WebSocket only: send Upgrade: websocket\n" {
			t.Errorf("GET %s: %d %v %q", path, s, h, b)
		}
	}
	resp, err := http.Post(base+"/ws/echo", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST /ws/echo: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if s, h, b := cornerGet(t, base+"/healthz", nil); s != 200 || strings.TrimSpace(b) != "ok" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /healthz: %d %v %q", s, h, b)
	}
}

// cornerClient is a chat member on either client library.
type cornerClient struct {
	name string
	g    *gorilla.Conn
	c    *coder.Conn
}

func cornerJoin(t *testing.T, base, room, name string, useCoder bool) *cornerClient {
	t.Helper()
	u := wsURL(base, "/ws/chat/"+room+"?username="+url.QueryEscape(name))
	if !useCoder {
		return &cornerClient{name: name, g: dial(t, u)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &cornerClient{name: name, c: c}
}

func (cl *cornerClient) send(t *testing.T, text string) {
	t.Helper()
	var err error
	if cl.g != nil {
		err = cl.g.WriteMessage(gorilla.TextMessage, []byte(text))
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = cl.c.Write(ctx, coder.MessageText, []byte(text))
		cancel()
	}
	if err != nil {
		t.Fatalf("%s sending: %v", cl.name, err)
	}
}

func (cl *cornerClient) read(t *testing.T) chatLine {
	t.Helper()
	if cl.g != nil {
		return readLine(t, cl.g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, p, err := cl.c.Read(ctx)
	if err != nil {
		t.Fatalf("%s reading: %v", cl.name, err)
	}
	var l chatLine
	if typ != coder.MessageText || json.Unmarshal(p, &l) != nil {
		t.Fatalf("%s got %v %.80q, not a chat line", cl.name, typ, p)
	}
	return l
}

// docs/topics.md and chat.go: what a member says reaches every other
// member of its room, exactly once and in order, and nobody else (the
// sender included).
func TestExampleCornerRoomsFanOutExactly(t *testing.T) {
	base, srv, logs, _, _ := cornerStart(t)
	rooms := []string{"red", "green", "blue"}
	const n = 15
	members := map[string][]*cornerClient{}
	for _, room := range rooms {
		for i := range 3 {
			members[room] = append(members[room], cornerJoin(t, base, room, fmt.Sprintf("%s-%d", room, i), i == 2))
		}
	}
	for _, room := range rooms {
		waitMembers(t, srv, room, 3)
	}
	for i := range n {
		for _, room := range rooms {
			for _, m := range members[room] {
				m.send(t, fmt.Sprintf("%s says %d", m.name, i))
			}
		}
	}
	for _, room := range rooms {
		for _, m := range members[room] {
			next := map[string]int{}
			for got := 0; got < 2*n; {
				l := m.read(t)
				if l.System != "" {
					if l.System == m.name+" joined" || !regexp.MustCompile(`^`+room+`-\d joined$`).MatchString(l.System) {
						t.Fatalf("%s got %+v", m.name, l)
					}
					continue
				}
				if l.From == m.name || !strings.HasPrefix(l.From, room+"-") || l.Text != fmt.Sprintf("%s says %d", l.From, next[l.From]) {
					t.Fatalf("%s got %+v after %v", m.name, l, next)
				}
				next[l.From]++
				got++
			}
		}
	}
	// Nothing more: the next thing each member hears is a newcomer.
	for _, room := range rooms {
		cornerJoin(t, base, room, "zed", false)
		for _, m := range members[room] {
			for {
				l := m.read(t)
				if regexp.MustCompile(`^` + room + `-\d joined$`).MatchString(l.System) {
					continue
				}
				if l.System != "zed joined" {
					t.Fatalf("%s got %+v, want zed joined", m.name, l)
				}
				break
			}
		}
	}
	cornerNoErrors(t, logs)
}

// Usernames with odd characters arrive verbatim in the announcements and
// the "from" field; the decision's refusals say what was wrong (400, with
// the plain-text body routing.md describes).
func TestExampleCornerOddNames(t *testing.T) {
	base, srv, _, _, _ := cornerStart(t)
	obs := cornerJoin(t, base, "odd", "observer", true)
	waitMembers(t, srv, "odd", 1)
	names := []string{
		`"quoted" & <b>bold</b>`,
		strings.Repeat("🐦", 32),
		"a b+c=d&username=e",
		"100% /x?y#z",
		"tab\there\nnewline",
		"\u00a0nbsp\u200b",
	}
	for i, name := range names {
		m := cornerJoin(t, base, "odd", name, i%2 == 0)
		if l := obs.read(t); l.System != name+" joined" {
			t.Fatalf("joined: got %q, want %q", l.System, name+" joined")
		}
		m.send(t, "hi from "+name)
		if l := obs.read(t); l.From != name || l.Text != "hi from "+name {
			t.Fatalf("got %+v, want from %q", l, name)
		}
	}
	long := strings.Repeat("a", 32) + "_-" // 34 characters
	for _, c := range []struct{ path, body string }{
		{"/ws/chat/lobby?username=", "username required\n"},
		{"/ws/chat/lobby?username=" + url.QueryEscape(strings.Repeat("🐦", 33)), "username too long\n"},
		{"/ws/chat/" + url.PathEscape("café") + "?username=x", "room names are 1-32 letters, digits, _ or -\n"},
		{"/ws/chat/a.b?username=x", "room names are 1-32 letters, digits, _ or -\n"},
		{"/ws/chat/" + long + "?username=x", "room names are 1-32 letters, digits, _ or -\n"},
	} {
		if s, _, b := cornerRefused(t, wsURL(base, c.path), nil); s != http.StatusBadRequest || b != c.body {
			t.Errorf("%s: %d %q, want 400 %q", c.path, s, b, c.body)
		}
	}
	// 32 characters of every kind the room names allow are a room.
	room := strings.Repeat("Az09_-", 5) + "zz"
	cornerJoin(t, base, room, "x", false)
	waitMembers(t, srv, room, 1)
}

// chat.go: what a member sends reaches every other member, "with the text
// verbatim", up to the chat's limit of 1 MiB. A message the chat accepted
// but whose JSON line is larger than the hub's queue limit (1 MiB, framed)
// never reaches anyone, and nobody is told.
func TestExampleCornerLongChatMessageReachesTheRoom(t *testing.T) {
	base, srv, _, _, _ := cornerStart(t)
	ada := cornerJoin(t, base, "long", "ada", false)
	grace := cornerJoin(t, base, "long", "grace", true)
	waitMembers(t, srv, "long", 2)
	for _, big := range []string{
		strings.Repeat("<", 200<<10), // JSON escapes '<' as \u003c
		strings.Repeat("a", 1<<20),   // the chat's own limit
	} {
		ada.send(t, big)
		ada.send(t, "after")
		l := grace.read(t)
		for l.System == "ada joined" {
			l = grace.read(t)
		}
		if l.Text != big {
			t.Fatalf("grace got %.60q (%d bytes) instead of a %d-byte message", l.Text, len(l.Text), len(big))
		}
		if l := grace.read(t); l.Text != "after" {
			t.Fatalf("grace got %+v", l)
		}
	}
}

// The chat's limit: one byte over 1 MiB closes the sender with 1009; the
// room goes on and hears it leave.
func TestExampleCornerChatMessageOverLimit(t *testing.T) {
	base, srv, logs, _, _ := cornerStart(t)
	ada := cornerJoin(t, base, "limit", "ada", true)
	grace := cornerJoin(t, base, "limit", "grace", false)
	waitMembers(t, srv, "limit", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ada.c.Write(ctx, coder.MessageText, []byte(strings.Repeat("x", 1<<20+1)))
	var err error
	for err == nil { // "grace joined" may come first
		_, _, err = ada.c.Read(ctx)
	}
	if coder.CloseStatus(err) != coder.StatusMessageTooBig {
		t.Fatalf("ada after 1 MiB + 1: %v, want 1009", err)
	}
	for {
		l := grace.read(t)
		if l.System == "ada joined" {
			continue
		}
		if l.System != "ada left" {
			t.Fatalf("grace got %+v, want ada left", l)
		}
		break
	}
	waitMembers(t, srv, "limit", 1)
	cornerNoErrors(t, logs)
}

// The echo route's own configuration (16 MiB, compression) replaces the
// router's 4 MiB: a 5 MiB binary message comes back whole; a frame that
// announces 16 MiB + 1 is refused with 1009 before its payload; gorilla's
// permessage-deflate offer is accepted.
func TestExampleCornerEchoLimits(t *testing.T) {
	base, _, _, _, _ := cornerStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, wsURL(base, "/ws/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(6 << 20)
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := c.Write(ctx, coder.MessageBinary, big); err != nil {
		t.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != coder.MessageBinary || string(p) != string(big) {
		t.Fatalf("5 MiB echo: %v %d bytes %v", typ, len(p), err)
	}
	c.Close(coder.StatusNormalClosure, "")

	d := gorilla.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	g, resp, err := d.Dial(wsURL(base, "/ws/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Errorf("compression not negotiated: %q", ext)
	}
	text := strings.Repeat("compress me 🐦 ", 2000)
	_ = g.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := g.WriteMessage(gorilla.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := g.ReadMessage(); err != nil || typ != gorilla.TextMessage || string(p) != text {
		t.Fatalf("compressed echo: %d %d bytes %v", typ, len(p), err)
	}
	// A masked binary frame header announcing 16 MiB + 1, and no payload.
	n := uint64(16<<20 + 1)
	hdr := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 1, 2, 3, 4}
	if _, err := g.NetConn().Write(hdr); err != nil {
		t.Fatal(err)
	}
	_, _, err = g.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseMessageTooBig) {
		t.Fatalf("16 MiB + 1 announced: %v, want 1009", err)
	}
}

// A member that vanishes (TCP closed without a CLOSE, even in the middle
// of a frame) is cleaned up: the room hears it leave, the member count
// and the open connections go back, nothing is logged as an error, and
// no goroutine is left once the server stops.
func TestExampleCornerAbruptDisconnectIsCleanedUp(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { // runs after the server has stopped
		goleak.VerifyNone(t, before,
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
	})
	base, srv, logs, stop, a := cornerStart(t)
	obs := cornerJoin(t, base, "gone", "observer", true)
	waitMembers(t, srv, "gone", 1)
	vanish := func(name string, midFrame bool) {
		m := cornerJoin(t, base, "gone", name, false)
		if l := obs.read(t); l.System != name+" joined" {
			t.Fatalf("observer got %+v", l)
		}
		if midFrame { // a masked text frame of 100 bytes, cut after 10
			hdr := append([]byte{0x81, 0x80 | 100, 9, 9, 9, 9}, make([]byte, 10)...)
			if _, err := m.g.NetConn().Write(hdr); err != nil {
				t.Fatal(err)
			}
		}
		m.g.NetConn().Close()
		if l := obs.read(t); l.System != name+" left" {
			t.Fatalf("observer got %+v, want %s left", l, name)
		}
	}
	vanish("quiet", false)
	vanish("midframe", true)
	// The echo and the stats feed, too.
	e := dial(t, wsURL(base, "/ws/echo"))
	f := dial(t, wsURL(base, "/ws/stats?access_token=t0ken"))
	_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := f.ReadMessage(); err != nil || string(p) != `{"chat_members":1}` {
		t.Fatalf("stats feed: %q %v", p, err)
	}
	e.NetConn().Close()
	f.NetConn().Close()

	deadline := time.Now().Add(3 * time.Second)
	for a.Connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want the observer's only", a.Connections())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s, _, b := cornerGet(t, base+"/api/stats", http.Header{"Authorization": {"Bearer t0ken"}}); s != 200 || strings.TrimSpace(b) != `{"chat_members":1}` {
		t.Errorf("stats: %d %q", s, b)
	}
	obs.c.Close(coder.StatusNormalClosure, "")
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	cornerNoErrors(t, logs)
}

// README.md and closing.md: graceful shutdown sends 1001 "server shutting
// down" to every socket, on every route, at once; Run returns nil and logs
// every socket as graceful.
func TestExampleCornerShutdownSends1001Everywhere(t *testing.T) {
	base, srv, logs, stop, _ := cornerStart(t)
	var gs []*gorilla.Conn
	for _, u := range []string{"/ws/chat/a?username=x", "/ws/chat/a?username=y", "/ws/chat/b?username=z", "/ws/stats?access_token=t0ken"} {
		gs = append(gs, dial(t, wsURL(base, u)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, wsURL(base, "/ws/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	waitMembers(t, srv, "a", 2)
	waitMembers(t, srv, "b", 1)

	type result struct {
		who  string
		code int
		text string
	}
	results := make(chan result, len(gs)+1)
	for i, g := range gs {
		go func() {
			_ = g.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, _, err := g.ReadMessage()
				if err == nil {
					continue
				}
				var ce *gorilla.CloseError
				if errors.As(err, &ce) {
					results <- result{fmt.Sprint("gorilla ", i), ce.Code, ce.Text}
				} else {
					results <- result{fmt.Sprint("gorilla ", i), -1, err.Error()}
				}
				return
			}
		}()
	}
	go func() {
		for {
			_, _, err := c.Read(ctx)
			if err == nil {
				continue
			}
			var ce coder.CloseError
			if errors.As(err, &ce) {
				results <- result{"coder echo", int(ce.Code), ce.Reason}
			} else {
				results <- result{"coder echo", -1, err.Error()}
			}
			return
		}
	}()
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	for range len(gs) + 1 {
		r := <-results
		if r.code != 1001 || r.text != "server shutting down" {
			t.Errorf("%s: %d %q, want 1001 \"server shutting down\"", r.who, r.code, r.text)
		}
	}
	if !strings.Contains(logs.String(), "msg=stopped graceful=5 forced=0") {
		t.Errorf("no \"stopped graceful=5 forced=0\" in the logs:\n%s", logs)
	}
	cornerNoErrors(t, logs)
}

// cornerProcess starts the example's main in a process of its own.
func cornerProcess(t *testing.T, args string, env ...string) (cmd *exec.Cmd, out, logs *expLines, exited chan error) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = expEnv(append([]string{mainEnv + "=" + args, "COLIBRI_ADDR=127.0.0.1:0"}, env...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out, logs = expCollect(stdout), expCollect(stderr)
	exited = make(chan error, 1)
	go func() {
		<-out.done
		<-logs.done
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-out.done
		<-logs.done
	})
	return cmd, out, logs, exited
}

var cornerListening = regexp.MustCompile(`^colibri example listening: open (http://127\.0\.0\.1:\d+)/$`)

// getting-started.md: "A second Ctrl-C while it waits for them ends the
// process at once": here it waits for a chat client that never answers
// the 1001 (CloseTimeout is 5 s).
func TestExampleCornerSecondInterruptEndsAtOnce(t *testing.T) {
	cmd, out, logs, exited := cornerProcess(t, "")
	base := out.wait(t, cornerListening)[1]
	g, _, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/chat/lobby?username=mute"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.SetCloseHandler(func(int, string) error { return nil }) // never answer the CLOSE
	_ = g.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("at Ctrl-C: %v, want 1001", err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the second Ctrl-C took %v to end the process", d)
		}
	case <-time.After(4 * time.Second):
		t.Fatalf("the second Ctrl-C did not end the process:\n%s", logs)
	}
}

// main.go: -json logs as JSON; COLIBRI_TOKEN sets the token and -token
// replaces it; the default demo token is then refused.
func TestExampleCornerJSONLogsAndTokenFlag(t *testing.T) {
	cmd, out, logs, exited := cornerProcess(t, "-json -token fl4g", "COLIBRI_TOKEN=env-tok")
	base := out.wait(t, cornerListening)[1]
	for tok, want := range map[string]int{"fl4g": 200, "env-tok": 401, "demo-token": 401} {
		if s, _, _ := cornerGet(t, base+"/api/stats", http.Header{"Authorization": {"Bearer " + tok}}); s != want {
			t.Errorf("token %s: %d, want %d", tok, s, want)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after Ctrl-C")
	}
	var sawListening bool
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		sawListening = sawListening || rec["msg"] == "listening"
	}
	if !sawListening {
		t.Errorf("no JSON \"listening\" line:\n%s", logs)
	}

	// With COLIBRI_TOKEN alone, the environment's token is the one.
	cmd, out, _, exited = cornerProcess(t, "", "COLIBRI_TOKEN=env-tok")
	base = out.wait(t, cornerListening)[1]
	if s, _, _ := cornerGet(t, base+"/api/stats", http.Header{"Authorization": {"Bearer env-tok"}}); s != 200 {
		t.Errorf("COLIBRI_TOKEN: %d, want 200", s)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	<-exited
}

// docs/scaling.md: two copies of the example on one NATS server share
// their chat rooms: messages, joins and leaves cross between them. A NATS
// URL nobody answers at makes the example fail to start.
func TestExampleCornerRoomsAcrossInstancesOnNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	baseA, srvA, logsA, _, _ := cornerStartNATS(t, ns.ClientURL())
	baseB, _, logsB, _, _ := cornerStartNATS(t, ns.ClientURL())
	ada := cornerJoin(t, baseA, "shared", "ada", false)
	waitMembers(t, srvA, "shared", 1)
	bob := cornerJoin(t, baseB, "shared", "bob", true)
	if l := ada.read(t); l.System != "bob joined" { // both subscriptions are confirmed now
		t.Fatalf("ada got %+v, want bob joined", l)
	}
	cornerJoin(t, baseA, "elsewhere", "eve", false) // another room: heard by nobody here
	for i := range 5 {
		ada.send(t, fmt.Sprint("from A ", i))
		bob.send(t, fmt.Sprint("from B ", i))
	}
	for i := range 5 {
		if l := bob.read(t); l.From != "ada" || l.Text != fmt.Sprint("from A ", i) {
			t.Fatalf("bob got %+v", l)
		}
		if l := ada.read(t); l.From != "bob" || l.Text != fmt.Sprint("from B ", i) {
			t.Fatalf("ada got %+v", l)
		}
	}
	bob.c.Close(coder.StatusNormalClosure, "")
	if l := ada.read(t); l.System != "bob left" {
		t.Fatalf("ada got %+v, want bob left", l)
	}
	cornerNoErrors(t, logsA)
	cornerNoErrors(t, logsB)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.Setenv("COLIBRI_ADDR", "127.0.0.1:0")
	if err := run(ctx, []string{"-nats", "nats://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "nats") {
		t.Errorf("run with an unreachable NATS: %v, want a nats error", err)
	}
}

// getting-started.md: the chat accepts only pages of the same host: a
// page on 127.0.0.1 may join, one on localhost (another host name for the
// same server) may not, nor an opaque origin; the echo route takes any.
func TestExampleCornerChatOrigins(t *testing.T) {
	base, _, _, _, _ := cornerStart(t)
	host := strings.TrimPrefix(base, "http://")
	_, port, _ := net.SplitHostPort(host)
	chat := wsURL(base, "/ws/chat/lobby?username=x")
	g, _, err := gorilla.DefaultDialer.Dial(chat, http.Header{"Origin": {base}})
	if err != nil {
		t.Fatalf("same-host page: %v", err)
	}
	g.Close()
	for _, origin := range []string{"http://localhost:" + port, "null", "http://" + host + ".evil.example"} {
		if s, _, b := cornerRefused(t, chat, http.Header{"Origin": {origin}}); s != http.StatusForbidden || b == "" {
			t.Errorf("Origin %s: %d %q, want 403 with a body", origin, s, b)
		}
	}
	g, _, err = gorilla.DefaultDialer.Dial(wsURL(base, "/ws/echo"), http.Header{"Origin": {"http://localhost:" + port}})
	if err != nil {
		t.Fatalf("echo from another host: %v", err)
	}
	g.Close()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/testlog"
)

// mainEnv makes the test binary run the example's main with the
// arguments in it, separated by spaces (see TestHelpExitsZero).
const mainEnv = "COLIBRI_EXAMPLE_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainEnv); ok {
		os.Args = append([]string{"example"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

// startExample runs the example server on a free loopback port.
func startExample(t *testing.T) (base string, srv *server, logs *testlog.Buffer) {
	t.Helper()
	logs = &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := newServer(options{Token: "t0ken", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan net.Addr, 1)
	a := app.New(srv.Router, app.Config{Addr: "127.0.0.1:0", Logger: logger, NoSignals: true, OnListen: func(a net.Addr) { addr <- a }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base = "http://" + (<-addr).String()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return base, srv, logs
}

func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

func dial(t *testing.T, url string) *gorilla.Conn {
	t.Helper()
	c, resp, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readLine(t *testing.T, c *gorilla.Conn) chatLine {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var l chatLine
	if err := json.Unmarshal(p, &l); err != nil {
		t.Fatalf("not a chat line: %q", p)
	}
	return l
}

// waitMembers waits until room has n subscribers: a client's dial returns
// at the 101, before its handler has joined the room.
func waitMembers(t *testing.T, srv *server, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.rooms.hub.Subscribers("room/"+room) != n {
		if time.Now().After(deadline) {
			t.Fatalf("room %s never had %d members", room, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestChatReachesOtherMembersOfTheRoom(t *testing.T) {
	base, srv, _ := startExample(t)
	ada := dial(t, wsURL(base, "/ws/chat/lobby?username=ada"))
	waitMembers(t, srv, "lobby", 1)
	grace := dial(t, wsURL(base, "/ws/chat/lobby?username=grace"))
	other := dial(t, wsURL(base, "/ws/chat/attic?username=linus"))
	waitMembers(t, srv, "lobby", 2)
	waitMembers(t, srv, "attic", 1)
	if l := readLine(t, ada); l.System != "grace joined" {
		t.Fatalf("ada got %+v", l)
	}
	text := `hello 🐦 "quoted" <b>not html</b>`
	if err := ada.WriteMessage(gorilla.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
	l := readLine(t, grace)
	if l.System == "ada joined" { // ada announced herself after grace subscribed
		l = readLine(t, grace)
	}
	if l.From != "ada" || l.Text != text {
		t.Fatalf("grace got %+v", l)
	}
	// Not to the sender, nor to another room: the next thing each of them
	// hears is a later event.
	grace.Close()
	if l := readLine(t, ada); l.System != "grace left" {
		t.Fatalf("ada got %+v after grace left", l)
	}
	dial(t, wsURL(base, "/ws/chat/attic?username=x"))
	if l := readLine(t, other); l.System != "x joined" {
		t.Fatalf("linus got %+v", l)
	}
}

func TestChatNeedsUsername(t *testing.T) {
	base, _, _ := startExample(t)
	for path, want := range map[string]int{
		"/ws/chat/lobby":                  http.StatusBadRequest,
		"/ws/chat/bad%20room?username=ok": http.StatusBadRequest,
	} {
		_, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, path), nil)
		if err == nil || resp.StatusCode != want {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		b, _ := io.ReadAll(resp.Body)
		if len(b) == 0 {
			t.Fatalf("%s: refusal without a body", path)
		}
	}
}

func TestEchoKeepsMessageType(t *testing.T) {
	base, _, _ := startExample(t)
	c := dial(t, wsURL(base, "/ws/echo"))
	for _, m := range []struct {
		typ  int
		data []byte
	}{{gorilla.TextMessage, []byte("text ✓")}, {gorilla.BinaryMessage, []byte{0, 255, 1}}} {
		c.WriteMessage(m.typ, m.data)
		typ, p, err := c.ReadMessage()
		if err != nil || typ != m.typ || !bytes.Equal(p, m.data) {
			t.Fatalf("echo: %d %q %v", typ, p, err)
		}
	}
}

func TestProtectedRoutes(t *testing.T) {
	base, _, _ := startExample(t)
	resp, err := http.Get(base + "/api/stats")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stats without token: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/stats", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stats with token: %v %v", err, resp)
	}
	resp.Body.Close()
	if _, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/stats"), nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("feed without token: %v", err)
	}
	c := dial(t, wsURL(base, "/ws/stats?access_token=t0ken"))
	_, p, err := c.ReadMessage()
	if err != nil || !strings.Contains(string(p), "chat_members") {
		t.Fatalf("feed: %q %v", p, err)
	}
}

// runMain runs the example's main in a process of its own with args, and
// returns its combined output and exit code.
func runMain(t *testing.T, args string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainEnv+"="+args, "COLIBRI_ADDR=127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		out, code := runMain(t, arg)
		if code != 0 || !strings.Contains(out, "Usage of example") || !strings.Contains(out, "-addr") {
			t.Errorf("example %s: exit %d, output:\n%s", arg, code, out)
		}
	}
	if out, code := runMain(t, "-no-such-flag"); code == 0 || !strings.Contains(out, "-no-such-flag") {
		t.Errorf("example -no-such-flag: exit %d, output:\n%s", code, out)
	}
}

func TestHealthAndPage(t *testing.T) {
	base, _, _ := startExample(t)
	for path, want := range map[string]string{
		"/healthz":       "ok",
		"/":              "colibri chat",
		"/static/app.js": "WebSocket",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %.60q", path, resp.StatusCode, b)
		}
		if path != "/" {
			continue
		}
		// The page says what it is and links to the other routes.
		for _, want := range []string{"example server of", `href="/ws/echo"`, `href="/metrics"`, `href="/healthz"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("the page lacks %s", want)
			}
		}
	}
}

func TestRunFlagsAndEnv(t *testing.T) {
	t.Setenv("COLIBRI_ADDR", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := run(ctx, []string{"-token", "x"}); err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run(ctx, []string{"-no-such-flag"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

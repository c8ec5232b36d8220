package app_test

// Review of the HTTP side of the opening handshake at MaxConnections:
// raw requests on a loopback socket against a full App.

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/middleware"
)

// reviewHSRoundTrip sends req on a new connection to addr and returns the
// response with its body read.
func reviewHSRoundTrip(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
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

func reviewHSUpgrade(addr, path, extra string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + extra + "\r\n"
}

// reviewHSFull starts an App of r with MaxConnections 1 and fills it.
func reviewHSFull(t *testing.T, h http.Handler) string {
	t.Helper()
	_, base, _ := start(t, h, app.Config{MaxConnections: 1})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return strings.TrimPrefix(base, "http://")
}

// A full App answers 503 "too many WebSocket connections; try again
// later" with Retry-After to every request that carries the Upgrade
// fields, before routing: also to one for a path that has no ws route
// (which gets 404, or the HTTP route's answer, when the App is not full)
// and to a handshake the route would refuse for good (426 for version 8).
// The client is told to come back for a WebSocket that will never be
// there; only upgrades that could take a place should get the 503.
func TestHandshakeCornerFullAppRefusesOnlyWhatCouldTakeAPlace(t *testing.T) {
	addr := reviewHSFull(t, newRouter())
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no route", reviewHSUpgrade(addr, "/nowhere", ""), http.StatusNotFound},
		{"an HTTP route", reviewHSUpgrade(addr, "/healthz", ""), http.StatusOK},
		{"version 8", strings.Replace(reviewHSUpgrade(addr, "/echo", ""), "Version: 13", "Version: 8", 1), http.StatusUpgradeRequired},
	} {
		resp, body := reviewHSRoundTrip(t, addr, tc.req)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %q Retry-After %q, want %d", tc.name, resp.StatusCode, body, resp.Header.Get("Retry-After"), tc.status)
		}
	}
}

// docs/routing.md, "The two-phase upgrade", step 3: the 503 "if the
// application is at MaxConnections or the server is stopping, answered
// here, so that middleware such as Log sees it". An upgrade request that
// arrives while the App is full gets its 503 from App.ServeHTTP, before
// the router and its middleware: Log writes no line for it. Only the
// upgrades that passed that first check together and lose the race for
// the last place are answered inside the middleware.
func TestHandshakeCornerFullAppsRefusalIsNotSeenByLog(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	r := newRouter()
	r.Use(middleware.Log(slog.New(slog.NewJSONHandler(reviewHSLocked{&mu, &buf}, nil))))
	addr := reviewHSFull(t, r)
	mu.Lock()
	buf.Reset() // the first connection's line
	mu.Unlock()

	resp, body := reviewHSRoundTrip(t, addr, reviewHSUpgrade(addr, "/echo", ""))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("%d %q, want 503", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), `"status":503`) {
		t.Errorf("middleware.Log logged %q for the 503", buf.String())
	}
}

type reviewHSLocked struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l reviewHSLocked) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// logLines parses the JSON lines written to logs.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.Lines(logs) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not the app's JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// findLine returns the first line with every attribute of want (compared
// as text; "*" stands for any value), or nil.
func findLine(lines []map[string]any, want map[string]string) map[string]any {
next:
	for _, l := range lines {
		for k, v := range want {
			got, ok := l[k]
			if !ok {
				continue next
			}
			if s, _ := got.(string); v != "*" && !strings.Contains(s, v) {
				continue next
			}
		}
		return l
	}
	return nil
}

// dialAndRead opens a WebSocket to url and returns the close code the
// server ends it with.
func dialAndRead(t *testing.T, url string) int {
	t.Helper()
	c, _, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	ce, ok := err.(*gorilla.CloseError)
	if !ok {
		t.Fatalf("%s: want a close frame, got %v", url, err)
	}
	return ce.Code
}

// One logger: app.Config.Logger receives the connections' handler failures
// and panics, and the lines of Log and Recover made with a nil logger,
// without being passed to the router or the middleware.
func TestConfigLoggerReachesConnectionsAndMiddleware(t *testing.T) {
	logs := &testlog.Buffer{}
	r := router.New()
	r.Use(middleware.RequestID, middleware.Log(nil), middleware.Recover(nil))
	r.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("http kaboom") })
	router.WS(r, "/ws/fail", nil, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		return errors.New("ws boom")
	})
	router.WS(r, "/ws/panic", nil, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		panic("ws kaboom")
	})
	_, base, stop := start(t, r, app.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})

	resp, err := http.Get(base + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("GET /panic: %d, want 500 from Recover", resp.StatusCode)
	}
	if code := dialAndRead(t, ws(base, "/ws/fail")); code != gorilla.CloseInternalServerErr {
		t.Fatalf("/ws/fail closed with %d, want 1011", code)
	}
	if code := dialAndRead(t, ws(base, "/ws/panic")); code != gorilla.CloseInternalServerErr {
		t.Fatalf("/ws/panic closed with %d, want 1011", code)
	}
	if err := stop(); err != nil { // waits for the connections' last lines
		t.Fatal(err)
	}

	lines := logLines(t, logs.String())
	for name, want := range map[string]map[string]string{
		"Recover's panic line":       {"msg": "panic", "panic": "http kaboom", "path": "/panic", "stack": "*"},
		"Log's request line":         {"msg": "request", "path": "/panic", "status": "*"},
		"Log's line for the upgrade": {"msg": "request", "path": "/ws/fail", "upgrade": "accepted"},
		"the handler's failure":      {"route": "/ws/fail", "err": "ws boom"},
		"the handler's panic":        {"route": "/ws/panic", "panic": "ws kaboom", "stack": "*"},
	} {
		if findLine(lines, want) == nil {
			t.Errorf("%s %v is not in the app's log:\n%s", name, want, logs.String())
		}
	}
}

// A logger given to a route, or to a middleware, still wins over the
// application's.
func TestExplicitLoggersWinOverConfigLogger(t *testing.T) {
	appLogs, routeLogs, mwLogs := &testlog.Buffer{}, &testlog.Buffer{}, &testlog.Buffer{}
	r := router.New()
	r.Use(middleware.Log(slog.New(slog.NewJSONHandler(mwLogs, nil))))
	router.WS(r, "/ws/fail", nil, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		return errors.New("ws boom")
	}, router.WithConfig(wsconn.Config{Logger: slog.New(slog.NewJSONHandler(routeLogs, nil))}))
	_, base, stop := start(t, r, app.Config{Logger: slog.New(slog.NewJSONHandler(appLogs, nil))})
	if code := dialAndRead(t, ws(base, "/ws/fail")); code != gorilla.CloseInternalServerErr {
		t.Fatalf("/ws/fail closed with %d, want 1011", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if findLine(logLines(t, routeLogs.String()), map[string]string{"route": "/ws/fail", "err": "ws boom"}) == nil {
		t.Errorf("the route's logger did not get the handler's failure; it has:\n%s", routeLogs)
	}
	if findLine(logLines(t, mwLogs.String()), map[string]string{"msg": "request", "path": "/ws/fail"}) == nil {
		t.Errorf("Log's own logger did not get the request line; it has:\n%s", mwLogs)
	}
	for _, l := range logLines(t, appLogs.String()) {
		if l["msg"] == "request" || l["err"] != nil {
			t.Errorf("the app's logger got a line meant for another: %v", l)
		}
	}
}

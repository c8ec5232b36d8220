package middleware_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvddRequestLines returns the "request" lines logged so far.
func rvddRequestLines(buf *rvEcoLockedBuf) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	return lines
}

// Log's godoc: "duration: time spent in the rest of the chain. For an
// accepted upgrade this ends at the decision: the session that follows is
// not counted." True inside the router (r.Use); docs/http2.md says
// wrappers in front of the router see an HTTP/2 WebSocket "as one long
// request". With Log in front of the router, over HTTP/2, the request line
// comes only when the WebSocket ends, and its duration is the session's.
func TestLogInFrontOfRouterOverH2LogsAtSessionEnd(t *testing.T) {
	var buf rvEcoLockedBuf
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	release := make(chan struct{})
	r := router.New(router.WithConfig(wsconn.Config{Logger: slog.New(slog.DiscardHandler)}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.WriteText(ctx, "hi"); err != nil {
			return err
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	srv, ln, pool := h2test.Server(t, middleware.Log(logger)(r))
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	client := h2test.NewClient(pool)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _ = r.Shutdown(ctx)
		client.Close()
		_ = srv.Close()
		<-served
	}()

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	s, _, err := client.Dial(ctx, "https://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	op, p, err := s.ReadMessage()
	if err != nil || op != ws.OpText || string(p) != "hi" {
		t.Fatalf("first message: %v %q %v", op, p, err)
	}
	// The session is open: the handler has written and waits.
	const held = 300 * time.Millisecond
	time.Sleep(held) // the session's length, not a synchronisation
	if lines := rvddRequestLines(&buf); len(lines) != 0 {
		t.Fatalf("a request line while the WebSocket is open: %v", lines)
	}
	close(release)
	if _, _, err := s.ReadMessage(); err == nil {
		t.Fatal("no CLOSE after the handler returned")
	}
	var line map[string]any
	for deadline := time.Now().Add(guard); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if lines := rvddRequestLines(&buf); len(lines) > 0 {
			line = lines[0]
			break
		}
	}
	if line == nil {
		t.Fatalf("no request line after the session: %q", buf.String())
	}
	if line["upgrade"] != "accepted" || line["status"] != float64(200) {
		t.Errorf("logged upgrade=%v status=%v, want accepted 200", line["upgrade"], line["status"])
	}
	if d, _ := line["duration"].(float64); time.Duration(d) < held {
		t.Errorf("duration %v, want at least the session's %v", time.Duration(d), held)
	}
}

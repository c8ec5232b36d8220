package middleware_test

// The stock middleware in front of a colibri router, outside it (as chi
// middleware in front of a mounted router, say), through a real loopback
// socket and a gorilla client.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvEcoLockedBuf is a log destination safe for the server's goroutines.
type rvEcoLockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *rvEcoLockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *rvEcoLockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Log's godoc: status is "101 when a ws route accepted an upgrade", and
// upgrade is "accepted" for it; the package doc says each middleware
// "works with any router built on net/http". With RequestID and Log as
// chi middleware in front of a mounted colibri router, an upgrade the ws
// route accepted and colibri completed must be logged as accepted with
// 101, and the handler must see the request id.
func TestLogOutsideTheRouterLogsTheAcceptedUpgrade(t *testing.T) {
	var buf rvEcoLockedBuf
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	ids := make(chan string, 1)
	r := router.New(router.WithConfig(wsconn.Config{Logger: slog.New(slog.DiscardHandler)}))
	router.WS(r, "/api/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		id := middleware.RequestIDFrom(ctx)
		ids <- id
		return nil
	})
	cr := chi.NewRouter()
	cr.Use(middleware.RequestID, middleware.Log(logger), middleware.Recover(logger))
	cr.Mount("/api", r)
	srv := httptest.NewServer(cr)
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _ = r.Shutdown(ctx)
	}()

	c, resp, err := gorilla.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case id := <-ids:
		if id == "" || id != resp.Header.Get("X-Request-Id") {
			t.Errorf("handler's request id %q, 101's X-Request-ID %q", id, resp.Header.Get("X-Request-Id"))
		}
	case <-time.After(guard):
		t.Fatal("handler never ran")
	}
	_ = c.SetReadDeadline(time.Now().Add(guard))
	_, _, _ = c.ReadMessage() // the handler's CLOSE
	// Log writes its line when the router's ServeHTTP returns, after the
	// handshake, which may come after the handler ended.
	var line map[string]any
	for deadline := time.Now().Add(guard); line == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
				line = m
			}
		}
	}
	if line == nil {
		t.Fatalf("no request line in %q", buf.String())
	}
	if line["upgrade"] != "accepted" || line["status"] != float64(101) {
		t.Errorf("Log outside the router logged upgrade=%v status=%v for an accepted WebSocket, want accepted 101", line["upgrade"], line["status"])
	}
}

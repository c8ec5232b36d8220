package middleware_test

// Helpers shared by the test files of package middleware_test (the
// helpers of package middleware are in helpers_test.go).

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/router"
)

// serveOn serves r with an http.Server that logs nothing on every
// listener in lns; the cleanup shuts the router and the server down.
func serveOn(t *testing.T, r *router.Router, lns ...net.Listener) {
	t.Helper()
	srv := &http.Server{Handler: r, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	for _, ln := range lns {
		go srv.Serve(ln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _ = r.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	})
}

// rawExchange sends req on a fresh connection and returns the response,
// its body read in full (or up to the error that ended it).
func rawExchange(t *testing.T, addr, req string) (*http.Response, string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// upgradeHeaders are the header lines of a valid WebSocket upgrade.
const upgradeHeaders = "Connection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

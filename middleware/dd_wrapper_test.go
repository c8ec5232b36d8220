package middleware_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvddStatusWriter records the status, the way the package doc's
// "Writing middleware" describes, but without an Unwrap method.
type rvddStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *rvddStatusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func rvddStatusMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&rvddStatusWriter{ResponseWriter: w}, r)
	})
}

// middleware/doc.go, "Writing middleware": a status-recording wrapper
// needs an Unwrap method so that ResponseController reaches Hijack;
// "colibri's router needs none of that, since it hijacks only after the
// middleware chain has returned". That holds in r.Use. In front of the
// router (chi middleware around a mounted router, as the package doc's
// "works with any router built on net/http" invites) the router hijacks
// through the wrapper it was given: without Unwrap the upgrade fails with
// 500.
func TestWrapperWithoutUnwrapInFrontOfRouter(t *testing.T) {
	newRouter := func() *router.Router {
		r := router.New(router.WithConfig(wsconn.Config{Logger: slog.New(slog.DiscardHandler)}))
		router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			return nil
		})
		return r
	}
	dial := func(h http.Handler) (int, error) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		d := gorilla.Dialer{HandshakeTimeout: guard}
		c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
		if c != nil {
			c.Close()
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, err
	}

	inside := newRouter()
	inside.Use(rvddStatusMiddleware)
	if status, err := dial(inside); status != http.StatusSwitchingProtocols {
		t.Fatalf("wrapper in r.Use: status %d, %v; want 101", status, err)
	}
	if status, _ := dial(rvddStatusMiddleware(newRouter())); status != http.StatusInternalServerError {
		t.Errorf("wrapper without Unwrap in front of the router: status %d, want 500", status)
	}
}

package interop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// ixApp is the test app (testApp, with its observer and closed) serving
// the review's own routes; each handler's in.Err() after its loop is kept
// under the connection's ?id.
type ixApp struct {
	*testApp
	errMu sync.Mutex
	errs  map[string]chan error
}

type ixSession = wsconn.Session[string]

// ixRoute is one route of an ixApp.
type ixRoute struct {
	path    string
	cfg     wsconn.Config
	handler func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error
	opts    []router.Option
}

// startIxApp runs routes like startApp runs its own; tweak may change the
// app.Config.
func startIxApp(t *testing.T, routes []ixRoute, tweak func(*app.Config)) *ixApp {
	t.Helper()
	a := &ixApp{testApp: &testApp{chat: &chatRooms{}, logs: &testlog.Buffer{}, ended: map[string]chan wsconn.CloseInfo{}},
		errs: map[string]chan error{}}
	logger := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := router.New()
	for _, rt := range routes {
		cfg := rt.cfg
		cfg.Logger, cfg.Observer = logger, a.testApp
		h := rt.handler
		opts := append([]router.Option{router.WithAnyOrigin(), router.WithConfig(cfg)}, rt.opts...)
		router.WS(r, rt.path, ixID, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
			err := h(ctx, in, out, s)
			a.errChan(s.Value) <- in.Err()
			return err
		}, opts...)
	}
	cfg := app.Config{Addr: "127.0.0.1:0", Logger: logger, NoSignals: true, ShutdownTimeout: 10 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	addr := make(chan net.Addr, 1)
	cfg.OnListen = func(x net.Addr) { addr <- x }
	srv := app.New(r, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	a.stop, a.done = cancel, make(chan error, 1)
	go func() { a.done <- srv.Run(ctx) }()
	select {
	case x := <-addr:
		a.base = "ws://" + x.String()
	case err := <-a.done:
		t.Fatalf("test app: %v", err)
	}
	t.Cleanup(func() {
		if err := a.shutdown(); err != nil {
			t.Errorf("test app: %v", err)
		}
	})
	return a
}

func (a *ixApp) errChan(id string) chan error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	ch, ok := a.errs[id]
	if !ok {
		ch = make(chan error, 1)
		a.errs[id] = ch
	}
	return ch
}

// inErr waits for the handler of connection id to end its loop and
// returns in.Err().
func (a *ixApp) inErr(t *testing.T, id string) error {
	t.Helper()
	select {
	case err := <-a.errChan(id):
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("handler of %s did not end; logs:\n%s", id, a.logs)
		return nil
	}
}

// ixEcho echoes every message whole.
func ixEcho(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// ixStream echoes every message through a Writer, chunk bytes per Write.
func ixStream(chunk int) func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
		for m := range in.Messages(0) {
			w, err := out.Writer(ctx, m.Kind)
			if err != nil {
				return err
			}
			for p := m.Payload; len(p) > 0; {
				n := min(chunk, len(p))
				if _, err := w.Write(p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		return in.Err()
	}
}

// ixGreet says "hi", then echoes.
func ixGreet(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
	if err := out.WriteText(ctx, "hi"); err != nil {
		return err
	}
	return ixEcho(ctx, in, out, s)
}

// ixReturn returns err once the first message arrived (or the loop ended).
func ixReturn(err error) func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
		for range in.Messages(0) {
			return err
		}
		return in.Err()
	}
}

var errIxFailed = errors.New("the handler failed")

// ixID makes the connection's ?id its session value.
func ixID(req *http.Request) (string, router.Decision) {
	return req.URL.Query().Get("id"), router.Upgrade(nil)
}

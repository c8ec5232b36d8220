package wsconn_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/wsconn"
)

// r2NilErr is an error type whose methods use their receiver: a typed nil
// pointer of it panics in Error.
type r2NilErr struct{ msg string }

func (e *r2NilErr) Error() string { return e.msg }

// r2PickyIs is an error whose Is method assumes the target's type, as
// careless code does: it panics for any other target.
type r2PickyIs struct{ code int }

func (e r2PickyIs) Error() string        { return "picky" }
func (e r2PickyIs) Is(target error) bool { return target.(r2PickyIs).code == e.code }

// TestCornerTaskErrorWhoseMethodsPanicIsATaskPanic: closing.md says an error
// returned by a task whose own methods panic counts as a panic, and a task
// panic closes with 1011 "internal error" and logs "connection task
// panicked" once (observability.md). The handler, which waits for its
// context and returns nil, changes nothing.
func TestCornerTaskErrorWhoseMethodsPanicIsATaskPanic(t *testing.T) {
	for name, taskErr := range map[string]func() error{
		"typed-nil-Error": func() error { var e *r2NilErr; return e },
		"panicking-Is":    func() error { return r2PickyIs{code: 7} },
	} {
		t.Run(name, func(t *testing.T) {
			var log testlog.Buffer
			done := make(chan error, 1)
			cfg := &wsconn.Config{PingInterval: -1, Logger: slog.New(slog.NewTextHandler(&log, nil))}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if err := s.Go(func(context.Context) error { return taskErr() }); err != nil {
					return err
				}
				<-ctx.Done()
				done <- context.Cause(ctx)
				return nil
			})
			c := dialRaw(t, url)
			reason := c.expectClose(frames.CloseInternalError)
			if reason != "internal error" {
				t.Errorf("reason %q, want \"internal error\"", reason)
			}
			if cause := waitWithin(t, done, 3*time.Second, "the handler"); cause == nil {
				t.Error("the handler's context ended without a cause")
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseInternalError, ""))
			c.expectEOF()
			deadline := time.Now().Add(2 * time.Second)
			for !strings.Contains(log.String(), "connection task panicked") && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := strings.Count(log.String(), "connection task panicked"); n != 1 {
				t.Errorf("\"connection task panicked\" logged %d times, want 1; log:\n%s", n, log.String())
			}
			if strings.Contains(log.String(), "connection task failed") {
				t.Errorf("the panic was also logged as a failure; log:\n%s", log.String())
			}
		})
	}
}

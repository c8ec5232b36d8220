package wsconn_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/wsconn"
)

// reviewCBChildEnv names, in the child process a test starts, the case
// it serves.
const reviewCBChildEnv = "COLIBRI_REVIEW_CB_CHILD"

// reviewCBWrap is an ordinary wrapping error type. A function that
// returns a nil *reviewCBWrap as an error returns a non-nil error (the
// "typed nil" mistake) whose Unwrap dereferences nil.
type reviewCBWrap struct{ err error }

func (w *reviewCBWrap) Error() string { return "wrapped: " + w.err.Error() }
func (w *reviewCBWrap) Unwrap() error { return w.err }

func reviewCBTypedNil() error {
	var e *reviewCBWrap
	return e
}

// reviewCBChild runs, in the child process, one connection whose
// application code makes colibri panic in the connection's goroutines,
// and returns after the client saw the connection end.
func reviewCBChild(t *testing.T, which string) {
	var handler handlerFunc
	switch which {
	case "handler-typed-nil":
		handler = func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
			return reviewCBTypedNil()
		}
	case "task-typed-nil":
		handler = func(ctx context.Context, in *wsconn.Inbound, _ *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			_ = s.Go(func(context.Context) error { return reviewCBTypedNil() })
			<-ctx.Done()
			return nil
		}
	default:
		t.Fatalf("unknown case %q", which)
	}
	url, _ := testServer(t, nil, handler)
	c := dialGorilla(t, url)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, int(wsconn.CloseInternalError)) {
		t.Errorf("the client read %v, want a CLOSE with 1011", err)
	}
	time.Sleep(200 * time.Millisecond)
}

// reviewCBRunChild runs the test named test in a child process with the
// case which, and fails when the child does not exit cleanly.
func reviewCBRunChild(t *testing.T, test, which string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), reviewCBChildEnv+"="+which)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: the process went down: %v\n%.900s", which, err, out)
	}
}

// TestCallbackTypedNilErrorDoesNotCrash: docs/closing.md promises "A
// panic never takes the process down: colibri recovers it wherever it
// happens in the connection's goroutines", and a handler or task error
// "closes with 1011 and is logged once". A handler (or an s.Go task) that
// returns a typed nil error (a nil *T in a non-nil error) makes colibri's
// own errors.Is / errors.As calls panic in (*T).Unwrap, in the closing,
// past the recover of the handler or the task; the error's methods are
// now called under that recover (vetted), and the panic closes with 1011.
func TestCallbackTypedNilErrorDoesNotCrash(t *testing.T) {
	if which := os.Getenv(reviewCBChildEnv); which != "" {
		reviewCBChild(t, which)
		return
	}
	for _, which := range []string{"handler-typed-nil", "task-typed-nil"} {
		t.Run(which, func(t *testing.T) {
			reviewCBRunChild(t, "TestCallbackTypedNilErrorDoesNotCrash", which)
		})
	}
}

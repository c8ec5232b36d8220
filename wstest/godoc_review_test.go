package wstest_test

// Checks of what the doc comments of package wstest promise.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// gdGoneServer serves a handler that returns at once, under a CloseTimeout
// so short that the server closes the transport right after its CLOSE
// 1000 when the client does not answer; ended is closed when the session
// is over and the transport closed.
func gdGoneServer(t *testing.T, memory bool) (*wstest.Server, <-chan struct{}) {
	ended := make(chan struct{}, 1)
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil
	}, &wstest.HandlerOptions{Config: &wsconn.Config{Logger: quiet, CloseTimeout: time.Millisecond}})
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		ended <- struct{}{}
	})
	if memory {
		return wstest.NewMemoryServer(t, wrapped), ended
	}
	return wstest.NewServer(t, wrapped), ended
}

// Client.Close: "sends a CLOSE with 1000 unless one was sent already,
// reads past any data the server still sends until the server's CLOSE, and
// waits for the server to close the transport. The test fails if the
// server does not answer within Timeout"; NewMemoryServer: "Each direction
// of a connection buffers up to 1 MiB, as a loopback socket does". When
// the server has already sent its CLOSE and closed the transport (its
// closing handshake timed out), Close on a loopback client reads that
// CLOSE and passes; on an in-memory client, writing the client's CLOSE
// fails at once (the pipe refuses writes once the peer closed, where TCP
// takes them) and Close fails the test although the server's CLOSE is
// there to read.
func TestGodocCloseAfterTheServerHungUp(t *testing.T) {
	for _, memory := range []bool{false, true} {
		name := "loopback"
		if memory {
			name = "memory"
		}
		t.Run(name, func(t *testing.T) {
			srv, ended := gdGoneServer(t, memory)
			got := failure(t, func(tb testing.TB) {
				c := srv.Dial(tb, "/", nil)
				waitFor(t, "the server to hang up", ended)
				c.Close()
			})
			if got != "" {
				t.Fatalf("Close after the server's CLOSE and hang-up failed the test: %s", got)
			}
		})
	}
}

// Client.ExpectClose in the same situation: it reads the server's CLOSE,
// its echo is best effort, and it passes, in memory and over loopback.
func TestGodocExpectCloseAfterTheServerHungUp(t *testing.T) {
	for _, memory := range []bool{false, true} {
		name := "loopback"
		if memory {
			name = "memory"
		}
		t.Run(name, func(t *testing.T) {
			srv, ended := gdGoneServer(t, memory)
			got := failure(t, func(tb testing.TB) {
				c := srv.Dial(tb, "/", nil)
				waitFor(t, "the server to hang up", ended)
				c.ExpectClose(1000, "")
			})
			if got != "" {
				t.Fatalf("ExpectClose after the server's CLOSE and hang-up failed the test: %s", got)
			}
		})
	}
}

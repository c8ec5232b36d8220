package wsclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// docs/client.md ("What the client checks and sends"): "A server that
// never answered (our CLOSE went unanswered for CloseTimeout, or
// keep-alive gave up on it) is not waited for again: the client reads for
// at most 50 ms more, for a CLOSE that crossed its own, then closes TCP":
// Run returns CloseTimeout and at most 50 ms (and scheduling) after its
// CLOSE.
func TestCornerClientUnansweredCloseClosesAtOnce(t *testing.T) {
	const closeTimeout = 200 * time.Millisecond
	addr, _, sawClose, runDone := advSilentServer(t, 3*time.Second)
	_ = wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		return nil
	}, advOpts(wsconn.Config{CloseTimeout: closeTimeout}))
	end := time.Now()
	close(runDone)
	if d := end.Sub(after(t, sawClose, "the CLOSE")); d < closeTimeout || d > closeTimeout+250*time.Millisecond {
		t.Fatalf("Run returned %v after its CLOSE went out; want CloseTimeout (%v) and at most 50 ms more", d, closeTimeout)
	}
}

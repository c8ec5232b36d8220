package wsconn_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// docs/closing.md: "With Config.IdleTimeout set, a peer that sends no
// data frame for that long is closed with 1001 idle timeout", the one
// exception a busy loop body whose kept data reached ReadAhead. As
// TestTimeoutsAfterReadersBreakMidHugeFrame, with compression: a Readers
// body reads the head of a compressed message whose one frame is far
// over ReadAhead and breaks out; the handler waits on its context; the
// peer sent 8 KiB of the frame and went silent. No body is busy: the
// timeout must strike.
func TestIdleAfterReadersBreakMidHugeCompressedFrame(t *testing.T) {
	ended := make(chan error, 1)
	cfg := wsconn.Config{MaxMessageSize: 64 << 20, PingInterval: -1, IdleTimeout: 200 * time.Millisecond, CloseTimeout: 300 * time.Millisecond,
		Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}
	url := cmpServe(t, cmpRoute{path: "/c", cfg: cfg, h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			_, _ = io.ReadFull(r, make([]byte, 10))
			break
		}
		select {
		case <-ctx.Done():
			ended <- context.Cause(ctx)
		case <-time.After(2 * time.Second):
			ended <- nil
		}
		return nil
	}})
	p := newCmpDeflater().message(cmpLetters(3, 3<<20))
	c := cmpDial(t, url+"/c", "permessage-deflate")
	if len(p) < 4*wsconn.ReadAhead {
		t.Fatalf("compressed to %d bytes only", len(p))
	}
	var hb [frames.MaxHeaderSize]byte
	k := frames.PutHeader(hb[:], frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv1, Masked: true, Length: int64(len(p))})
	c.write(hb[:k])
	if _, err := c.nc.Write(p[:8<<10]); err != nil { // zero mask: payload as is
		h, q := c.read()
		t.Fatalf("write: %v; server sent %v %q", err, h.Op, q)
	}
	err := waitFor(t, ended, "the handler")
	if !errors.Is(err, wsconn.ErrIdleTimeout) {
		t.Fatalf("the handler's context after a silent peer: %v, want %v within 2 s", err, wsconn.ErrIdleTimeout)
	}
	c.expectClose(frames.CloseGoingAway)
}

package wsconn_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestDocsAuditMaxFrameSizeBoundsCompressedFramesAsTheyAre: with
// Config.MaxFrameSize set, the compressed bytes of a frame are held to
// MaxFrameSize itself, not to twice it plus 1 KiB (as the bound on a
// message's compressed bytes is): a compressed frame a little over
// MaxFrameSize closes with 1009, through Frames as through Messages,
// even when it inflates to a few bytes. A frame within it passes.
func TestDocsAuditMaxFrameSizeBoundsCompressedFramesAsTheyAre(t *testing.T) {
	const maxFrame = 200
	cfg := wsconn.Config{MaxFrameSize: maxFrame, Compression: wsconn.Compression{Enabled: true}}
	frameSizes := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for f := range in.Frames() {
			if err := out.WriteText(ctx, fmt.Sprint(len(f.Payload)), wsconn.Uncompressed); err != nil {
				return err
			}
		}
		return in.Err()
	}
	url := cmpServe(t,
		cmpRoute{path: "/frames", cfg: cfg, h: frameSizes},
		cmpRoute{path: "/messages", cfg: cfg, h: sizesUnder(0)})
	hi := cmpCompress([]byte("hi"))
	// Empty stored blocks (5 bytes each) pad the compressed bytes.
	within := append(cmpEmptyBlocks((maxFrame-len(hi))/5), hi...)
	over := append(cmpEmptyBlocks(1+(maxFrame-len(hi))/5), hi...)
	if len(within) > maxFrame || len(over) <= maxFrame || len(over) > 2*maxFrame+1024 {
		t.Fatalf("test set-up: within %d, over %d bytes for a limit of %d", len(within), len(over), maxFrame)
	}
	for _, path := range []string{"/frames", "/messages"} {
		t.Run(path[1:], func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			c.send(frames.OpText, true, frames.Rsv1, within)
			if _, p := readAnswer(t, c); string(p) != "2" && string(p) != "text 2" {
				t.Fatalf("%d compressed bytes under MaxFrameSize %d: answer %q", len(within), maxFrame, p)
			}
			c.send(frames.OpText, true, frames.Rsv1, over)
			c.expectClose(frames.CloseMessageTooBig)
		})
	}
}

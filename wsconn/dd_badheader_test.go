package wsconn_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// docs/architecture.md ("Who reads when") still says: "A frame header that
// breaks the protocol behind kept data is left to a running loop, which
// meets it in order". Since today the background reader fails the
// connection at once (closing.md, TestViolationBehindKeptDataWhileBodyBusy
// in app, for Messages): the 1002 goes out and the busy body's ctx ends
// while the body is still busy, and the running loop then yields the
// message kept before the bad header and ends with the 1002. Checked here
// for Readers and Frames.
func TestBadHeaderBehindKeptDataFailsAtOnce(t *testing.T) {
	for _, kind := range []string{"readers", "frames"} {
		t.Run(kind, func(t *testing.T) {
			busy := make(chan struct{}, 1)
			ctxEnded := make(chan bool, 1)
			after := make(chan string, 1)
			url, _ := testServer(t, &wsconn.Config{CloseTimeout: 300 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
				first := true
				var later []string
				body := func(p string) {
					if !first {
						later = append(later, p)
						return
					}
					first = false
					busy <- struct{}{}
					select {
					case <-ctx.Done():
						ctxEnded <- true
					case <-time.After(3 * time.Second):
						ctxEnded <- false
					}
				}
				if kind == "readers" {
					for _, r := range in.Readers() {
						p, _ := io.ReadAll(r)
						body(string(p))
					}
				} else {
					for f := range in.Frames() {
						body(string(f.Payload))
					}
				}
				after <- fmt.Sprintf("%q %d", later, wsconn.CloseStatus(in.Err()))
				return in.Err()
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("one"))
			waitWithin(t, busy, 3*time.Second, "the busy body")
			b := maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("two"))
			b = append(b, maskedFrame(frames.Header{Op: frames.Opcode(3), Fin: true}, nil)...)
			c.write(b)
			c.expectClose(frames.CloseProtocolError)
			if !waitWithin(t, ctxEnded, 4*time.Second, "the body") {
				t.Errorf("the busy body's ctx did not end within 3 s of the bad header")
			}
			if got, want := waitWithin(t, after, 3*time.Second, "the loop's end"), `["two"] 1002`; got != want {
				t.Errorf("after the body: later messages and Err's code %s, want %s", got, want)
			}
		})
	}
}

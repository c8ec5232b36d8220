package wsconn_test

import (
	"bytes"
	"compress/flate"
	"context"
	"io"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// The compressed case of TestReaderBlockedInAGoroutineWhenTheBodyEnds:
// a Readers body hands the reader of a compressed message to a goroutine
// whose Read waits on the socket for the second fragment when the body
// breaks out. The inflater cannot resume after that interrupted read, so
// the next loop discards the message's rest raw: without context takeover
// the connection goes on (the next message arrives whole), with it the
// peer's compression context is lost and colibri closes with 1011.
func TestReaderInterruptedMidCompressedMessage(t *testing.T) {
	for _, tc := range []struct {
		name, offer string
		takeover    bool
		want        frames.CloseCode
	}{
		{"no takeover", "permessage-deflate; client_no_context_takeover; server_no_context_takeover", false, frames.CloseNormal},
		{"takeover", "permessage-deflate", true, frames.CloseInternalError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan string, 4)
			bodyDone := make(chan struct{})
			cfg := wsconn.Config{PingInterval: -1, CloseTimeout: 300 * time.Millisecond,
				Compression: wsconn.Compression{Enabled: true, ContextTakeover: tc.takeover}}
			url := cmpServe(t, cmpRoute{"/", cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				for _, rd := range in.Readers() {
					started := make(chan struct{})
					go func() {
						b := make([]byte, 2)
						_, _ = io.ReadFull(rd, b)
						close(started)
						_, _ = rd.Read(make([]byte, 16)) // waits for the second fragment
					}()
					<-started
					time.Sleep(50 * time.Millisecond) // the goroutine waits on the socket
					break
				}
				close(bodyDone)
				for m := range in.Messages(0) {
					seen <- m.Text()
				}
				return in.Err()
			}})
			c := cmpDial(t, url+"/", tc.offer)
			var b bytes.Buffer
			fw, _ := flate.NewWriter(&b, flate.BestSpeed)
			_, _ = fw.Write([]byte("ab"))
			_ = fw.Flush()
			first := bytes.Clone(b.Bytes())
			b.Reset()
			_, _ = fw.Write([]byte("cd"))
			_ = fw.Flush()
			rest := b.Bytes()[:b.Len()-4]
			c.send(frames.OpText, false, frames.Rsv1, first)
			waitFor(t, bodyDone, "the body")
			c.send(frames.OpContinuation, true, 0, rest)
			c.send(frames.OpText, true, frames.Rsv1, cmpCompress([]byte("second")))
			if tc.want == frames.CloseNormal {
				if got := waitFor(t, seen, "the next message"); got != "second" {
					t.Fatalf("next message %q, want second", got)
				}
				c.closeNormally()
				return
			}
			c.expectClose(tc.want)
			select {
			case m := <-seen:
				t.Errorf("a message %q after the compression context was lost", m)
			default:
			}
		})
	}
}

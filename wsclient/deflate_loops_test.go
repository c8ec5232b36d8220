package wsclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	coder "github.com/coder/websocket"

	"github.com/colibri-ws/colibri/internal/readloop"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestDeflateClientLoopChangesKeepTheWindow: colibri's client, with
// ContextTakeover on and off, against coder/websocket servers in both
// compression modes (threshold 1 byte, so everything comes compressed)
// and a gorilla/websocket server. A sibling task pipelines 60 messages of
// varied sizes (empty to 70 KB, around the 32 KiB window, text that
// repeats itself at distances up to the window, random bytes), written
// with WriteMessage, a streamed Writer and WritePrepared in turn, while
// the handler reads the echoes with Messages, Frames and Readers in turn.
// Every echo must come back intact: both windows stay in step across
// write methods and loop changes.
func TestDeflateClientLoopChangesKeepTheWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	msgs := make([]messages.Message, 60)
	for i := range msgs {
		n := []int{0, 1, 255, 256, 1000, 20000, 32767, 32768, 40000, 70000}[r.IntN(10)]
		text := i%2 == 0
		msgs[i] = messages.Message{Kind: messages.KindBinary, Payload: cornerPayload(n, text, uint64(i))}
		if text {
			msgs[i].Kind = messages.KindText
		}
		if i%7 == 3 && i > 0 {
			// The previous message again: a match right across the window.
			msgs[i].Payload = msgs[i-1].Payload
			msgs[i].Kind = msgs[i-1].Kind
		}
	}
	servers := []struct {
		name string
		url  string
	}{
		{"coder takeover", cornerEchoCoder(t, coder.CompressionContextTakeover)},
		{"coder no takeover", cornerEchoCoder(t, coder.CompressionNoContextTakeover)},
		{"gorilla", cornerEchoGorilla(t)},
	}
	for _, srv := range servers {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/client takeover %v", srv.name, takeover), func(t *testing.T) {
				o := advOpts(wsconn.Config{FragmentSize: 8192, PingInterval: -1})
				o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: takeover, Threshold: 1}
				err := wsclient.Run(testCtx(t), srv.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
					if e := s.Extensions(); len(e) != 1 || e[0].Name != "permessage-deflate" {
						return fmt.Errorf("negotiated %v", e)
					} else if both := srv.name == "coder takeover" && takeover; both != (len(e[0].Params) == 0) {
						// Context takeover both ways is what this case exercises.
						return fmt.Errorf("negotiated %v", e)
					}
					s.Go(func(ctx context.Context) error {
						wr := rand.New(rand.NewPCG(4, 4))
						for i, m := range msgs {
							var err error
							switch i % 3 {
							case 0:
								err = out.WriteMessage(ctx, m)
							case 1:
								var w io.WriteCloser
								if w, err = out.Writer(ctx, m.Kind); err == nil {
									for p := m.Payload; len(p) > 0 && err == nil; {
										n := min(len(p), 1+wr.IntN(9000))
										_, err = w.Write(p[:n])
										p = p[n:]
									}
									err = errors.Join(err, w.Close())
								}
							case 2:
								err = out.WritePrepared(ctx, wsconn.Prepare(m))
							}
							if err != nil {
								return err
							}
						}
						return nil
					})
					rr := rand.New(rand.NewPCG(6, 6))
					for i, want := range msgs {
						got, err := readloop.One(in, i+1, rr)
						if err != nil {
							return fmt.Errorf("message %d: %w", i, err)
						}
						if got.Kind != want.Kind || !bytes.Equal(got.Payload, want.Payload) {
							return fmt.Errorf("message %d (%v, %d bytes) came back as %v of %d bytes", i, want.Kind, len(want.Payload), got.Kind, len(got.Payload))
						}
					}
					return nil
				}, o)
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

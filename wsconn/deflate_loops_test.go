package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/internal/readloop"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvdLoopEcho echoes every message, reading each with another loop in
// turn (Messages, Frames, Readers in reads of random sizes) and answering
// with WriteMessage, a streamed Writer and WritePrepared in turn.
// Every loop ends after one message, so the inflate window kept across
// messages (peer context takeover) must survive every loop change.
func rvdLoopEcho(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	r := rand.New(rand.NewPCG(5, 5))
	for i := 0; ; i++ {
		m, err := readloop.One(in, i, r)
		if err != nil {
			return in.Err()
		}
		switch (i / 3) % 3 {
		case 0:
			err = out.WriteMessage(ctx, m)
		case 1:
			var w io.WriteCloser
			if w, err = out.Writer(ctx, m.Kind); err == nil {
				for p := m.Payload; len(p) > 0 && err == nil; {
					n := min(len(p), 1+r.IntN(5000))
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
}

// rvdPayloads returns n messages of varied sizes (empty, tiny, around
// the 32 KiB window, over FragmentSize), text that repeats itself at
// distances up to the window and random bytes.
func rvdPayloads(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	sizes := []int{0, 1, 100, 255, 256, 300, 1000, 4096, 20000, 32767, 32768, 40000, 70000}
	base := cmpTempting(seed, 100000)
	out := make([][]byte, n)
	for i := range out {
		size := sizes[r.IntN(len(sizes))]
		if r.IntN(4) == 0 {
			size = r.IntN(60000)
		}
		if r.IntN(5) == 0 {
			out[i] = cmpRandom(seed+uint64(i), size)
			continue
		}
		off := r.IntN(len(base) - size + 1)
		out[i] = append([]byte(nil), base[off:off+size]...)
	}
	return out
}

// TestDeflateLoopChangesKeepTheWindow: with context takeover both
// ways (coder/websocket in CompressionContextTakeover mode against
// colibri with ContextTakeover), and with every other combination of
// takeover, 40 messages of varied sizes go through a handler that reads
// each with another loop (Messages, Frames, Readers) and answers each with
// another write method. The client pipelines its writes while it reads.
// Every echo must come back intact: the peer's window, kept across loops,
// and colibri's own, kept across write methods, stay in step.
func TestDeflateLoopChangesKeepTheWindow(t *testing.T) {
	cfg := func(takeover bool) wsconn.Config {
		return wsconn.Config{FragmentSize: 8192, Compression: wsconn.Compression{Enabled: true, ContextTakeover: takeover, Threshold: 1}}
	}
	url := cmpServe(t,
		cmpRoute{path: "/takeover", cfg: cfg(true), h: rvdLoopEcho},
		cmpRoute{path: "/reset", cfg: cfg(false), h: rvdLoopEcho})
	msgs := rvdPayloads(3, 40)
	for i := 0; i < len(msgs); i += 2 {
		msgs[i] = bytes.ToValidUTF8(msgs[i], []byte("?")) // sent as text
	}
	check := func(t *testing.T, i int, typ int, got []byte, err error) {
		t.Helper()
		wantTyp := 1 + i%2 // text for even i
		if err != nil || typ != wantTyp || !bytes.Equal(got, msgs[i]) {
			t.Fatalf("message %d (%d bytes): got type %d, %d bytes, %v", i, len(msgs[i]), typ, len(got), err)
		}
	}
	for _, path := range []string{"/takeover", "/reset"} {
		for _, mode := range []coder.CompressionMode{coder.CompressionContextTakeover, coder.CompressionNoContextTakeover} {
			t.Run(fmt.Sprint("coder ", path, " ", mode), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				defer cancel()
				c, resp, err := coder.Dial(ctx, url+path, &coder.DialOptions{CompressionMode: mode, CompressionThreshold: 1})
				if err != nil {
					t.Fatal(err)
				}
				ext := resp.Header.Get("Sec-WebSocket-Extensions")
				both := path == "/takeover" && mode == coder.CompressionContextTakeover
				if !strings.HasPrefix(ext, "permessage-deflate") || both == strings.Contains(ext, "no_context_takeover") {
					t.Fatalf("negotiated %q: not what this case is to exercise", ext)
				}
				defer c.CloseNow()
				c.SetReadLimit(1 << 20)
				written := make(chan error, 1)
				go func() {
					for i, m := range msgs {
						typ := coder.MessageBinary
						if i%2 == 0 {
							typ = coder.MessageText
						}
						if err := c.Write(ctx, typ, m); err != nil {
							written <- err
							return
						}
					}
					written <- nil
				}()
				for i := range msgs {
					typ, got, err := c.Read(ctx)
					check(t, i, int(typ), got, err)
				}
				if err := <-written; err != nil {
					t.Fatal(err)
				}
				if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
			})
		}
		t.Run("gorilla "+path, func(t *testing.T) {
			c := dialGorillaDeflate(t, url+path)
			_ = c.SetReadDeadline(time.Now().Add(4 * time.Second))
			c.EnableWriteCompression(true)
			written := make(chan error, 1)
			go func() {
				for i, m := range msgs {
					typ := gorilla.BinaryMessage
					if i%2 == 0 {
						typ = gorilla.TextMessage
					}
					if err := c.WriteMessage(typ, m); err != nil {
						written <- err
						return
					}
				}
				written <- nil
			}()
			for i := range msgs {
				typ, got, err := c.ReadMessage()
				check(t, i, typ, got, err)
			}
			if err := <-written; err != nil {
				t.Fatal(err)
			}
		})
	}
}

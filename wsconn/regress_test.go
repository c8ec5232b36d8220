package wsconn_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/internal/memconn"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

func TestLoopEndsAfterCloseWhenPeerIsSilent(t *testing.T) {
	ended := make(chan time.Duration, 1)
	cfg := &wsconn.Config{CloseTimeout: 150 * time.Millisecond}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		start := time.Now()
		if err := out.Close(4000, "done"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		ended <- time.Since(start)
		return nil
	})
	c := dialRaw(t, url) // reads the CLOSE, never answers it
	c.expectClose(4000)
	select {
	case d := <-ended:
		if d > 2*time.Second {
			t.Fatalf("loop ended after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("inbound loop still blocked after Close with a silent peer")
	}
}

func TestNegativePongTimeoutNeverCloses(t *testing.T) {
	cfg := &wsconn.Config{PingInterval: 20 * time.Millisecond, PongTimeout: -1}
	url, _ := testServer(t, cfg, echo)
	c := dialRaw(t, url)
	time.Sleep(200 * time.Millisecond) // several pings, none answered
	c.frame(frames.OpText, true, []byte("still here"))
	for {
		h, p := c.read()
		if h.Op == frames.OpPing {
			continue
		}
		if h.Op != frames.OpText || string(p) != "still here" {
			t.Fatalf("got %v %q", h.Op, p)
		}
		return
	}
}

func TestSecondConcurrentLoopGetsErrBusyReading(t *testing.T) {
	busy := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		started := make(chan struct{})
		s.Go(func(ctx context.Context) error {
			<-started
			for range in.Frames() {
				t.Error("a second loop got a frame")
			}
			busy <- in.Err()
			return nil
		})
		for m := range in.Messages(0) {
			close(started)
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
			<-busy
			busy <- nil
			break
		}
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("one"))
	c.expectClose(frames.CloseNormal)
}

func TestWriteToVanishedPeerMatchesErrClosed(t *testing.T) {
	werr := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done() // the peer vanished
		var err error
		for range 50 {
			if err = out.WriteText(ctx, strings.Repeat("x", 64<<10)); err != nil {
				break
			}
		}
		werr <- err
		return err
	})
	c := dialRaw(t, url)
	c.nc.Close()
	if err := <-werr; !errors.Is(err, wsconn.ErrClosed) {
		t.Fatalf("write after the peer vanished: %v", err)
	}
}

func TestMessagesLimitAboveDefaultsAcceptsOneLargeFrame(t *testing.T) {
	got := make(chan int, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(4 << 20) {
			got <- len(m.Payload)
		}
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpBinary, true, make([]byte, 2<<20)) // one frame, as browsers send
	if n := <-got; n != 2<<20 {
		t.Fatalf("got %d bytes", n)
	}
}

func TestWritePreparedBatchInOrder(t *testing.T) {
	for _, comp := range []bool{false, true} {
		cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: comp, Threshold: 10}}
		var want []string
		var ps []*wsconn.Prepared
		for i := range 100 { // more than one writev's worth
			s := strings.Repeat(string(rune('a'+i%26)), 5+i)
			want = append(want, s)
			ps = append(ps, wsconn.Prepare(textMessage(s)))
		}
		url, _ := testServerAccept(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			n, err := out.WritePreparedBatch(ctx, ps)
			if err == nil && n != len(ps) {
				err = fmt.Errorf("WritePreparedBatch wrote %d of %d without an error", n, len(ps))
			}
			return err
		})
		d := gorilla.Dialer{EnableCompression: comp}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			_, p, err := c.ReadMessage()
			if err != nil || string(p) != w {
				t.Fatalf("compression %v, message %d: %q %v", comp, i, p, err)
			}
		}
		c.Close()
	}
}

// WritePreparedBatch reports, like io.Writer, how many messages went to
// the socket whole when the connection ends in the middle: over a pipe
// (each frame is written only as the client reads it), a client that
// reads 70 of 100 messages, past the first writev of 64, and goes away.
func TestWritePreparedBatchCountsWhatWentOut(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	var ps []*wsconn.Prepared
	for i := range 100 {
		ps = append(ps, wsconn.Prepare(textMessage(fmt.Sprint("m", i))))
	}
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		_ = wsconn.Serve(context.Background(), wsconn.Upgraded{Conn: server}, struct{}{},
			func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				n, err := out.WritePreparedBatch(ctx, ps)
				wrote <- result{n, err}
				return nil
			}, &wsconn.Config{Logger: quietLogger, CloseTimeout: 100 * time.Millisecond})
	}()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	for i := range 70 {
		if _, p := readServerFrame(t, br); string(p) != fmt.Sprint("m", i) {
			t.Fatalf("message %d: %q", i, p)
		}
	}
	client.Close()
	select {
	case r := <-wrote:
		if r.n != 70 || r.err == nil {
			t.Fatalf("WritePreparedBatch = %d, %v; want 70 and an error", r.n, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WritePreparedBatch did not return")
	}
}

// TestLoopsTakeTurnsWithBackgroundReader breaks out of the loop after every
// message and pauses before ranging again: in between, the background
// reader holds the socket and answers PINGs, and each new loop takes the
// socket back from it while it waits, without losing a byte.
func TestLoopsTakeTurnsWithBackgroundReader(t *testing.T) {
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for {
			got := false
			for m := range in.Messages(0) {
				if err := out.WriteMessage(ctx, m); err != nil {
					return err
				}
				got = true
				break
			}
			if !got {
				return in.Err()
			}
			time.Sleep(40 * time.Millisecond) // the background reader's turn
		}
	})
	c := dialRaw(t, url)
	for i := range 5 {
		c.frame(frames.OpPing, true, []byte("p"))
		if h, p := c.read(); h.Op != frames.OpPong || string(p) != "p" {
			t.Fatalf("round %d: got %v %q, want the PONG", i, h.Op, p)
		}
		// The loop starts again while the background reader waits for
		// bytes, and takes the socket from it.
		time.Sleep(80 * time.Millisecond)
		msg := strings.Repeat("m", 10+i*100)
		c.frame(frames.OpText, true, []byte(msg))
		if h, p := c.read(); h.Op != frames.OpText || string(p) != msg {
			t.Fatalf("round %d: got %v %d bytes, want the echo", i, h.Op, len(p))
		}
	}
}

// TestRequestKeptOnlyWhenAsked: Conn.Request is the upgraded request with
// Config.KeepRequest and nil without, while the request's context values
// reach the handler's context either way.
func TestRequestKeptOnlyWhenAsked(t *testing.T) {
	type key struct{}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			g := &group.Group{}
			cfg := &wsconn.Config{KeepRequest: keep, Logger: slog.New(slog.DiscardHandler)}
			seen := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r = r.WithContext(context.WithValue(r.Context(), key{}, "from middleware"))
				u, err := handshake.Accept(w, r, nil)
				if err != nil {
					return
				}
				ctx, err := g.Enter(r.Context())
				if err != nil {
					t.Error(err)
					return
				}
				go wsconn.Serve(ctx, u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					v, _ := ctx.Value(key{}).(string)
					path := "<nil>"
					if req := s.Request(); req != nil {
						path = req.URL.Path
					}
					seen <- v + " " + path
					return nil
				}, cfg)
			}))
			t.Cleanup(srv.Close)
			c := dialRaw(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
			want := "from middleware <nil>"
			if keep {
				want = "from middleware /"
			}
			if got := <-seen; got != want {
				t.Fatalf("handler saw %q, want %q", got, want)
			}
			c.expectClose(frames.CloseNormal)
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := g.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// countingConn counts the reads that reach the transport.
type countingConn struct {
	*memconn.Conn
	reads atomic.Int32
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// A 16 KiB message that arrived whole takes two reads from the transport:
// the header (with the first bytes of the payload) into the idle array,
// then the rest straight into the message's buffer. A message buffer that
// started small and grew cost a third read per message, which showed in
// the 16 KiB echo benchmark.
func TestMessageReadsArrivedFrameInTwoReads(t *testing.T) {
	client, server := memconn.Pipe(0)
	defer client.Close()
	sc := &countingConn{Conn: server}
	got := make(chan int32, 1)
	served := make(chan error, 1)
	go func() {
		served <- wsconn.Serve(context.Background(), wsconn.Upgraded{Conn: sc}, struct{}{},
			func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				for m := range in.Messages(0) {
					got <- sc.reads.Load()
					if len(m.Payload) != 16<<10 {
						return fmt.Errorf("message of %d bytes", len(m.Payload))
					}
					return nil
				}
				return in.Err()
			}, &wsconn.Config{PingInterval: -1, Logger: quietLogger})
	}()
	payload := make([]byte, 16<<10)
	h := frames.Header{Op: frames.OpBinary, Fin: true, Mask: [4]byte{1, 2, 3, 4}}
	if _, err := client.Write(maskedFrame(h, payload)); err != nil {
		t.Fatal(err)
	}
	select {
	case reads := <-got:
		if reads > 2 {
			t.Errorf("the message took %d reads from the transport, want 2", reads)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	_, _ = client.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}) // CLOSE 1000
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

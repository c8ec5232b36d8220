package wsconn_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/race"
	"github.com/colibri-ws/colibri/wsconn"
)

// pingFrame encodes a masked PING carrying n, with a zero mask so that it
// can be built once and patched.
func pingFrame(b []byte, n uint64) []byte {
	b = append(b[:0], 0x89, 0x80|8, 0, 0, 0, 0)
	return binary.BigEndian.AppendUint64(b, n)
}

// A flood of PINGs while the socket is busy costs nothing: colibri keeps
// only the latest unanswered PING's payload (RFC 6455 §5.5.3 allows it),
// so however many arrive, one PONG answers them, with the last payload,
// and nothing is allocated per PING.
func TestPingFloodCoalescesPongs(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	big := make([]byte, 64<<10)
	served := make(chan error, 1)
	go func() {
		served <- wsconn.Serve(context.Background(), wsconn.Upgraded{Conn: server}, struct{}{},
			func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				// Write only: the background reader answers the PINGs
				// while this write holds the socket.
				if err := out.WriteBinary(ctx, big); err != nil {
					return err
				}
				<-ctx.Done()
				return nil
			}, &wsconn.Config{PingInterval: -1, Logger: quietLogger})
	}()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	// Reading the first bytes of the frame header proves the write began:
	// net.Pipe does not buffer, so the server now waits inside it.
	if _, err := br.Peek(2); err != nil {
		t.Fatal(err)
	}

	const pings = 20_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 0, 14)
	for i := range uint64(pings) {
		if _, err := client.Write(pingFrame(buf, i)); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 && !race.Enabled {
		t.Errorf("%d PINGs made the server allocate %d bytes", pings, grew)
	}

	// The message comes whole, then one PONG for all the PINGs read while
	// it was being written. The last PING may still have been on its way
	// through the reader then; if so, its own PONG follows.
	h, p := readServerFrame(t, br)
	if h.Op != frames.OpBinary || len(p) != len(big) {
		t.Fatalf("first frame %v of %d bytes", h.Op, len(p))
	}
	var answered []uint64
	for len(answered) == 0 || answered[len(answered)-1] != pings-1 {
		h, p = readServerFrame(t, br)
		if h.Op != frames.OpPong || len(p) != 8 || len(answered) == 2 {
			t.Fatalf("after the message and PONGs for %v: %v % x, want PONGs up to PING %d", answered, h.Op, p, pings-1)
		}
		answered = append(answered, binary.BigEndian.Uint64(p))
	}
	if len(answered) == 2 && answered[0] != pings-2 {
		t.Fatalf("PONGs for PINGs %v, want the last two", answered)
	}
	// Close; no other PONG may come before the CLOSE.
	if _, err := client.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8}); err != nil {
		t.Fatal(err)
	}
	h, p = readServerFrame(t, br)
	if code, _, _ := frames.ParseClose(p); h.Op != frames.OpClose || code != frames.CloseNormal {
		t.Fatalf("got %v % x, want CLOSE 1000", h.Op, p)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// dialRawSmall is dialRaw with small socket buffers on the client, so that
// a client that stops reading makes the server's writes wait sooner.
func dialRawSmall(t *testing.T, url string) *rawClient {
	t.Helper()
	c, resp := handshakeRawWith(t, smallBufferDialer(), url, nil)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d", resp.StatusCode)
	}
	return c
}

// A peer that floods PINGs and never reads the PONGs fills the socket;
// the PONG that can no longer be written fails after WriteTimeout, and
// the connection ends.
func TestPingFloodFromPeerThatNeverReads(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	ended := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{WriteTimeout: writeTimeout}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		ended <- in.Err()
		return in.Err()
	})
	c := dialRawSmall(t, url)
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		frame := append([]byte{0x89, 0x80 | 125, 0, 0, 0, 0}, make([]byte, 125)...)
		batch := make([]byte, 0, 100*len(frame))
		for range 100 {
			batch = append(batch, frame...)
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for {
			if _, err := c.nc.Write(batch); err != nil {
				return // the server hung up
			}
		}
	}()
	select {
	case err := <-ended:
		if !errors.Is(err, wsconn.ErrWriteTimeout) {
			t.Fatalf("in.Err() = %v, want ErrWriteTimeout", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a peer that never reads its PONGs was not disconnected")
	}
	<-flooding
}

// A frame whose payload trickles in a byte at a time never completes, so
// no data frame arrives: IdleTimeout ends the connection with 1001 however
// long the frame announced.
func TestSlowFrameDripClosedByIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	url, _ := testServer(t, &wsconn.Config{IdleTimeout: idle}, echo)
	c := dialRaw(t, url)
	start := time.Now()
	c.write([]byte{0x82, 0xFE, 0x10, 0x00, 0, 0, 0, 0}) // binary, 4096 bytes announced
	stop := make(chan struct{})
	dripped := c.writeEvery(20*time.Millisecond, []byte{'x'}, stop)
	reason := c.expectClose(frames.CloseGoingAway)
	close(stop)
	<-dripped
	if reason != "idle timeout" {
		t.Fatalf("reason %q", reason)
	}
	if d := time.Since(start); d < idle || d > idle+2*time.Second {
		t.Fatalf("closed after %v, want about %v", d, idle)
	}
}

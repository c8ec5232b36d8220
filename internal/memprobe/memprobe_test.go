package memprobe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

func init() {
	if os.Getenv("COLIBRI_MEMPROBE") != "" {
		runtime.MemProfileRate = 1
	}
}

func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// TestIdle opens COLIBRI_MEMPROBE_CONNS (default 2000) idle connections
// and reports what the server holds for each. With COLIBRI_MEMPROBE_PROFILE
// set to a path it writes the heap profile there too.
func TestIdle(t *testing.T) {
	if os.Getenv("COLIBRI_MEMPROBE") == "" {
		t.Skip("set COLIBRI_MEMPROBE=1 to measure memory per idle connection")
	}
	n := 2000
	if s := os.Getenv("COLIBRI_MEMPROBE_CONNS"); s != "" {
		fmt.Sscan(s, &n)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}

	quiet := slog.New(slog.DiscardHandler)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/echo", nil, echo)
	var h http.Handler = r
	if os.Getenv("COLIBRI_MEMPROBE_SERVER") == "gobwas" {
		h = gobwasEcho()
	}
	a := app.New(h, app.Config{Logger: quiet, NoSignals: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
	}()

	// Warm up: one connection through the whole path, so that pools and
	// lazily built state are not counted per connection.
	warm := dial(t, ln.Addr().String())
	warm.Close()
	settle()
	before := stats()

	conns := make([]net.Conn, 0, n)
	echoOnce := os.Getenv("COLIBRI_MEMPROBE_ECHO") != ""
	for range n {
		c := dial(t, ln.Addr().String())
		if echoOnce {
			roundTrip(t, c)
		}
		conns = append(conns, c)
	}
	for h == http.Handler(r) && a.Connections() < n {
		time.Sleep(10 * time.Millisecond)
	}
	settle()
	after := stats()
	dumpStacks()
	per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) / 1024 }
	state := "idle connections"
	if echoOnce {
		state = "connections idle after one echo"
	}
	t.Logf("%d %s; per connection (client sockets included):", n, state)
	t.Logf("  heap in use   %6.2f KiB", per(after.HeapInuse, before.HeapInuse))
	t.Logf("  stacks in use %6.2f KiB", per(after.StackInuse, before.StackInuse))
	t.Logf("  goroutines    %6.2f", float64(after.goroutines-before.goroutines)/float64(n))
	if path := os.Getenv("COLIBRI_MEMPROBE_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for _, c := range conns {
		c.Close()
	}
}

// roundTrip sends one masked 32-byte text message on c and reads its echo,
// so that the connection has read and written before it goes idle.
func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	msg := append([]byte{0x81, 0x80 | 32, 0, 0, 0, 0}, strings.Repeat("x", 32)...) // zero mask
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var back [34]byte
	if _, err := io.ReadFull(c, back[:]); err != nil {
		t.Fatal(err)
	}
	if back[0] != 0x81 || back[1] != 32 {
		t.Fatalf("echo came back as % x", back[:2])
	}
}

type snapshot struct {
	runtime.MemStats
	goroutines int
}

func stats() snapshot {
	var s snapshot
	runtime.ReadMemStats(&s.MemStats)
	s.goroutines = runtime.NumGoroutine()
	return s
}

// settle lets handshakes finish and runs enough collections for the
// runtime to shrink idle stacks (it halves one at each GC).
func settle() {
	time.Sleep(200 * time.Millisecond)
	for range 4 {
		runtime.GC()
	}
}

// dial opens a WebSocket with a raw socket: the handshake is written and
// its response read without a goroutine, so the client side holds only
// the socket.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return c
}

func init() {
	if p := os.Getenv("COLIBRI_MEMPROBE_STACKS"); p != "" {
		dumpStacks = func() {
			f, _ := os.Create(p)
			pprof.Lookup("goroutine").WriteTo(f, 1)
			f.Close()
		}
	}
}

var dumpStacks = func() {}

// gobwasEcho is the same echo served the way gobwas/ws's README does it
// (goroutine per connection, wsutil helpers), for comparison.
func gobwasEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
					return
				}
			}
		}()
	})
}

package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// soakEnv turns TestSoak on: COLIBRI_SOAK=1 runs the load for a minute,
// COLIBRI_SOAK=<duration> (90s, 2m) for that long.
const soakEnv = "COLIBRI_SOAK"

// The soak's shape. Clients run concurrently, each opening connection
// after connection with a scenario drawn at random; two sockets per
// connection (client and server) must fit the file limit.
const (
	soakClients        = 2000
	soakDefault        = time.Minute
	soakMaxFiles       = 20_000
	soakGoroutineSlack = 5 // goroutines above the baseline allowed afterwards
	// soakHeapSlack is the live heap above the baseline allowed afterwards:
	// the runtime keeps the descriptors of dead goroutines for reuse (a few
	// hundred bytes for each of the thousands there were), and maps keep
	// the room they grew.
	soakHeapSlack = 8 << 20
)

// soakConfig is what every soak connection runs with: short timeouts, so
// that misbehaving clients are cut off within the run.
var soakConfig = wsconn.Config{
	MaxMessageSize: 64 << 10,
	PingInterval:   time.Second,
	PongTimeout:    2 * time.Second,
	IdleTimeout:    2 * time.Second,
	WriteTimeout:   time.Second,
	CloseTimeout:   time.Second,
	Logger:         quiet,
}

// A soak scenario drives one connection and reports what went wrong.
type soakScenario struct {
	name   string
	weight int
	run    func(addr string) error
}

var soakScenarios = []soakScenario{
	{"echo", 50, soakEcho},
	{"ping flood", 4, soakPingFlood},
	{"garbage frame", 6, soakExpectClose([]byte{0x83, 0x80, 1, 2, 3, 4}, 1002)},
	{"random bytes", 4, soakRandomBytes},
	{"oversized message", 5, soakExpectClose(maskedFrame(frames.OpBinary, true, make([]byte, 64<<10+1)), 1009)},
	{"bad utf-8", 5, soakExpectClose(maskedFrame(frames.OpText, true, []byte("ok \xff")), 1007)},
	{"half-open", 6, soakHalfOpen},
	{"never reading", 5, soakNeverReading},
	{"abrupt close", 8, soakAbruptClose},
	{"slow handshake", 4, soakSlowHandshake},
	{"http request", 3, soakPlainRequest},
}

// TestSoak puts an App under thousands of concurrent connections that open,
// exchange and close, nearly half of them misbehaving (garbage, oversized and
// invalid messages, half-open, never reading, abrupt hang-ups, slow
// handshakes, ping floods), and then checks that the server's goroutines
// and live heap are back to their baseline within soakGoroutineSlack and
// soakHeapSlack. It runs only with COLIBRI_SOAK set and logs its numbers.
func TestSoak(t *testing.T) {
	v := os.Getenv(soakEnv)
	if v == "" {
		t.Skipf("soak test not run: set %s=1 (a minute of load) or %s=<duration> to run it", soakEnv, soakEnv)
	}
	duration := soakDefault
	if d, err := time.ParseDuration(v); err == nil {
		duration = d
	}
	files := raiseFileLimit(t, soakMaxFiles)
	clients := min(soakClients, (files-200)/2)

	r := router.New(router.WithConfig(soakConfig))
	router.WS(r, "/echo", nil, echo)
	router.WS(r, "/firehose", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		chunk := make([]byte, 32<<10)
		for ctx.Err() == nil {
			if err := out.WriteBinary(ctx, chunk); err != nil {
				return err
			}
		}
		return nil
	})
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

	a := app.New(r, app.Config{Logger: quiet, ReadHeaderTimeout: time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	// Small send buffers make a client that stops reading show at once.
	go func() { ran <- a.Serve(ctx, smallSendBuffers{ln}) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	baseGoroutines, baseHeap := settle()
	t.Logf("baseline: %d goroutines, %.1f MiB live heap; %d clients for %v, file limit %d",
		baseGoroutines, mib(baseHeap), clients, duration, files)

	var (
		total    = make([]atomic.Int64, len(soakScenarios))
		failed   = make([]atomic.Int64, len(soakScenarios))
		errMu    sync.Mutex
		errs     []string
		peakConn atomic.Int64
		peakGor  atomic.Int64
		peakHeap atomic.Uint64
	)
	weights := 0
	for _, s := range soakScenarios {
		weights += s.weight
	}
	pick := func(rng *mrand.Rand) int {
		n := rng.IntN(weights)
		for i, s := range soakScenarios {
			if n < s.weight {
				return i
			}
			n -= s.weight
		}
		return 0
	}

	stop := time.Now().Add(duration)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for time.Now().Before(stop) {
			peakConn.Store(max(peakConn.Load(), int64(a.Connections())))
			peakGor.Store(max(peakGor.Load(), int64(runtime.NumGoroutine())))
			runtime.ReadMemStats(&ms)
			peakHeap.Store(max(peakHeap.Load(), ms.HeapAlloc))
			time.Sleep(250 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			// Spread the first connections over a second.
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			for time.Now().Before(stop) {
				k := pick(rng)
				total[k].Add(1)
				if err := soakScenarios[k].run(addr); err != nil {
					failed[k].Add(1)
					errMu.Lock()
					if len(errs) < 20 {
						errs = append(errs, soakScenarios[k].name+": "+err.Error())
					}
					errMu.Unlock()
				}
				time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	<-sampled
	loadEnded := time.Now()

	// Every connection must end by itself: the slowest misbehaving client
	// is cut off within a few seconds.
	for a.Connections() != 0 {
		if time.Since(loadEnded) > 15*time.Second {
			t.Fatalf("%d connections still open %v after the load ended", a.Connections(), time.Since(loadEnded))
		}
		time.Sleep(50 * time.Millisecond)
	}
	drained := time.Since(loadEnded)
	var goroutines int
	var heap uint64
	for {
		goroutines, heap = settle()
		if goroutines <= baseGoroutines+soakGoroutineSlack && heap <= baseHeap+soakHeapSlack {
			break
		}
		if time.Since(loadEnded) > 30*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	var sum, fails int64
	var lines []string
	for i, s := range soakScenarios {
		n, f := total[i].Load(), failed[i].Load()
		sum += n
		fails += f
		lines = append(lines, fmt.Sprintf("%-18s %7d connections, %d unexpected", s.name, n, f))
	}
	sort.Strings(lines)
	t.Logf("%d connections in %v (%.0f/s), peak %d open at once\n%s", sum, duration, float64(sum)/duration.Seconds(), peakConn.Load(), strings.Join(lines, "\n"))
	t.Logf("goroutines: %d before, peak %d, %d after; live heap: %.1f MiB before, peak %.1f MiB, %.1f MiB after; all connections gone %v after the load",
		baseGoroutines, peakGor.Load(), goroutines, mib(baseHeap), mib(peakHeap.Load()), mib(heap), drained.Round(time.Millisecond))
	if fails > 0 {
		t.Errorf("%d connection(s) did not go as expected; first ones:\n%s", fails, strings.Join(errs, "\n"))
	}
	if goroutines > baseGoroutines+soakGoroutineSlack {
		t.Errorf("%d goroutines after the soak, baseline %d (+%d allowed)", goroutines, baseGoroutines, soakGoroutineSlack)
	}
	if heap > baseHeap+soakHeapSlack {
		t.Errorf("%.1f MiB live heap after the soak, baseline %.1f MiB (+%.0f MiB allowed)", mib(heap), mib(baseHeap), mib(soakHeapSlack))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// settle collects garbage (pools empty over two cycles) and returns the
// goroutine count and the live heap.
func settle() (int, uint64) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// raiseFileLimit lifts the soft limit on open files to the hard limit, at
// most want, and returns it.
func raiseFileLimit(t *testing.T, want uint64) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if soft := min(lim.Max, want); soft > lim.Cur {
		lim.Cur = soft
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	return int(min(lim.Cur, want))
}

// ---- a client by hand ----

// soakDeadline bounds every scenario: the server must have answered or
// hung up by then.
const soakDeadline = 10 * time.Second

type soakConn struct {
	nc net.Conn
	br *bufio.Reader
}

func soakDial(addr, path string, rcvbuf int) (*soakConn, error) {
	d := net.Dialer{Timeout: soakDeadline}
	if rcvbuf > 0 {
		d.Control = socketBuffer(rcvbuf)
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(soakDeadline))
	var key [16]byte
	_, _ = rand.Read(key[:])
	_, err = fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, addr, base64.StdEncoding.EncodeToString(key[:]))
	if err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	return &soakConn{nc: nc, br: br}, nil
}

func maskedFrame(op frames.Opcode, fin bool, payload []byte) []byte {
	h := frames.Header{Op: op, Fin: fin, Masked: true, Length: int64(len(payload))}
	_, _ = rand.Read(h.Mask[:])
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h)
	out := append(hb[:n:n], payload...)
	frames.Mask(out[n:], h.Mask, 0)
	return out
}

func (c *soakConn) send(op frames.Opcode, payload []byte) error {
	_, err := c.nc.Write(maskedFrame(op, true, payload))
	return err
}

func (c *soakConn) read() (frames.Header, []byte, error) {
	hb, err := c.br.Peek(2)
	if err != nil {
		return frames.Header{}, nil, err
	}
	hb = make([]byte, frames.HeaderSize(hb[0], hb[1]))
	if _, err := io.ReadFull(c.br, hb); err != nil {
		return frames.Header{}, nil, err
	}
	h, err := frames.ParseHeader(hb)
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(c.br, p)
	return h, p, err
}

// expectClose reads until a CLOSE and checks its code, then expects the
// server to hang up.
func (c *soakConn) expectClose(want frames.CloseCode) error {
	for {
		h, p, err := c.read()
		if err != nil {
			return fmt.Errorf("waiting for CLOSE %d: %w", want, err)
		}
		if h.Op != frames.OpClose {
			continue
		}
		code, reason, err := frames.ParseClose(p)
		if err != nil || code != want {
			return fmt.Errorf("CLOSE %d %q (%v), want %d", code, reason, err, want)
		}
		return c.expectHangUp()
	}
}

// expectHangUp reads until the server closes the transport.
func (c *soakConn) expectHangUp() error {
	_, err := io.Copy(io.Discard, c.br)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return errors.New("the server did not hang up")
	}
	return nil // EOF, or a reset after unread bytes: either way it is gone
}

// ---- scenarios ----

func soakEcho(addr string) error {
	c, err := soakDial(addr, "/echo", 0)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	for i := range 5 {
		msg := bytes.Repeat([]byte{'a' + byte(i)}, 1+mrand.IntN(4096))
		if err := c.send(frames.OpText, msg); err != nil {
			return err
		}
		if i == 2 {
			if err := c.send(frames.OpPing, []byte("are you there")); err != nil {
				return err
			}
		}
		for {
			h, p, err := c.read()
			if err != nil {
				return fmt.Errorf("echo %d: %w", i, err)
			}
			if h.Op == frames.OpPing || h.Op == frames.OpPong {
				continue
			}
			if h.Op != frames.OpText || !bytes.Equal(p, msg) {
				return fmt.Errorf("echo %d: %v of %d bytes", i, h.Op, len(p))
			}
			break
		}
	}
	if err := c.send(frames.OpClose, []byte{0x03, 0xE8}); err != nil {
		return err
	}
	return c.expectClose(frames.CloseNormal)
}

func soakPingFlood(addr string) error {
	c, err := soakDial(addr, "/echo", 0)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	var batch []byte
	var p [8]byte
	for i := range uint64(1000) {
		binary.BigEndian.PutUint64(p[:], i)
		batch = append(batch, maskedFrame(frames.OpPing, true, p[:])...)
	}
	batch = append(batch, maskedFrame(frames.OpText, true, []byte("after the flood"))...)
	if _, err := c.nc.Write(batch); err != nil {
		return err
	}
	pongs, last := 0, uint64(0)
	for {
		h, p, err := c.read()
		if err != nil {
			return err
		}
		if h.Op == frames.OpPong && len(p) == 8 {
			n := binary.BigEndian.Uint64(p)
			if pongs > 0 && n <= last {
				return fmt.Errorf("PONG %d after PONG %d", n, last)
			}
			pongs, last = pongs+1, n
			continue
		}
		if h.Op == frames.OpText && string(p) == "after the flood" {
			break
		}
	}
	if pongs == 0 || last != 999 {
		return fmt.Errorf("%d PONGs, the last for PING %d", pongs, last)
	}
	if err := c.send(frames.OpClose, []byte{0x03, 0xE8}); err != nil {
		return err
	}
	return c.expectClose(frames.CloseNormal)
}

func soakExpectClose(frame []byte, want frames.CloseCode) func(string) error {
	return func(addr string) error {
		c, err := soakDial(addr, "/echo", 0)
		if err != nil {
			return err
		}
		defer c.nc.Close()
		if _, err := c.nc.Write(frame); err != nil {
			return err
		}
		return c.expectClose(want)
	}
}

func soakRandomBytes(addr string) error {
	c, err := soakDial(addr, "/echo", 0)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	junk := make([]byte, 1+mrand.IntN(2048))
	_, _ = rand.Read(junk)
	if _, err := c.nc.Write(junk); err != nil {
		return err
	}
	// Whatever the bytes say, the server ends the connection: at once for
	// a violation, at IdleTimeout for an unfinished frame.
	for {
		h, _, err := c.read()
		if err != nil || h.Op == frames.OpClose {
			return c.expectHangUp()
		}
	}
}

func soakHalfOpen(addr string) error {
	c, err := soakDial(addr, "/echo", 0)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	// A frame that announces 1000 bytes and brings 10, then silence.
	frame := maskedFrame(frames.OpBinary, true, make([]byte, 1000))
	if _, err := c.nc.Write(frame[:16]); err != nil {
		return err
	}
	return c.expectClose(frames.CloseGoingAway)
}

func soakNeverReading(addr string) error {
	c, err := soakDial(addr, "/firehose", 4<<10)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	// Read nothing for well over WriteTimeout: with the server's send
	// buffer small, its write waits from the first second on, and it
	// must give up. What it managed to send then drains at once.
	time.Sleep(soakConfig.WriteTimeout + 3*time.Second)
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	return c.expectHangUp()
}

func soakAbruptClose(addr string) error {
	c, err := soakDial(addr, "/echo", 0)
	if err != nil {
		return err
	}
	frame := maskedFrame(frames.OpText, false, []byte("half a message"))
	_, _ = c.nc.Write(frame)
	if tc, ok := c.nc.(*net.TCPConn); ok && mrand.IntN(2) == 0 {
		_ = tc.SetLinger(0) // a reset rather than a FIN
	}
	return c.nc.Close()
}

func soakSlowHandshake(addr string) error {
	nc, err := net.DialTimeout("tcp", addr, soakDeadline)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(soakDeadline))
	request := "GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	go func() {
		for i := range len(request) {
			if _, err := nc.Write([]byte{request[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err = io.Copy(io.Discard, nc)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return errors.New("the server kept a slow handshake open")
	}
	if d := time.Since(start); d > 5*time.Second {
		return fmt.Errorf("slow handshake cut off after %v", d)
	}
	return nil
}

// soakHTTP keeps no idle connections, which would count as goroutines.
var soakHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: soakDeadline}

func soakPlainRequest(addr string) error {
	resp, err := soakHTTP.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != "ok" {
		return fmt.Errorf("healthz: %d %q", resp.StatusCode, b)
	}
	return nil
}

package app_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// The HTTP/2 benchmarks compare WebSockets over HTTP/1.1 (a TLS connection
// each) with WebSockets over HTTP/2 (streams of one TLS connection): how
// long a socket takes to open and answer its first message, and how much
// server memory an idle socket holds. The server runs in a child process
// (this test binary, running TestHTTP2BenchServer) so that the memory
// figures are the server's alone.
//
//	go test -run '^$' -bench HTTP2 -benchtime 200x ./app

// benchServerEnv carries "certFile,keyFile" to the child process.
const benchServerEnv = "COLIBRI_H2_BENCH_SERVER"

// TestHTTP2BenchServer is the server of the HTTP/2 benchmarks. It runs only
// in the child process they start, and serves until its stdin closes.
func TestHTTP2BenchServer(t *testing.T) {
	files := os.Getenv(benchServerEnv)
	if files == "" {
		t.Skip("the HTTP/2 benchmarks run this in a child process")
	}
	certFile, keyFile, _ := strings.Cut(files, ",")
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/echo", nil, echo)
	var a *app.App
	r.HandleFunc("GET /mem", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(w, "%d %d %d %d", a.Connections(), m.HeapInuse, m.StackInuse, runtime.NumGoroutine())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a = app.New(r, app.Config{HTTP2: true, CertFile: certFile, KeyFile: keyFile, NoSignals: true, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := a.Serve(ctx, ln); err != nil {
		t.Fatal(err)
	}
}

// benchServer is the child process serving the benchmarks.
type benchServer struct {
	host   string
	pool   *x509.CertPool
	client *h2test.Client // HTTP/2, for /mem and the HTTP/2 sockets
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	cert, pool := h2test.Certificate(b)
	certFile, keyFile := h2test.WritePEM(b, cert)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHTTP2BenchServer$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+certFile+","+keyFile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var host string
	for lines.Scan() {
		if h, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
			host = h
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	s := &benchServer{host: host, pool: pool, client: h2test.NewClient(pool)}
	b.Cleanup(func() {
		s.client.Close()
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("bench server: %v", err)
		}
	})
	if host == "" {
		b.Fatal("bench server did not start")
	}
	return s
}

// stats is what the server reports about itself.
type stats struct{ conns, heap, stack, goroutines int }

func (s *benchServer) stats(b *testing.B) stats {
	b.Helper()
	resp, err := s.client.HTTP.Get("https://" + s.host + "/mem")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var st stats
	if _, err := fmt.Fscan(resp.Body, &st.conns, &st.heap, &st.stack, &st.goroutines); err != nil {
		b.Fatal(err)
	}
	return st
}

// waitConns waits until the server counts n sockets.
func (s *benchServer) waitConns(b *testing.B, n int) stats {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.stats(b)
		if st.conns == n {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("server has %d sockets, want %d", st.conns, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// socket is one benchmark socket of either kind.
type socket interface {
	echo(msg string) error
	close() error
}

type h1Socket struct{ c net.Conn }

func (s h1Socket) echo(msg string) error {
	if err := wsutil.WriteClientText(s.c, []byte(msg)); err != nil {
		return err
	}
	p, err := wsutil.ReadServerText(s.c)
	if err == nil && string(p) != msg {
		err = fmt.Errorf("echo %q, want %q", p, msg)
	}
	return err
}

func (s h1Socket) close() error {
	defer s.c.Close()
	if err := wsutil.WriteClientMessage(s.c, gws.OpClose, gws.NewCloseFrameBody(gws.StatusNormalClosure, "")); err != nil {
		return err
	}
	_, err := wsutil.ReadServerText(s.c)
	if _, ok := err.(wsutil.ClosedError); ok {
		return nil
	}
	return err
}

type h2Socket struct{ s *h2test.Socket }

func (s h2Socket) echo(msg string) error {
	if err := s.s.WriteText(msg); err != nil {
		return err
	}
	_, p, err := s.s.ReadMessage()
	if err == nil && string(p) != msg {
		err = fmt.Errorf("echo %q, want %q", p, msg)
	}
	return err
}

func (s h2Socket) close() error {
	_, err := s.s.Close(gws.StatusNormalClosure, "")
	return err
}

// opener opens sockets of one kind on the bench server.
type opener func() (socket, error)

func (s *benchServer) openers() map[string]opener {
	d := gws.Dialer{TLSConfig: &tls.Config{RootCAs: s.pool}, Timeout: 10 * time.Second}
	return map[string]opener{
		"HTTP1.1": func() (socket, error) {
			c, _, _, err := d.Dial(context.Background(), "wss://"+s.host+"/echo")
			return h1Socket{c}, err
		},
		"HTTP2": func() (socket, error) {
			ws, _, err := s.client.Dial(context.Background(), "https://"+s.host+"/echo", nil)
			return h2Socket{ws}, err
		},
	}
}

// BenchmarkHTTP2Setup measures opening a WebSocket and getting its first
// echo: a TCP and TLS handshake and an Upgrade for HTTP/1.1, one stream on
// the open connection for HTTP/2.
func BenchmarkHTTP2Setup(b *testing.B) {
	s := startBenchServer(b)
	s.stats(b) // the HTTP/2 connection is open before timing starts
	for _, kind := range []string{"HTTP1.1", "HTTP2"} {
		open := s.openers()[kind]
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				ws, err := open()
				if err != nil {
					b.Fatal(err)
				}
				if err := ws.echo("hello"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := ws.close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			s.waitConns(b, 0)
		})
	}
}

// BenchmarkHTTP2SocketMemory opens idle sockets (200, under HTTP/2's
// default limit of 250 streams per connection) and reports the server's
// heap and stack per socket, and its goroutines per socket.
func BenchmarkHTTP2SocketMemory(b *testing.B) {
	const n = 200
	s := startBenchServer(b)
	for _, kind := range []string{"HTTP1.1", "HTTP2"} {
		open := s.openers()[kind]
		b.Run(kind, func(b *testing.B) {
			var heap, stack, gs float64
			for b.Loop() {
				before := s.waitConns(b, 0)
				socks := make([]socket, 0, n)
				for range n {
					ws, err := open()
					if err != nil {
						b.Fatal(err)
					}
					if err := ws.echo("hello"); err != nil {
						b.Fatal(err)
					}
					socks = append(socks, ws)
				}
				b.StopTimer()
				after := s.waitConns(b, n)
				heap += float64(after.heap-before.heap) / n
				stack += float64(after.stack-before.stack) / n
				gs += float64(after.goroutines-before.goroutines) / n
				for _, ws := range socks {
					if err := ws.close(); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			runs := float64(b.N)
			b.ReportMetric(heap/runs, "heap-B/socket")
			b.ReportMetric(stack/runs, "stack-B/socket")
			b.ReportMetric((heap+stack)/runs, "B/socket")
			b.ReportMetric(gs/runs, "goroutines/socket")
		})
	}
}

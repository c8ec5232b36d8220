package handshake_test

// This file compares colibri's opening handshake (CheckRequest and the 101
// that Accept writes) with gobwas/ws's HTTPUpgrader, which does the same
// job from net/http's handler arguments, and with its Upgrader, which reads
// the request from a raw connection itself. docs/architecture.md records
// the decision these tests and benchmarks support.

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/gobwas/ws"
)

// gobwasTestRequest is a valid opening handshake for path on host.
func gobwasTestRequest(path, host string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// statusRecorder is middleware's view of a response: the status that went
// through the ResponseWriter, if any. It unwraps, so hijacking still works
// through it.
type statusRecorder struct {
	http.ResponseWriter
	mu     *sync.Mutex
	status *int
}

func (w statusRecorder) WriteHeader(code int) {
	w.mu.Lock()
	*w.status = code
	w.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// upgradeServers serves /colibri with handshake.Accept, /gobwas with
// gobwas's HTTPUpgrader and /plain with a 200, each behind a
// statusRecorder; the returned function reads and resets the status the
// recorder saw last.
func upgradeServers(t *testing.T) (addr string, lastStatus func() int) {
	t.Helper()
	var mu sync.Mutex
	var status int
	record := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h(statusRecorder{ResponseWriter: w, mu: &mu, status: &status}, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/colibri", record(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{SkipOriginCheck: true})
		if err == nil {
			u.Conn.Close()
		}
	}))
	mux.Handle("/gobwas", record(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, _ := ws.HTTPUpgrader{}.Upgrade(r, w)
		if conn != nil {
			conn.Close()
		}
	}))
	mux.Handle("/plain", record(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "plain\n")
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		s := status
		status = 0
		return s
	}
}

// exchange sends raw on c and reads one response with its body.
func exchange(c net.Conn, br *bufio.Reader, raw string) (*http.Response, string, error) {
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// TestBadHandshakeAnswersColibriVsGobwas sends the same bad handshakes to
// handshake.Accept and to gobwas's HTTPUpgrader and asserts the status and
// body each answers with. Both answer every one with a status and a
// readable body; the rows where they differ are why colibri keeps its own
// checks: gobwas upgrades requests whose Sec-WebSocket-Key is not 16 bytes
// in base64 or that carry two keys, refuses "Upgrade: h2c, websocket"
// (a list, as HTTP allows), and answers a plain GET with 400 where colibri
// says 426 Upgrade Required with the headers of RFC 6455 §4.2.2.
func TestBadHandshakeAnswersColibriVsGobwas(t *testing.T) {
	addr, lastStatus := upgradeServers(t)
	type answer struct {
		status int
		body   string // a part of the body
		header string // a response header that must be "13", if any
	}
	tests := []struct {
		name    string
		edit    func(req string) string
		colibri answer
		gobwas  answer
	}{
		{
			name:    "POST",
			edit:    func(r string) string { return "POST" + strings.TrimPrefix(r, "GET") },
			colibri: answer{status: 405, body: "must use GET"},
			gobwas:  answer{status: 405, body: "bad HTTP request method"},
		},
		{
			name:    "HTTP/1.0",
			edit:    func(r string) string { return strings.Replace(r, "HTTP/1.1", "HTTP/1.0", 1) },
			colibri: answer{status: 400, body: "needs HTTP/1.1"},
			gobwas:  answer{status: 505, body: "bad HTTP protocol version"},
		},
		{
			name:    "empty Host",
			edit:    func(r string) string { return strings.Replace(r, "Host: "+addr, "Host:", 1) },
			colibri: answer{status: 400, body: "needs a Host header"},
			gobwas:  answer{status: 400, body: `bad "Host" header`},
		},
		{
			name:    "a plain GET, no Upgrade",
			edit:    func(r string) string { return strings.Replace(r, "Upgrade: websocket\r\n", "", 1) },
			colibri: answer{status: 426, body: "speaks WebSocket only", header: "Sec-Websocket-Version"},
			gobwas:  answer{status: 400, body: `bad "Upgrade" header`},
		},
		{
			name:    "Upgrade as a list",
			edit:    func(r string) string { return strings.Replace(r, "Upgrade: websocket", "Upgrade: h2c, websocket", 1) },
			colibri: answer{status: 101},
			gobwas:  answer{status: 400, body: `bad "Upgrade" header`},
		},
		{
			name:    "no Connection: Upgrade",
			edit:    func(r string) string { return strings.Replace(r, "Connection: Upgrade", "Connection: keep-alive", 1) },
			colibri: answer{status: 400, body: "needs Connection: Upgrade"},
			gobwas:  answer{status: 400, body: `bad "Connection" header`},
		},
		{
			name:    "version 8",
			edit:    func(r string) string { return strings.Replace(r, "Version: 13", "Version: 8", 1) },
			colibri: answer{status: 426, body: "speaks version 13", header: "Sec-Websocket-Version"},
			gobwas:  answer{status: 426, body: `bad "Sec-WebSocket-Version" header`, header: "Sec-Websocket-Version"},
		},
		{
			name:    "no version",
			edit:    func(r string) string { return strings.Replace(r, "Sec-WebSocket-Version: 13\r\n", "", 1) },
			colibri: answer{status: 426, body: "speaks version 13", header: "Sec-Websocket-Version"},
			gobwas:  answer{status: 400, body: `bad "Sec-WebSocket-Version" header`},
		},
		{
			name: "no key",
			edit: func(r string) string {
				return strings.Replace(r, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1)
			},
			colibri: answer{status: 400, body: "exactly one Sec-WebSocket-Key"},
			gobwas:  answer{status: 400, body: `bad "Sec-WebSocket-Key" header`},
		},
		{
			name: "key of 24 characters that are not base64",
			edit: func(r string) string {
				return strings.Replace(r, "dGhlIHNhbXBsZSBub25jZQ==", "not base64, not a nonce!", 1)
			},
			colibri: answer{status: 400, body: "16 bytes in base64"},
			gobwas:  answer{status: 101},
		},
		{
			name: "key of 18 bytes in base64",
			edit: func(r string) string {
				return strings.Replace(r, "dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAAAA", 1)
			},
			colibri: answer{status: 400, body: "16 bytes in base64"},
			gobwas:  answer{status: 101},
		},
		{
			name: "two keys",
			edit: func(r string) string {
				return strings.Replace(r, "Sec-WebSocket-Version", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version", 1)
			},
			colibri: answer{status: 400, body: "exactly one Sec-WebSocket-Key"},
			gobwas:  answer{status: 101},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, side := range []struct {
				path string
				want answer
			}{{"/colibri", tt.colibri}, {"/gobwas", tt.gobwas}} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				resp, body, err := exchange(c, bufio.NewReader(c), tt.edit(gobwasTestRequest(side.path, addr)))
				c.Close()
				if err != nil {
					t.Errorf("%s: %v", side.path, err)
					continue
				}
				lastStatus()
				if resp.StatusCode != side.want.status || !strings.Contains(body, side.want.body) {
					t.Errorf("%s: %d %q, want %d and a body with %q", side.path, resp.StatusCode, body, side.want.status, side.want.body)
				}
				if side.want.status != 101 && len(strings.TrimSpace(body)) == 0 {
					t.Errorf("%s: %d without a body", side.path, resp.StatusCode)
				}
				if h := side.want.header; h != "" && resp.Header.Get(h) != "13" {
					t.Errorf("%s: %s: %q, want 13", side.path, h, resp.Header.Get(h))
				}
			}
		})
	}
}

// TestBadHandshakeBeforeHijackColibriVsGobwas shows what "answers before
// hijacking" gives a colibri user. colibri refuses through the
// ResponseWriter: middleware sees the status (access logs, metrics), and
// the HTTP/1.1 connection goes on to serve the client's next request.
// gobwas's HTTPUpgrader hijacks first and writes its refusal on the raw
// connection: middleware sees no status, and the connection is gone.
func TestBadHandshakeBeforeHijackColibriVsGobwas(t *testing.T) {
	addr, lastStatus := upgradeServers(t)
	plainGET := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	}
	for _, tt := range []struct {
		path           string
		seenStatus     int  // what middleware saw
		connectionLive bool // the next request on the connection is served
	}{
		{path: "/colibri", seenStatus: 426, connectionLive: true},
		{path: "/gobwas", seenStatus: 0, connectionLive: false},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, _, err := exchange(c, br, plainGET(tt.path))
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if resp.StatusCode/100 != 4 {
			t.Errorf("%s: status %d, want a refusal", tt.path, resp.StatusCode)
		}
		if got := lastStatus(); got != tt.seenStatus {
			t.Errorf("%s: middleware saw status %d, want %d", tt.path, got, tt.seenStatus)
		}
		resp, body, err := exchange(c, br, plainGET("/plain"))
		live := err == nil && resp.StatusCode == 200 && body == "plain\n"
		if live != tt.connectionLive {
			t.Errorf("%s: next request on the connection served: %v (%v), want %v", tt.path, live, err, tt.connectionLive)
		}
		c.Close()
	}
}

// discardConn is a connection whose reads end at once and whose writes
// vanish, for upgrading without a network.
type discardConn struct{ written int }

func (c *discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *discardConn) Write(p []byte) (int, error)      { c.written += len(p); return len(p), nil }
func (c *discardConn) Close() error                     { return nil }
func (c *discardConn) LocalAddr() net.Addr              { return nil }
func (c *discardConn) RemoteAddr() net.Addr             { return nil }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// hijackWriter is a ResponseWriter that hands out the same discardConn
// and buffers on every hijack, so that a benchmark counts only what the
// upgrade itself allocates.
type hijackWriter struct {
	header http.Header
	conn   *discardConn
	rw     *bufio.ReadWriter
}

func newHijackWriter() *hijackWriter {
	c := &discardConn{}
	return &hijackWriter{
		header: http.Header{},
		conn:   c,
		rw:     bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriterSize(c, 4096)),
	}
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, w.rw, nil
}

// BenchmarkUpgradeColibriVsGobwas upgrades one request after another.
//
// inmem runs just the upgrade call on a parsed request, with a fake
// hijacker: handshake.Accept against gobwas's HTTPUpgrader.Upgrade, both
// from net/http's handler arguments; allocations per op are exact.
//
// loopback runs whole handshakes over 127.0.0.1 (dial, request, 101,
// close), client included: Accept and HTTPUpgrader behind net/http, and
// gobwas's Upgrader on a bare listener without net/http, the lower bound
// of a server that is not an http.Handler.
func BenchmarkUpgradeColibriVsGobwas(b *testing.B) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(gobwasTestRequest("/", "example.com"))))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("inmem/colibri-Accept", func(b *testing.B) {
		w := newHijackWriter()
		b.ReportAllocs()
		for b.Loop() {
			w.conn.written = 0
			u, err := handshake.Accept(w, req, nil)
			if err != nil || w.conn.written == 0 {
				b.Fatal(err)
			}
			u.Conn.Close()
		}
	})
	b.Run("inmem/gobwas-HTTPUpgrader", func(b *testing.B) {
		w := newHijackWriter()
		b.ReportAllocs()
		for b.Loop() {
			w.conn.written = 0
			conn, _, _, err := ws.HTTPUpgrader{}.Upgrade(req, w)
			if err != nil || w.conn.written == 0 {
				b.Fatal(err)
			}
			conn.Close()
		}
	})

	b.Run("loopback/colibri-Accept", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, err := handshake.Accept(w, r, nil); err == nil {
				u.Conn.Close()
			}
		}))
		defer srv.Close()
		handshakes(b, srv.Listener.Addr().String())
	})
	b.Run("loopback/gobwas-HTTPUpgrader", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if conn, _, _, _ := (ws.HTTPUpgrader{}).Upgrade(r, w); conn != nil {
				conn.Close()
			}
		}))
		defer srv.Close()
		handshakes(b, srv.Listener.Addr().String())
	})
	b.Run("loopback/gobwas-Upgrader-no-net/http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() {
					_, _ = ws.Upgrader{}.Upgrade(c)
					c.Close()
				})
			}
		})
		defer wg.Wait()
		defer ln.Close()
		handshakes(b, ln.Addr().String())
	})
}

// handshakes runs b.N opening handshakes against addr, one after another.
func handshakes(b *testing.B, addr string) {
	req := []byte(gobwasTestRequest("/", addr))
	var buf [512]byte
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		// Reset rather than linger, so that b.N connections leave no
		// TIME_WAIT sockets behind.
		_ = c.(*net.TCPConn).SetLinger(0)
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			m, err := c.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101 ")) {
			b.Fatalf("answer %q", buf[:n])
		}
		c.Close()
	}
}

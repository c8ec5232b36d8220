package wsconn_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

type handlerFunc = wsconn.Handler[struct{}]

// testServer serves handler on a loopback port; every connection runs in
// the returned Group, which the test shuts down at cleanup.
func testServer(t testing.TB, cfg *wsconn.Config, handler handlerFunc) (string, *group.Group) {
	t.Helper()
	return testServerOpts(t, cfg, handler, &handshake.AcceptOptions{Subprotocols: []string{"chat", "echo"}})
}

func testServerOpts(t testing.TB, cfg *wsconn.Config, handler handlerFunc, opts *handshake.AcceptOptions) (string, *group.Group) {
	t.Helper()
	g := &group.Group{}
	if cfg == nil {
		cfg = &wsconn.Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The place is claimed before the 101, as the router does, so that
		// a client that saw the 101 is served even if Shutdown follows.
		ctx, err := g.Enter(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		u, err := handshake.Accept(w, r, opts)
		if err != nil {
			group.Leave(ctx)
			return
		}
		go wsconn.Serve(ctx, u, struct{}{}, handler, cfg)
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), g
}

// echo is the handler most tests use: every message goes back as it came.
func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// rawClient speaks WebSocket byte by byte, so tests can send what no
// well-behaved client would.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, url string) *rawClient {
	t.Helper()
	return dialRawHeader(t, url, nil)
}

func dialRawHeader(t testing.TB, url string, extra http.Header) *rawClient {
	t.Helper()
	c, resp := handshakeRaw(t, url, extra)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d", resp.StatusCode)
	}
	return c
}

// handshakeRaw sends an upgrade request to url (ws://host[/path]) with the
// extra header lines and returns the client with the server's answer,
// whatever its status.
func handshakeRaw(t testing.TB, url string, extra http.Header) (*rawClient, *http.Response) {
	t.Helper()
	host, path, _ := strings.Cut(strings.TrimPrefix(url, "ws://"), "/")
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	var more strings.Builder
	_ = extra.Write(&more)
	fmt.Fprintf(nc, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n%s\r\n", path, host, base64.StdEncoding.EncodeToString(key[:]), more.String())
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, nc: nc, br: br}, resp
}

// frame sends one masked frame.
func (c *rawClient) frame(op frames.Opcode, fin bool, payload []byte) {
	c.t.Helper()
	c.frameRsv(op, fin, 0, payload)
}

func (c *rawClient) frameRsv(op frames.Opcode, fin bool, rsv byte, payload []byte) {
	c.t.Helper()
	h := frames.Header{Op: op, Fin: fin, Rsv: rsv, Masked: true, Length: int64(len(payload))}
	_, _ = rand.Read(h.Mask[:])
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h)
	p := append([]byte(nil), payload...)
	frames.Mask(p, h.Mask, 0)
	c.write(append(hb[:n:n], p...))
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame from the server.
func (c *rawClient) read() (frames.Header, []byte) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb := make([]byte, 2, frames.MaxHeaderSize)
	if _, err := io.ReadFull(c.br, hb); err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	hb = hb[:frames.HeaderSize(hb[0], hb[1])]
	if _, err := io.ReadFull(c.br, hb[2:]); err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	h, err := frames.ParseHeader(hb)
	if err != nil {
		c.t.Fatalf("parse header: %v", err)
	}
	if h.Masked {
		c.t.Fatalf("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatalf("read payload: %v", err)
	}
	return h, p
}

// expectClose reads frames until a CLOSE and checks its code.
func (c *rawClient) expectClose(want frames.CloseCode) string {
	c.t.Helper()
	for {
		h, p := c.read()
		if h.Op != frames.OpClose {
			continue
		}
		code, reason, err := frames.ParseClose(p)
		if err != nil {
			c.t.Fatalf("server sent a bad close payload %x: %v", p, err)
		}
		if code != want {
			c.t.Fatalf("close code %v (reason %q), want %v", code, reason, want)
		}
		return reason
	}
}

// expectEOF checks that the server closes the TCP connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		c.t.Fatalf("waiting for the server to close: %v", err)
	}
}

func closePayload(code frames.CloseCode, reason string) []byte {
	b := []byte{byte(code >> 8), byte(code)}
	return append(b, reason...)
}

func textMessage(s string) messages.Message {
	return messages.Text(s)
}

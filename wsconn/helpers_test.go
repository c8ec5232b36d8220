package wsconn_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

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

// testServerOpts is testServer with the handshake's options; a nil Logger
// in cfg is set to quietLogger.
func testServerOpts(t testing.TB, cfg *wsconn.Config, handler handlerFunc, opts *handshake.AcceptOptions) (string, *group.Group) {
	t.Helper()
	if cfg == nil {
		cfg = &wsconn.Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	return serveGroup(t, cfg, handler, opts, nil)
}

// serveGroup serves handler with cfg as it is on a loopback port, every
// connection in the returned Group, shut down at cleanup; accepted, when
// set, sees each upgraded connection before it is served (to wrap its
// transport).
func serveGroup(t testing.TB, cfg *wsconn.Config, handler handlerFunc, opts *handshake.AcceptOptions, accepted func(*wsconn.Upgraded)) (string, *group.Group) {
	t.Helper()
	g := &group.Group{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, u, ok := enterAndAccept(g, w, r, opts)
		if !ok {
			return
		}
		if accepted != nil {
			accepted(&u)
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

// enterAndAccept claims the connection's place in g before the 101, as the
// router does, so that a client that saw the 101 is served even if
// Shutdown follows, then upgrades r; ok is false when either was refused
// (the answer has gone out, and the place is given back).
func enterAndAccept(g *group.Group, w http.ResponseWriter, r *http.Request, opts *handshake.AcceptOptions) (ctx context.Context, u wsconn.Upgraded, ok bool) {
	ctx, err := g.Enter(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return nil, u, false
	}
	u, err = handshake.Accept(w, r, opts)
	if err != nil {
		group.Leave(ctx)
		return nil, u, false
	}
	return ctx, u, true
}

// quietLogger discards what connections log, for tests that do not read it.
var quietLogger = slog.New(slog.DiscardHandler)

// waitFor returns what c delivers, failing the test after a generous
// bound rather than hanging it.
func waitFor[V any](t *testing.T, c <-chan V, what string) V {
	t.Helper()
	return waitWithin(t, c, 10*time.Second, what)
}

// waitWithin returns what c delivers within d, or fails the test.
func waitWithin[V any](t *testing.T, c <-chan V, d time.Duration, what string) V {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
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

// sizesUnder answers every message read with Messages(limit) with
// "<kind> <size>", uncompressed.
func sizesUnder(limit int64) wsconn.Handler[struct{}] {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(limit) {
			if err := out.WriteText(ctx, fmt.Sprintf("%v %d", m.Kind, len(m.Payload)), wsconn.Uncompressed); err != nil {
				return err
			}
		}
		return in.Err()
	}
}

// dialGorillaDeflate dials url with a gorilla client that offers
// permessage-deflate, closed at cleanup, and gives its reads 5 s.
func dialGorillaDeflate(t *testing.T, url string) *gorilla.Conn {
	t.Helper()
	d := gorilla.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
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
	return handshakeRawWith(t, &net.Dialer{}, url, extra)
}

// handshakeRawWith is handshakeRaw over a socket d dials, for tests that
// need socket options.
func handshakeRawWith(t testing.TB, d *net.Dialer, url string, extra http.Header) (*rawClient, *http.Response) {
	t.Helper()
	host, path, _ := strings.Cut(strings.TrimPrefix(url, "ws://"), "/")
	nc, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	_, _ = io.WriteString(nc, upgradeRequest(host, path, base64.StdEncoding.EncodeToString(key[:]), extra))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, nc: nc, br: br}, resp
}

// upgradeRequest is the opening handshake for ws://host/path with key and
// the extra header lines.
func upgradeRequest(host, path, key string, extra http.Header) string {
	var more strings.Builder
	_ = extra.Write(&more)
	return fmt.Sprintf("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n%s\r\n", path, host, key, more.String())
}

// smallBufferDialer dials with a 4 KiB receive buffer, so that a client
// that stops reading makes the server's writes wait sooner.
func smallBufferDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
}

// frame sends one masked frame.
func (c *rawClient) frame(op frames.Opcode, fin bool, payload []byte) {
	c.t.Helper()
	c.frameRsv(op, fin, 0, payload)
}

func (c *rawClient) frameRsv(op frames.Opcode, fin bool, rsv byte, payload []byte) {
	c.t.Helper()
	h := frames.Header{Op: op, Fin: fin, Rsv: rsv}
	_, _ = rand.Read(h.Mask[:])
	c.write(maskedFrame(h, payload))
}

// maskedFrame encodes a client's frame: h, masked with h.Mask, announcing
// payload, then a masked copy of payload.
func maskedFrame(h frames.Header, payload []byte) []byte {
	h.Masked, h.Length = true, int64(len(payload))
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h)
	b := append(hb[:n:n], payload...)
	frames.Mask(b[n:], h.Mask, 0)
	return b
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
	h, p := readServerFrame(c.t, c.br)
	if h.Masked {
		c.t.Fatalf("server frame is masked")
	}
	return h, p
}

// readServerFrame reads one frame from br, failing the test if it cannot.
func readServerFrame(t testing.TB, br *bufio.Reader) (frames.Header, []byte) {
	t.Helper()
	h, p, err := readFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// readFrame reads one frame from br as it came (a masked payload stays
// masked); its errors say which part could not be read.
func readFrame(br *bufio.Reader) (frames.Header, []byte, error) {
	hb := make([]byte, 2, frames.MaxHeaderSize)
	if _, err := io.ReadFull(br, hb); err != nil {
		return frames.Header{}, nil, fmt.Errorf("read header: %w", err)
	}
	hb = hb[:frames.HeaderSize(hb[0], hb[1])]
	if _, err := io.ReadFull(br, hb[2:]); err != nil {
		return frames.Header{}, nil, fmt.Errorf("read header: %w", err)
	}
	h, err := frames.ParseHeader(hb)
	if err != nil {
		return h, nil, fmt.Errorf("parse header: %w", err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(br, p); err != nil {
		return h, nil, fmt.Errorf("read payload: %w", err)
	}
	return h, p, nil
}

// writeEvery writes b every d, as a peer that keeps sending does, until
// stop is closed or a write fails; the channel it returns closes then.
func (c *rawClient) writeEvery(d time.Duration, b []byte, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.nc.Write(b); err != nil {
					return
				}
			}
		}
	}()
	return done
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

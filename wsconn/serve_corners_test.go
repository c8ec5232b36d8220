package wsconn_test

// Corners of wsconn.Serve and wsconn.Start called by hand, without the
// router, on an Upgraded made by handshake.Accept or by the test itself.
// TestMain checks that no goroutine outlives any of them.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// serveCornerRequest is a valid opening handshake for host x.
const serveCornerRequest = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// serveCornerWait receives from ch within 2 s or fails the test.
func serveCornerWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return waitWithin(t, ch, 2*time.Second, what)
}

// TestServeCornerUnusableExtensionsAreRefusedAndClosed: Serve and Start
// return an error, having closed u.Conn, when u cannot be served, here
// permessage-deflate parameters wsconn cannot honour; the handler never
// runs and the peer sees the connection end without a frame.
func TestServeCornerUnusableExtensionsAreRefusedAndClosed(t *testing.T) {
	for _, start := range []bool{false, true} {
		t.Run(map[bool]string{false: "Serve", true: "Start"}[start], func(t *testing.T) {
			ran := make(chan struct{}, 1)
			results := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				u, err := handshake.Accept(w, r, nil)
				if err != nil {
					results <- err
					return
				}
				u.Extensions = []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{{Name: "server_max_window_bits", Value: "16"}}}}
				h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					ran <- struct{}{}
					return nil
				}
				cfg := &wsconn.Config{Logger: slog.New(slog.DiscardHandler)}
				if start {
					results <- wsconn.Start(context.Background(), u, struct{}{}, h, cfg)
				} else {
					results <- wsconn.Serve(context.Background(), u, struct{}{}, h, cfg)
				}
			}))
			defer srv.Close()
			nc, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(nc, serveCornerRequest); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("answer %v, %v", resp, err)
			}
			if err := serveCornerWait(t, results, "Serve or Start"); err == nil {
				t.Fatal("unusable extensions served")
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the refusal: % x, %v; want the connection closed without a frame", rest, err)
			}
			select {
			case <-ran:
				t.Error("the handler ran")
			default:
			}
		})
	}
}

// TestServeCornerClientFailsMaskedServerFrames: on the dialing side
// (Upgraded.Client), a masked frame from the server is a protocol error
// (RFC 6455 §5.1: "A client MUST close a connection if it detects a
// masked frame"): 1002 goes out, masked as a client's frames are, and
// the loop reports it, whether the frame came in Upgraded.Buffered or
// later on the socket.
func TestServeCornerClientFailsMaskedServerFrames(t *testing.T) {
	masked := []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}
	for _, inBuffered := range []bool{true, false} {
		t.Run(map[bool]string{true: "Buffered", false: "socket"}[inBuffered], func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			u := wsconn.Upgraded{Conn: client, Client: true}
			if inBuffered {
				u.Buffered = masked
			}
			inErr := make(chan error, 1)
			served := make(chan error, 1)
			go func() {
				served <- wsconn.Serve(context.Background(), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					for range in.Messages(0) {
					}
					inErr <- in.Err()
					return nil
				}, &wsconn.Config{Logger: slog.New(slog.DiscardHandler), PingInterval: -1, CloseTimeout: 500 * time.Millisecond})
			}()
			_ = server.SetDeadline(time.Now().Add(2 * time.Second))
			if !inBuffered {
				if _, err := server.Write(masked); err != nil {
					t.Fatal(err)
				}
			}
			var h [2]byte
			if _, err := io.ReadFull(server, h[:]); err != nil {
				t.Fatal(err)
			}
			if h[0] != 0x88 || h[1]&0x80 == 0 {
				t.Fatalf("first frame % x, want a masked CLOSE", h)
			}
			p := make([]byte, 4+int(h[1]&0x7f))
			if _, err := io.ReadFull(server, p); err != nil {
				t.Fatal(err)
			}
			code := uint16(p[4]^p[0])<<8 | uint16(p[5]^p[1])
			if code != uint16(frames.CloseProtocolError) {
				t.Errorf("CLOSE %d, want 1002", code)
			}
			_, _ = server.Write([]byte{0x88, 0x02, 0x03, 0xea}) // the server answers 1002
			if err := serveCornerWait(t, inErr, "the loop"); wsconn.CloseStatus(err) != frames.CloseProtocolError {
				t.Errorf("in.Err() = %v, want 1002", err)
			}
			go func() { _, _ = io.Copy(io.Discard, server) }()
			serveCornerWait(t, served, "Serve")
		})
	}
}

// TestServeCornerContextEndedBeforeServe: a context that ended before
// Serve is called still gets the connection a 1001 "going away" and a
// handler whose context has ended, and Serve returns once the peer
// answered.
func TestServeCornerContextEndedBeforeServe(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stopped := errors.New("stopped")
	cancel(stopped)
	client, server := net.Pipe()
	defer server.Close()
	cause := make(chan error, 1)
	served := make(chan error, 1)
	go func() {
		served <- wsconn.Serve(ctx, wsconn.Upgraded{Conn: server}, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return nil
		}, nil)
	}()
	_ = client.SetDeadline(time.Now().Add(2 * time.Second))
	var f [2]byte
	if _, err := io.ReadFull(client, f[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, f[1]&0x7f)
	if _, err := io.ReadFull(client, p); err != nil {
		t.Fatal(err)
	}
	if f[0] != 0x88 || len(p) < 2 || uint16(p[0])<<8|uint16(p[1]) != 1001 || string(p[2:]) != "going away" {
		t.Fatalf("frame % x %q, want CLOSE 1001 going away", f, p)
	}
	_, _ = client.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9})
	if err := serveCornerWait(t, cause, "the handler's context"); !errors.Is(err, stopped) {
		t.Errorf("handler's context cause %v, want the caller's", err)
	}
	go func() { _, _ = io.Copy(io.Discard, client) }()
	if err := serveCornerWait(t, served, "Serve"); err != nil && !errors.Is(err, stopped) {
		t.Errorf("Serve returned %v", err)
	}
}

// TestServeCornerHTTP2ReadsExtensionsOnlyWithCompression: CheckExtensions
// and the routing table say a malformed Sec-WebSocket-Extensions is
// refused (400) only with compression on ("With compression off the
// header is not read"); over HTTP/1.1 Accept does so. Over HTTP/2 it
// must too: with compression off, the same header is ignored and the
// extended CONNECT is accepted.
func TestServeCornerHTTP2ReadsExtensionsOnlyWithCompression(t *testing.T) {
	const bad = "permessage-deflate; =x"
	base, client, _, _ := h2Server(t, wsconn.Config{}, nil, echo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, resp, err := client.Dial(ctx, base+"/ws", http.Header{"Sec-Websocket-Extensions": {bad}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("HTTP/2 with compression off: %d %v, want 200 as over HTTP/1.1", status, err)
	}
	s.CloseNow()
}

// TestServeCornerHTTP1IgnoresExtensionsWithCompressionOff is the HTTP/1.1
// half of the one above, which passes: the malformed header is not read.
func TestServeCornerHTTP1IgnoresExtensionsWithCompressionOff(t *testing.T) {
	url, _ := testServerOpts(t, nil, echo, nil)
	c, resp := handshakeRaw(t, url, http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; =x"}})
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Fatalf("HTTP/1.1 with compression off: %d %q, want 101 without extensions", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	c.nc.Close()
}

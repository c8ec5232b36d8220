package handshake_test

// Real clients' permessage-deflate offers against a colibri server
// (Accept + wsconn.Serve, compression on), through loopback sockets.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

func rlEchoServer(t *testing.T, takeover bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{
			SkipOriginCheck: true,
			Compression:     wsconn.Compression{Enabled: true, ContextTakeover: takeover},
		})
		if err != nil {
			return
		}
		_ = wsconn.Serve(context.Background(), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for m := range in.Messages(1 << 20) {
				if err := out.WriteMessage(ctx, m); err != nil {
					return err
				}
			}
			return nil
		}, &wsconn.Config{PingInterval: -1, CloseTimeout: time.Second})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

var rlPayload = strings.Repeat("compress me please, ", 2000)

func rlWantDeflate(t *testing.T, h http.Header) {
	t.Helper()
	if v := h.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(v, "permessage-deflate") {
		t.Errorf("server answered Sec-WebSocket-Extensions %q, want permessage-deflate", v)
	}
}

func TestCornerClientGorilla(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		addr := rlEchoServer(t, takeover)
		d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
		c, resp, err := d.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatalf("takeover %v: %v", takeover, err)
		}
		rlWantDeflate(t, resp.Header)
		for range 3 {
			if err := c.WriteMessage(websocket.TextMessage, []byte(rlPayload)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil || string(p) != rlPayload {
				t.Fatalf("echo: %d bytes, %v", len(p), err)
			}
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
		_ = c.Close()
	}
}

func TestCornerClientCoder(t *testing.T) {
	for _, mode := range []coder.CompressionMode{coder.CompressionContextTakeover, coder.CompressionNoContextTakeover} {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprint(mode, takeover), func(t *testing.T) {
				addr := rlEchoServer(t, takeover)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, resp, err := coder.Dial(ctx, "ws://"+addr+"/", &coder.DialOptions{CompressionMode: mode})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				c.SetReadLimit(1 << 20)
				rlWantDeflate(t, resp.Header)
				for range 3 {
					if err := c.Write(ctx, coder.MessageText, []byte(rlPayload)); err != nil {
						t.Fatal(err)
					}
					_, p, err := c.Read(ctx)
					if err != nil || string(p) != rlPayload {
						t.Fatalf("echo: %d bytes, %v", len(p), err)
					}
				}
				_ = c.Close(coder.StatusNormalClosure, "")
			})
		}
	}
}

func TestCornerClientGobwas(t *testing.T) {
	addr := rlEchoServer(t, true)
	for _, p := range []wsflate.Parameters{
		wsflate.DefaultParameters,
		{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
		{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15},
	} {
		d := ws.Dialer{Extensions: []httphead.Option{p.Option()}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, hs, err := d.Dial(ctx, "ws://"+addr+"/")
		cancel()
		got := hs.Extensions
		if err != nil {
			t.Fatalf("offer %s: %v", p.Option(), err)
		}
		if len(got) != 1 || string(got[0].Name) != "permessage-deflate" {
			t.Errorf("offer %s: answer %v", p.Option(), got)
		}
		_ = ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
		_ = c.Close()
	}
}

// The exact offers of clients not in go.mod, sent over raw TCP.
func TestCornerClientRawOffers(t *testing.T) {
	addr := rlEchoServer(t, false)
	for _, offer := range [][]string{
		{"permessage-deflate; client_max_window_bits"},    // Chromium, Node ws, Python websockets
		{"permessage-deflate"},                            // Firefox, Safari
		{"permessage-deflate; client_max_window_bits=15"}, // explicit
		{"permessage-deflate; server_max_window_bits=10; client_max_window_bits"},
		{"permessage-deflate; client_no_context_takeover; client_max_window_bits"}, // Python websockets with compress_settings
		{"x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits"},   // old WebKit + new, two lines
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15; server_max_window_bits=15"},
	} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var b strings.Builder
		b.WriteString("GET /chat HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://" + addr + "\r\n")
		for _, v := range offer {
			b.WriteString("Sec-WebSocket-Extensions: " + v + "\r\n")
		}
		b.WriteString("\r\n")
		if _, err := c.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("offer %q: %v", offer, err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("offer %q: answered %d", offer, resp.StatusCode)
		} else {
			rlWantDeflate(t, resp.Header)
		}
		_ = c.Close()
	}
}

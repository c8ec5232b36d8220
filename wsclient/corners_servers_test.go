package wsclient_test

// wsclient (compression on) against real servers' permessage-deflate
// answers, parsed by handshake.ParseExtensions. lxzan/gws is not in go.mod.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

func rlDialDeflate(t *testing.T, h http.Handler, takeover bool) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, resp, err := wsclient.Dial(ctx, "ws://"+srv.Listener.Addr().String()+"/", &wsclient.Options{
		Config: &wsconn.Config{Compression: wsconn.Compression{Enabled: true, ContextTakeover: takeover}},
	})
	if err != nil {
		t.Fatalf("takeover %v: %v", takeover, err)
	}
	defer u.Conn.Close()
	if len(u.Extensions) != 1 || u.Extensions[0].Name != "permessage-deflate" {
		t.Errorf("takeover %v: negotiated %v (answer %q)", takeover, u.Extensions, resp.Header.Values("Sec-WebSocket-Extensions"))
	}
}

func TestCornerServerGorilla(t *testing.T) {
	up := websocket.Upgrader{EnableCompression: true}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_, _, _ = c.ReadMessage()
		_ = c.Close()
	})
	rlDialDeflate(t, h, false)
	rlDialDeflate(t, h, true)
}

func TestCornerServerCoder(t *testing.T) {
	for _, mode := range []coder.CompressionMode{coder.CompressionContextTakeover, coder.CompressionNoContextTakeover} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: mode})
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, _, _ = c.Read(r.Context())
		})
		rlDialDeflate(t, h, false)
		rlDialDeflate(t, h, true)
	}
}

func TestCornerServerGobwas(t *testing.T) {
	for _, p := range []wsflate.Parameters{
		wsflate.DefaultParameters,
		{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
	} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e := wsflate.Extension{Parameters: p}
			up := ws.HTTPUpgrader{Negotiate: e.Negotiate}
			c, _, _, err := up.Upgrade(r, w)
			if err != nil {
				return
			}
			defer c.Close()
			if _, ok := e.Accepted(); !ok {
				return
			}
			_, _ = ws.ReadHeader(c)
		})
		rlDialDeflate(t, h, false)
		rlDialDeflate(t, h, true)
	}
}

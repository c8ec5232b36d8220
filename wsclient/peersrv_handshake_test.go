package wsclient_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestSubprotocolsMustBeTokens: Sec-WebSocket-Protocol is a
// list of tokens (RFC 6455 §4.1 item 10, §11.3.4), and Dial refuses an
// extension name or value that is not a token before dialing
// (formatOffers). A subprotocol that is not one, empty, holding a comma
// or a space, is not refused: "chat, json" goes out as two offers, the
// server picks "json", and Dial then fails saying json "was not offered";
// an empty one is sent as an empty list element. Node's ws client throws
// a SyntaxError for such an offer; Dial should refuse it as it refuses a
// bad extension, without opening a connection.
func TestSubprotocolsMustBeTokens(t *testing.T) {
	var conns atomic.Int32
	srv := pServer(t, func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		up := gorilla.Upgrader{Subprotocols: []string{"json"}}
		if c, err := up.Upgrade(w, r, nil); err == nil {
			c.Close()
		}
	}, nil)
	for _, protos := range [][]string{{"chat, json"}, {""}, {"chat v2"}, {"chat", "x\"y"}, {"a/b"}} {
		o := options()
		o.Subprotocols = protos
		u, _, err := wsclient.Dial(testCtx(t), wsURL(srv), o)
		if err == nil {
			u.Conn.Close()
		}
		if err == nil || errors.Is(err, wsclient.ErrHandshake) {
			t.Errorf("Subprotocols %q: Dial returned %v, want an error before any connection", protos, err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d connections reached the server", n)
	}
}

// TestFramesWithThe101OverTLS: docs/client.md "Bytes the
// server sent right after its 101 are kept and read as frames", over TLS:
// a server that writes its 101, a text message, a PING and a CLOSE in one
// TLS record. The handler gets the message, and the close is clean.
func TestFramesWithThe101OverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS() // only for its certificate
	cert := srv.TLS.Certificates[0]
	pool := certPool(srv)
	srv.Close()
	addr := tcpServer(t, func(raw net.Conn) {
		conn := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
		defer conn.Close()
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		var b []byte
		b = append(b, switchAnswer(req, "")...)
		b = append(b, advFrame(0x81, []byte(strings.Repeat("sealed ", 1000)))...)
		b = append(b, advFrame(0x89, []byte("p"))...)
		b = append(b, advClose(4100, "done")...)
		conn.Write(b)
		r := &advSrvReport{}
		advReadClient(br, r)
	})
	o := options()
	o.TLSConfig = &tls.Config{RootCAs: pool}
	var got []string
	err := wsclient.Run(testCtx(t), "wss://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for m := range in.Messages(0) {
			got = append(got, m.Text())
		}
		return in.Err()
	}, o)
	var ce *wsconn.CloseError
	if !errors.As(err, &ce) || ce.Code != 4100 || ce.Reason != "done" {
		t.Fatalf("Run returned %v, want the server's 4100", err)
	}
	if len(got) != 1 || got[0] != strings.Repeat("sealed ", 1000) {
		t.Fatalf("handler got %d messages", len(got))
	}
}

// TestClientWindowHintKept: RFC 7692 §7.1.2.2: a client that
// offers client_max_window_bits with a value hints that, "even if the
// server doesn't include the client_max_window_bits extension parameter
// in the corresponding extension negotiation response ... or if the
// server doesn't include the extension parameter at all, the client is
// not going to use an LZ77 sliding window size greater than" that value;
// a server may size its inflater by it. Python's websockets client keeps
// N then. The message is 1000 random bytes twice: compressed within a
// 9-bit window the repeat is out of reach.
func TestClientWindowHintKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	block := make([]byte, 1000)
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	msg := append(slices.Clone(block), block...)
	addr, got := serveOneMessage(t, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n")
	o := options()
	o.Config.Compression = wsconn.Compression{Enabled: true, Level: 9}
	o.Extensions = []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{
		{Name: "client_no_context_takeover"}, {Name: "server_no_context_takeover"}, {Name: "client_max_window_bits", Value: "9"}}}}
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		return out.WriteBinary(ctx, msg)
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	f := after(t, got, "the message")
	if f.h.Rsv != frames.Rsv1 {
		t.Fatalf("frame %+v is not compressed", f.h)
	}
	if len(f.p) < 1900 {
		t.Fatalf("the message compressed to %d bytes: a match reached back 1000 bytes, past the 512-byte window offered", len(f.p))
	}
}

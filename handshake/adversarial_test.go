package handshake_test

// Adversarial opening handshakes against handshake.Accept (and the router
// that calls it) over real loopback sockets: edge values of every header
// RFC 6455 §4.2.1 and RFC 7692 read, request bodies and pipelined bytes.
// It reuses upgradeServers, exchange and gobwasTestRequest from
// gobwas_test.go and quietLogger from fuzz_test.go.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// advKey is the key of gobwasTestRequest.
const advKey = "dGhlIHNhbXBsZSBub25jZQ=="

// advRequest is gobwasTestRequest with the extra header lines in extra
// (each ending in CRLF) added before the blank line.
func advRequest(path, host, extra string) string {
	return strings.TrimSuffix(gobwasTestRequest(path, host), "\r\n") + extra + "\r\n"
}

// advFirst is what the handler of an advServer connection got first.
type advFirst struct {
	msg string
	err error
}

// advServer serves /adv with handshake.Accept: subprotocols chat and
// superchat, origins *.example.com, compression on. The handler reports
// the first message it receives (or the error that ended the loop) on
// the returned channel, then returns. The cleanup waits for every handler.
func advServer(t *testing.T) (addr string, first <-chan advFirst) {
	t.Helper()
	ch := make(chan advFirst, 16)
	done := make(chan struct{}, 64)
	var started atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{
			Subprotocols:   []string{"chat", "superchat"},
			OriginPatterns: []string{"*.example.com"},
			Compression:    wsconn.Compression{Enabled: true},
			Timeout:        5 * time.Second,
		})
		if err != nil {
			return
		}
		started.Add(1)
		defer func() { done <- struct{}{} }()
		cfg := &wsconn.Config{Logger: quietLogger, PingInterval: -1, CloseTimeout: time.Second, Compression: wsconn.Compression{Enabled: true}}
		_ = wsconn.Serve(context.Background(), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			report := func(f advFirst) {
				select {
				case ch <- f:
				default: // nobody listens
				}
			}
			for m := range in.Messages(0) {
				report(advFirst{msg: string(m.Payload)})
				return nil
			}
			report(advFirst{err: in.Err()})
			return nil
		}, cfg)
	}))
	t.Cleanup(func() {
		srv.Close()
		for range started.Load() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("a WebSocket handler did not return")
				return
			}
		}
	})
	return srv.Listener.Addr().String(), ch
}

// maskedText is a client's masked text frame carrying s (under 126 bytes).
func maskedText(s string) []byte {
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	b := []byte{0x81, 0x80 | byte(len(s)), mask[0], mask[1], mask[2], mask[3]}
	for i := 0; i < len(s); i++ {
		b = append(b, s[i]^mask[i%4])
	}
	return b
}

// maskedClose is a client's masked CLOSE 1000 frame.
var maskedClose = []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}

// advDial opens a loopback connection with a deadline.
func advDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

// advExpect sends raw and checks the answer: status, a part of the body
// for a refusal (which must have a body), and header values ("" for a
// header that must be absent).
func advExpect(t *testing.T, addr, raw string, status int, body string, header map[string]string) *http.Response {
	t.Helper()
	c, br := advDial(t, addr)
	resp, got, err := exchange(c, br, raw)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d %q, want %d", resp.StatusCode, got, status)
	}
	if status != http.StatusSwitchingProtocols && (strings.TrimSpace(got) == "" || !strings.Contains(got, body)) {
		t.Fatalf("%d with body %q, want a body with %q", status, got, body)
	}
	for k, want := range header {
		vs := resp.Header.Values(k)
		if want == "" && len(vs) != 0 || want != "" && (len(vs) != 1 || vs[0] != want) {
			t.Fatalf("%d: header %s = %q, want %q", status, k, vs, want)
		}
	}
	if status == http.StatusSwitchingProtocols {
		_, _ = c.Write(maskedClose)
	}
	return resp
}

// TestAdversarialKeyAndVersion: RFC 6455 §4.2.1 items 5 and 6 at their
// edges. A key must be exactly one header whose value decodes from
// standard base64 to 16 bytes; a version other than exactly 13 gets 426
// with Sec-WebSocket-Version: 13 (§4.2.2).
func TestAdversarialKeyAndVersion(t *testing.T) {
	addr, _ := upgradeServers(t)
	base := gobwasTestRequest("/colibri", "x")
	key := func(v string) string {
		return strings.Replace(base, "Sec-WebSocket-Key: "+advKey, "Sec-WebSocket-Key: "+v, 1)
	}
	ver := func(v string) string {
		return strings.Replace(base, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: "+v, 1)
	}
	const badKey, badVersion = "16 bytes in base64", "speaks version 13"
	for _, tc := range []struct {
		name, raw string
		status    int
		body      string
	}{
		{"key without padding (22 chars)", key("dGhlIHNhbXBsZSBub25jZQ"), 400, badKey},
		{"key of 23 chars", key("dGhlIHNhbXBsZSBub25jZQ="), 400, badKey},
		{"key of 25 chars", key(advKey + "A"), 400, badKey},
		{"key in URL-safe base64", key("-_-_-_-_-_-_-_-_-_-_-w=="), 400, badKey},
		{"key of 12 bytes padded to 24 chars", key("AAAAAAAAAAAAAAAA========"), 400, badKey},
		{"key with a space inside", key("dGhlIHNhbXBs ZSBub25jZQ="), 400, badKey},
		{"empty key", key(""), 400, badKey},
		{"very long key", key(strings.Repeat("A", 8000)), 400, badKey},
		{"two keys on one line", key(advKey + ", " + advKey), 400, badKey},
		{"the same key twice", strings.Replace(base, "\r\n\r\n", "\r\nSec-WebSocket-Key: "+advKey+"\r\n\r\n", 1), 400, "exactly one Sec-WebSocket-Key"},
		{"key surrounded by blanks", key(" \t" + advKey + " \t"), 101, ""},
		{"version 0", ver("0"), 426, badVersion},
		{"version 013", ver("013"), 426, badVersion},
		{"version 14", ver("14"), 426, badVersion},
		{"version list 13, 8", ver("13, 8"), 426, badVersion},
		{"version empty", ver(""), 426, badVersion},
		{"version 13 on two lines", strings.Replace(base, "\r\n\r\n", "\r\nSec-WebSocket-Version: 13\r\n\r\n", 1), 426, badVersion},
		{"version 13 with blanks", ver(" 13 "), 101, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.status == 426 {
				h["Sec-WebSocket-Version"] = "13"
			}
			resp := advExpect(t, addr, tc.raw, tc.status, tc.body, h)
			if tc.status == 101 {
				sum := sha1.Sum([]byte(advKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
					t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
				}
			}
		})
	}
}

// TestAdversarialMethodProtoHostAndTokens: the request line and the
// Connection and Upgrade token lists (RFC 6455 §4.2.1 items 1 to 4; RFC
// 9110 §7.6.1, §7.8: lists, case-insensitive).
func TestAdversarialMethodProtoHostAndTokens(t *testing.T) {
	addr, _ := upgradeServers(t)
	base := gobwasTestRequest("/colibri", "x")
	conn := func(v string) string { return strings.Replace(base, "Connection: Upgrade", "Connection: "+v, 1) }
	upg := func(v string) string { return strings.Replace(base, "Upgrade: websocket", "Upgrade: "+v, 1) }
	for _, tc := range []struct {
		name, raw string
		status    int
		body      string
		header    map[string]string
	}{
		{"PUT", "PUT" + strings.TrimPrefix(base, "GET"), 405, "must use GET", map[string]string{"Allow": "GET"}},
		{"OPTIONS", "OPTIONS" + strings.TrimPrefix(base, "GET"), 405, "must use GET", map[string]string{"Allow": "GET"}},
		{"lower-case get", "get" + strings.TrimPrefix(base, "GET"), 405, "must use GET", map[string]string{"Allow": "GET"}},
		{"HTTP/1.0 with Host", strings.Replace(base, "HTTP/1.1", "HTTP/1.0", 1), 400, "needs HTTP/1.1", nil},
		{"no Host at all", strings.Replace(base, "Host: x\r\n", "", 1), 400, "Host", nil},
		{"Connection mixed case", conn("uPgRaDe"), 101, "", nil},
		{"Connection list without blanks", conn("keep-alive,Upgrade,close"), 101, "", nil},
		{"Connection list with empty elements", conn(", ,Upgrade,,"), 101, "", nil},
		{"Connection token inside another", conn("Upgrade-Insecure-Requests"), 400, "Connection: Upgrade", nil},
		{"Connection Upgrade with a parameter", conn("Upgrade;q=1"), 400, "Connection: Upgrade", nil},
		{"Upgrade list websocket first", upg("websocket, h2c"), 101, "", nil},
		{"Upgrade mixed case", upg("WebSocket"), 101, "", nil},
		{"Upgrade with a version", upg("websocket/13"), 426, "Upgrade: websocket",
			map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"}},
		{"Upgrade h2c only", upg("h2c"), 426, "Upgrade: websocket",
			map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			advExpect(t, addr, tc.raw, tc.status, tc.body, tc.header)
		})
	}

	// HEAD: 405 with Allow, and no body on the wire (RFC 9110 §9.3.2).
	t.Run("HEAD", func(t *testing.T) {
		c, br := advDial(t, addr)
		if _, err := io.WriteString(c, "HEAD"+strings.TrimPrefix(base, "GET")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
			t.Fatalf("HEAD: %d Allow %q, want 405 Allow GET", resp.StatusCode, resp.Header.Get("Allow"))
		}
		// The connection goes on: the next request is answered at once,
		// which it would not be if a body had followed the HEAD's headers.
		resp, body, err := exchange(c, br, strings.Replace(base, "Version: 13", "Version: 8", 1))
		if err != nil || resp.StatusCode != 426 || !strings.Contains(body, "version 13") {
			t.Fatalf("request after HEAD: %v %v %q", resp, err, body)
		}
	})
}

// TestAdversarialOriginEdges: CheckOrigin over the wire (403 with a body
// for another site), with Accept's OriginPatterns *.example.com.
func TestAdversarialOriginEdges(t *testing.T) {
	addr, _ := advServer(t)
	for _, tc := range []struct {
		host, origin string
		status       int
	}{
		{"app.test", "http://app.test", 101},
		{"app.test", "http://APP.test", 101},
		{"app.test:8080", "http://app.test:8080", 101},
		{"app.test:8080", "http://app.test:9090", 403},
		{"app.test", "http://evil.test", 403},
		{"app.test", "http://app.test.evil.test", 403},
		{"app.test", "http://evil.test/app.test", 403},
		{"app.test", "ws://app.test", 403},
		{"app.test", "http://app.test/", 403},
		{"app.test", "http://user@app.test", 403},
		{"app.test", "null", 403},
		{"app.test", "http://a.example.com", 101},
		{"app.test", "http://example.com", 403},
		{"app.test", "http://a.example.com.evil.test", 403},
	} {
		t.Run(tc.origin+" to "+tc.host, func(t *testing.T) {
			raw := advRequest("/adv", tc.host, "Origin: "+tc.origin+"\r\n")
			advExpect(t, addr, raw, tc.status, "rigin", nil)
		})
	}
}

// TestAdversarialSubprotocolLists: the client's list may have odd blanks,
// empty elements and repeats, and be spread over lines; the answer names
// exactly one offered subprotocol, the client's first supported, or none
// (RFC 6455 §4.2.2 item 5.4, §11.3.4; subprotocol names are
// case-sensitive).
func TestAdversarialSubprotocolLists(t *testing.T) {
	addr, _ := advServer(t)
	for _, tc := range []struct {
		name, lines, want string
	}{
		{"odd blanks", "Sec-WebSocket-Protocol:   superchat \t,chat  \r\n", "superchat"},
		{"empty elements", "Sec-WebSocket-Protocol: , ,,chat,,\r\n", "chat"},
		{"repeated", "Sec-WebSocket-Protocol: chat, chat, superchat\r\n", "chat"},
		{"other case", "Sec-WebSocket-Protocol: CHAT, SuperChat\r\n", ""},
		{"empty header", "Sec-WebSocket-Protocol: \r\n", ""},
		{"unsupported then supported on two lines", "Sec-WebSocket-Protocol: v1\r\nSec-WebSocket-Protocol: superchat, chat\r\n", "superchat"},
		{"with a parameter", "Sec-WebSocket-Protocol: chat;v=1\r\n", ""},
		{"quoted", "Sec-WebSocket-Protocol: \"chat\"\r\n", ""},
		{"long list ending in chat", "Sec-WebSocket-Protocol: " + longProtocolList(20000) + ", chat\r\n", "chat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			advExpect(t, addr, advRequest("/adv", "x", tc.lines), 101, "", map[string]string{"Sec-WebSocket-Protocol": tc.want})
		})
	}
}

// longProtocolList is n distinct unsupported subprotocols.
func longProtocolList(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "p%d", i)
	}
	return b.String()
}

// TestAdversarialDeflateOffers: permessage-deflate offers at the edges of
// RFC 7692 §7.1, answered over the wire with compression on. An offer the
// server cannot honour is declined (101 without the extension); a
// malformed header gets 400 with a body.
func TestAdversarialDeflateOffers(t *testing.T) {
	addr, _ := advServer(t)
	const granted = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tc := range []struct {
		offer  string
		status int
		want   string // the answer's extensions, "" for none
	}{
		{"permessage-deflate; server_max_window_bits=8", 101, granted + "; server_max_window_bits=8"},
		{"permessage-deflate; server_max_window_bits=15", 101, granted + "; server_max_window_bits=15"},
		{"permessage-deflate; server_max_window_bits=16", 101, ""},
		{"permessage-deflate; server_max_window_bits=7", 101, ""},
		{"permessage-deflate; server_max_window_bits", 101, ""},
		{"permessage-deflate; server_max_window_bits=", 400, "malformed Sec-WebSocket-Extensions"},
		{`permessage-deflate; server_max_window_bits="10"`, 101, granted + "; server_max_window_bits=10"},
		{`permessage-deflate; server_max_window_bits="1 0"`, 400, "malformed Sec-WebSocket-Extensions"}, // unquoted, not a token (RFC 6455 §9.1)
		{"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9", 101, ""},
		{"permessage-deflate; client_max_window_bits", 101, granted},
		{"permessage-deflate; client_max_window_bits=8", 101, granted},
		{`permessage-deflate; client_max_window_bits="15"`, 101, granted},
		{"permessage-deflate; client_max_window_bits=16", 101, ""},
		{"permessage-deflate; client_max_window_bits; client_max_window_bits", 101, ""},
		{"permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits", 101, granted},
		{"x-unknown; level=9", 101, ""},
		{"x-unknown; level=9, permessage-deflate; server_max_window_bits=9", 101, granted + "; server_max_window_bits=9"},
		{"PERMESSAGE-DEFLATE", 101, ""},
		{"permessage-deflate; a=b=c", 400, "malformed Sec-WebSocket-Extensions"},
		{"permessage-deflate;;", 400, "malformed Sec-WebSocket-Extensions"},
		{"permessage-deflate; =1", 400, "malformed Sec-WebSocket-Extensions"},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			raw := advRequest("/adv", "x", "Sec-WebSocket-Extensions: "+tc.offer+"\r\n")
			if tc.status != 101 {
				advExpect(t, addr, raw, tc.status, tc.want, nil)
				return
			}
			advExpect(t, addr, raw, 101, "", map[string]string{"Sec-WebSocket-Extensions": tc.want})
		})
	}
}

// TestAdversarialDeflateWindowBitsWithSign: RFC 7692 §7.1.2.1 makes the
// value of server_max_window_bits "a decimal integer value without leading
// zeroes between 8 to 15", i.e. plain digits. An offer of "+9" is not
// one: it must be declined (or answered with a valid value), never echoed
// as "+9", an answer that a strict client (colibri's own wsclient among
// them) must refuse, failing the connection.
func TestAdversarialDeflateWindowBitsWithSign(t *testing.T) {
	addr, _ := advServer(t)
	for _, v := range []string{"+9", "+15", `"+9"`} {
		t.Run(v, func(t *testing.T) {
			resp := advExpect(t, addr, advRequest("/adv", "x", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits="+v+"\r\n"), 101, "", nil)
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(got, "+") {
				t.Fatalf("answer %q: not a valid server_max_window_bits value", got)
			}
		})
	}
}

// TestAdversarialPipelinedFrameReachesHandler: a client may send its first
// frame in the same write as the request; it is the connection's first
// message, not lost in net/http's buffer.
func TestAdversarialPipelinedFrameReachesHandler(t *testing.T) {
	addr, first := advServer(t)
	c, br := advDial(t, addr)
	raw := append([]byte(advRequest("/adv", "x", "")), maskedText("early")...)
	raw = append(raw, maskedClose...)
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("answer %v, %v", resp, err)
	}
	select {
	case got := <-first:
		if got.msg != "early" {
			t.Fatalf("first message %q (%v), want the pipelined frame", got.msg, got.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler got nothing")
	}
}

// TestAdversarialRequestBodyIsNotWebSocketData: an upgrade request with a
// body. RFC 9110 §7.8: "a client cannot begin using an upgraded protocol on
// the connection until it has completely sent the request message", so
// the body belongs to HTTP and must not be read as WebSocket frames. The
// server may refuse the request, or switch and start the WebSocket after
// the body; either way the handler never gets the body as a message.
func TestAdversarialRequestBodyIsNotWebSocketData(t *testing.T) {
	frame := string(maskedText("smuggled"))
	for _, tc := range []struct {
		name, extra, body string
	}{
		{"Content-Length", fmt.Sprintf("Content-Length: %d\r\n", len(frame)), frame},
		{"chunked", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(frame), frame)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, first := advServer(t)
			c, br := advDial(t, addr)
			if _, err := io.WriteString(c, advRequest("/adv", "x", tc.extra)+tc.body); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 101 {
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode/100 != 4 || len(strings.TrimSpace(string(body))) == 0 {
					t.Fatalf("refused with %d %q, want a 4xx with a body", resp.StatusCode, body)
				}
				return
			}
			if _, err := c.Write(append(maskedText("real"), maskedClose...)); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-first:
				if got.msg != "real" {
					t.Fatalf("the handler's first message is %q (%v), want %q: the request body was read as WebSocket data", got.msg, got.err, "real")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the handler got nothing")
			}
		})
	}
}

// TestAdversarialHugeHeaderGets431: a request whose headers pass net/http's
// MaxHeaderBytes (1 MiB) is refused with 431 before colibri runs, with a
// body; headers just under it are served.
func TestAdversarialHugeHeaderGets431(t *testing.T) {
	addr, _ := upgradeServers(t)
	c, br := advDial(t, addr)
	raw := advRequest("/colibri", "x", "X-Pad: "+strings.Repeat("a", 2<<20)+"\r\n")
	// The server may answer and close before it has read everything.
	go func() { _, _ = io.WriteString(c, raw) }()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || len(body) == 0 {
		t.Fatalf("%d %q, want 431 with a body", resp.StatusCode, body)
	}
	c.Close()

	advExpect(t, addr, advRequest("/colibri", "x", "X-Pad: "+strings.Repeat("a", 900<<10)+"\r\n"), 101, "", nil)
}

// TestAdversarialRouterRefusalAfterTheDecision: router.Upgrade's header is
// "added to the 101 response" (docs/routing.md); a refusal must not carry
// it, nor the Connection: Upgrade of an accepted handshake. A malformed
// Sec-WebSocket-Extensions with compression on (400, docs/security.md) is
// refused before the decision runs; an upgrade during shutdown (503) after
// it.
func TestAdversarialRouterRefusalAfterTheDecision(t *testing.T) {
	var decisions atomic.Int32
	r := router.New(router.WithConfig(wsconn.Config{Logger: quietLogger, Compression: wsconn.Compression{Enabled: true}}))
	r.Use(func(h http.Handler) http.Handler { return h }) // with middleware, the route sets Upgrade and Connection for it
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		decisions.Add(1)
		return struct{}{}, router.Upgrade(http.Header{"X-Decided": {"yes"}})
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	none := map[string]string{"Sec-WebSocket-Accept": "", "X-Decided": "", "Connection": ""}
	t.Run("malformed extensions", func(t *testing.T) {
		advExpect(t, addr, advRequest("/ws", addr, "Sec-WebSocket-Extensions: permessage-deflate; a=b=c\r\n"), 400,
			"malformed Sec-WebSocket-Extensions", none)
	})
	t.Run("shutting down", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		advExpect(t, addr, advRequest("/ws", addr, ""), 503, "shutting down", none)
	})
	if n := decisions.Load(); n != 1 {
		t.Fatalf("the decision ran %d times, want 1 (not for the malformed offer)", n)
	}
}

package wsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

func TestDialRefusalCarriesStatusHeadersAndBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chat"`)
		http.Error(w, "token required", http.StatusUnauthorized)
	}))
	defer srv.Close()
	u, resp, err := wsclient.Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", options())
	if u.Conn != nil {
		t.Fatal("a refused dial returned a connection")
	}
	if !errors.Is(err, wsclient.ErrHandshake) {
		t.Fatalf("error %v does not match ErrHandshake", err)
	}
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("error %T is not a *HandshakeError", err)
	}
	if he.StatusCode != 401 || he.Status != "401 Unauthorized" || string(he.Body) != "token required\n" ||
		he.Header.Get("WWW-Authenticate") != `Bearer realm="chat"` || he.Proxy || he.Reason != "" {
		t.Fatalf("refusal %+v", he)
	}
	if got := err.Error(); got != "wsclient: handshake refused: 401 Unauthorized: token required" {
		t.Fatalf("error text %q", got)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || string(body) != "token required\n" {
		t.Fatalf("response %d with body %q", resp.StatusCode, body)
	}
}

func TestDialRefusalBodyIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(bytes.Repeat([]byte("z"), 3*wsclient.MaxErrorBody))
	}))
	defer srv.Close()
	_, _, err := wsclient.Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http"), options())
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 503 || len(he.Body) != wsclient.MaxErrorBody {
		t.Fatalf("got %v with a body of %d bytes, want 503 with %d", err, len(he.Body), wsclient.MaxErrorBody)
	}
	if len(err.Error()) > 300 {
		t.Fatalf("error text of %d bytes: the body must be summarised", len(err.Error()))
	}
}

// accept computes Sec-WebSocket-Accept for a request, as a server would.
func accept(req *http.Request) string {
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestDialRejectsInvalidSwitch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func(req *http.Request) string // the 101 response's headers
		opts   func(o *wsclient.Options)
		reason string
	}{
		{"wrong accept", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		}, nil, "Sec-WebSocket-Accept is"},
		{"missing accept", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		}, nil, "Sec-WebSocket-Accept is \"\""},
		{"no upgrade", func(req *http.Request) string {
			return "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\n"
		}, nil, "Upgrade header"},
		{"no connection", func(req *http.Request) string {
			return "Upgrade: websocket\r\nSec-WebSocket-Accept: " + accept(req) + "\r\n"
		}, nil, "Connection header"},
		{"subprotocol not offered", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\nSec-WebSocket-Protocol: mqtt\r\n"
		}, func(o *wsclient.Options) { o.Subprotocols = []string{"chat"} }, `subprotocol "mqtt", which was not offered`},
		{"subprotocol without offer", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\nSec-WebSocket-Protocol: chat\r\n"
		}, nil, `subprotocol "chat", which was not offered`},
		{"two subprotocols", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\nSec-WebSocket-Protocol: chat, v2\r\n"
		}, func(o *wsclient.Options) { o.Subprotocols = []string{"chat", "v2"} }, "several subprotocols"},
		{"extension not offered", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
		}, nil, `extension "permessage-deflate", which was not offered`},
		{"malformed extensions", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\nSec-WebSocket-Extensions: x-a; =\r\n"
		}, func(o *wsclient.Options) { o.Extensions = []wsconn.Extension{{Name: "x-a"}} }, "malformed Sec-WebSocket-Extensions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) {
				fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", tc.header(req))
				io.Copy(io.Discard, conn)
			})
			o := options()
			if tc.opts != nil {
				tc.opts(o)
			}
			_, _, err := wsclient.Dial(testCtx(t), "ws://"+addr+"/", o)
			var he *wsclient.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != 101 || !strings.Contains(he.Reason, tc.reason) {
				t.Fatalf("got %v, want an invalid 101 because %s", err, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), "wsclient: invalid handshake response: ") {
				t.Fatalf("error text %q", err)
			}
		})
	}
}

func TestDialRequestAndNegotiation(t *testing.T) {
	got := make(chan *http.Request, 1)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		got <- req
		// The first frame comes in the same write as the 101 response, so
		// the client finds it already buffered with the handshake.
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: v2\r\nSec-WebSocket-Extensions: x-colibri-test; level=2\r\n"+
			"Set-Cookie: session=abc\r\n\r\n\x81\x05early", accept(req))
		readFrames(conn, br, nil)
	})
	o := options()
	o.Header = http.Header{"X-Token": {"t0k"}, "Host": {"chat.example"}, "Sec-Websocket-Version": {"8"}}
	o.Subprotocols = []string{"v1", "v2"}
	o.Extensions = []wsconn.Extension{{Name: "x-colibri-test", Params: []wsconn.ExtensionParam{{Name: "level", Value: "2"}}}}
	var early string
	err := wsclient.Run(testCtx(t), "ws://ann:pw@"+addr+"/rooms/1?x=y", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if s.Subprotocol() != "v2" {
			return fmt.Errorf("subprotocol %q", s.Subprotocol())
		}
		if e := s.Extensions(); len(e) != 1 || e[0].String() != "x-colibri-test; level=2" {
			return fmt.Errorf("extensions %v", e)
		}
		if c := s.Value.Cookies(); len(c) != 1 || c[0].Value != "abc" {
			return fmt.Errorf("cookies of the 101 response: %v", c)
		}
		for m := range in.Messages(0) {
			early = string(m.Payload)
			break
		}
		return nil
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	if early != "early" {
		t.Fatalf("first message %q, want the bytes that came with the handshake", early)
	}
	req := <-got
	for k, want := range map[string]string{
		"X-Token":                  "t0k",
		"Authorization":            "Basic YW5uOnB3", // ann:pw
		"Sec-Websocket-Version":    "13",
		"Sec-Websocket-Protocol":   "v1, v2",
		"Sec-Websocket-Extensions": "x-colibri-test; level=2",
		"Upgrade":                  "websocket",
		"Connection":               "Upgrade",
	} {
		if v := strings.Join(req.Header.Values(k), ","); v != want {
			t.Errorf("request header %s: %q, want %q", k, v, want)
		}
	}
	if req.Host != "chat.example" || req.RequestURI != "/rooms/1?x=y" || req.Method != "GET" {
		t.Errorf("request %s %s for host %s", req.Method, req.RequestURI, req.Host)
	}
	if key, err := base64.StdEncoding.DecodeString(req.Header.Get("Sec-WebSocket-Key")); err != nil || len(key) != 16 {
		t.Errorf("Sec-WebSocket-Key %q", req.Header.Get("Sec-WebSocket-Key"))
	}
}

func TestDialCompressionAnswers(t *testing.T) {
	const offer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	for _, tc := range []struct {
		answer string
		reason string // "" for an answer to accept
	}{
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", ""},
		{"permessage-deflate; server_no_context_takeover", ""},
		{"permessage-deflate; server_no_context_takeover; server_max_window_bits=10", ""},
		{"permessage-deflate", "server_no_context_takeover was asked for and not granted"},
		{"permessage-deflate; server_no_context_takeover; x-level=3", `unknown parameter "x-level"`},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", "given twice"},
		{"permessage-deflate; server_no_context_takeover=1", "takes no value"},
		{"permessage-deflate; server_no_context_takeover; client_max_window_bits=10", "client_max_window_bits was not offered"},
		{"permessage-deflate; server_no_context_takeover; server_max_window_bits=010", "not 8 to 15"},
		{"permessage-deflate; server_no_context_takeover; server_max_window_bits=16", "not 8 to 15"},
		{"permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover", "twice"},
	} {
		t.Run(tc.answer, func(t *testing.T) {
			offered := make(chan string, 1)
			addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				offered <- req.Header.Get("Sec-WebSocket-Extensions")
				fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: %s\r\n\r\n", accept(req), tc.answer)
				io.Copy(io.Discard, br)
			})
			o := options()
			o.Config.Compression.Enabled = true
			u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
			if got := <-offered; got != offer {
				t.Fatalf("offered %q, want %q", got, offer)
			}
			if tc.reason == "" {
				if err != nil || len(u.Extensions) != 1 {
					t.Fatalf("got %v with extensions %v", err, u.Extensions)
				}
				u.Conn.Close()
				return
			}
			var he *wsclient.HandshakeError
			if !errors.As(err, &he) || !errors.Is(err, wsclient.ErrCompressionResponse) || !strings.Contains(he.Reason, tc.reason) {
				t.Fatalf("got %v, want an unusable compression answer: %s", err, tc.reason)
			}
		})
	}
}

// readFrames reads the client's frames, handing each to f (when not nil),
// until the client's CLOSE, which it answers with 1000.
func readFrames(conn net.Conn, br *bufio.Reader, f func(h frames.Header, payload []byte)) {
	for {
		h, p, err := pReadFrame(br)
		if err != nil {
			return
		}
		if f != nil {
			f(h, p)
		}
		if h.Op == frames.OpClose {
			conn.Write([]byte{0x88, 0x02, 0x03, 0xe8})
			return
		}
	}
}

// TestClientMasksEveryFrameWithAFreshKey reads the client's frames off the
// wire: each must be masked (RFC 6455 §5.3), with keys that differ.
func TestClientMasksEveryFrameWithAFreshKey(t *testing.T) {
	got := make(chan frames.Header, 8)
	payloads := make(chan string, 8)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept(req))
		defer close(got)
		readFrames(conn, br, func(h frames.Header, p []byte) {
			got <- h
			payloads <- string(p)
		})
	})
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for range 4 {
			if err := out.WriteText(ctx, "same payload"); err != nil {
				return err
			}
		}
		return out.Ping(ctx, []byte("p"))
	}, options())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[[4]byte]bool{}
	var ops []frames.Opcode
	for h := range got {
		p := <-payloads
		if !h.Masked {
			t.Fatalf("the client sent an unmasked %v frame", h.Op)
		}
		if h.Op == frames.OpText && p != "same payload" {
			t.Fatalf("text frame unmasks to %q", p)
		}
		keys[h.Mask] = true
		ops = append(ops, h.Op)
	}
	if len(ops) != 6 || ops[4] != frames.OpPing || ops[5] != frames.OpClose || len(keys) != 6 {
		t.Fatalf("frames %v with %d distinct keys, want 4 text, a ping and the close, each with a fresh key", ops, len(keys))
	}
}

func TestClientRejectsMaskedServerFrames(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		// A masked text frame: servers must not mask (RFC 6455 §5.1).
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept(req))
		conn.Write([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2})
		io.Copy(io.Discard, br)
	})
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for range in.Messages(0) {
		}
		return in.Err()
	}, options())
	if !errors.Is(err, frames.ErrMasked) || wsconn.CloseStatus(err) != frames.CloseProtocolError {
		t.Fatalf("Run returned %v, want a 1002 close for the masked frame", err)
	}
}

func TestDialBadURL(t *testing.T) {
	o := options()
	o.NetDial = func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("must not dial") }
	for _, u := range []string{"ftp://ann:s3cret@example.com/", "ws://ann:s3cret@example.com/#frag", "ws:///path", "ws://ann:s3cret@[::1"} {
		_, _, err := wsclient.Dial(testCtx(t), u, o)
		if err == nil || !strings.HasPrefix(err.Error(), "wsclient: ") || strings.Contains(err.Error(), "must not dial") {
			t.Errorf("Dial(%q): %v", u, err)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Dial(%q): the error shows the password: %v", u, err)
		}
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.Copy(io.Discard, br) // never answers
	})
	o := options()
	o.HandshakeTimeout = 50 * time.Millisecond
	start := time.Now()
	_, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handshake took longer than 50ms") {
		t.Fatalf("got %v, want the handshake timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the timeout took %v", d)
	}

	ctx, cancel := context.WithCancel(testCtx(t))
	time.AfterFunc(20*time.Millisecond, cancel)
	_, _, err = wsclient.Dial(ctx, "ws://"+addr, options())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v after cancelling the context", err)
	}
}

func TestDialConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = wsclient.Dial(testCtx(t), "ws://"+addr+"/x", options())
	if err == nil || errors.Is(err, wsclient.ErrHandshake) || !strings.HasPrefix(err.Error(), "wsclient: dial ws://"+addr+"/x: ") {
		t.Fatalf("got %v", err)
	}
}

package wsclient_test

// The client against hostile or broken servers, on raw loopback
// listeners (rawServer, tcpServer from helpers_test.go; accept and
// switchAnswer from dial_test.go and gobwas_test.go): each answer must
// end Dial with the error docs/client.md "Errors" documents, quickly, and
// leave no goroutine behind (TestMain checks).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// advAnswer serves one canned answer to every handshake, then waits for
// the client to hang up.
func advAnswer(t *testing.T, answer func(req *http.Request) string) string {
	t.Helper()
	return rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		_, _ = io.WriteString(conn, answer(req))
		_, _ = io.Copy(io.Discard, br)
	})
}

// advDialFails dials addr and checks that it fails within limit, returns
// no connection and, when wantHandshake, a *HandshakeError (else an error
// that is not one, wrapped with the URL).
func advDialFails(t *testing.T, addr string, o *wsclient.Options, limit time.Duration, wantHandshake bool) error {
	t.Helper()
	start := time.Now()
	u, resp, err := wsclient.Dial(testCtx(t), "ws://"+addr+"/p", o)
	if d := time.Since(start); d > limit {
		t.Errorf("Dial took %v, want under %v", d, limit)
	}
	if err == nil {
		u.Conn.Close()
		t.Fatalf("Dial accepted the answer (subprotocol %q, extensions %v, response %v)", u.Subprotocol, u.Extensions, resp.Header)
	}
	if u.Conn != nil {
		t.Errorf("a failed Dial returned a connection")
	}
	if wantHandshake != errors.Is(err, wsclient.ErrHandshake) {
		t.Fatalf("got %v; want a HandshakeError: %v", err, wantHandshake)
	}
	if !wantHandshake && !strings.HasPrefix(err.Error(), "wsclient: dial ws://"+addr+"/p: ") {
		t.Fatalf("error %q is not wrapped with the URL", err)
	}
	return err
}

// TestAdversarialClientNon101Answers: any status other than 101, even
// with every header of a switch and a body, is a refusal: a HandshakeError
// with the status, headers and body, and no connection (docs/client.md
// "Errors").
func TestAdversarialClientNon101Answers(t *testing.T) {
	for _, tc := range []struct {
		status string
		body   string
	}{
		{"200 OK", "not a websocket\n"},
		{"204 No Content", ""},
		{"426 Upgrade Required", "use version 13\n"},
		{"302 Found", "moved\n"},
	} {
		t.Run(tc.status, func(t *testing.T) {
			addr := advAnswer(t, func(req *http.Request) string {
				h := fmt.Sprintf("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Version: 13\r\nLocation: /x\r\n", accept(req))
				if tc.status == "204 No Content" {
					return "HTTP/1.1 " + tc.status + "\r\n" + h + "\r\n"
				}
				return fmt.Sprintf("HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s", tc.status, h, len(tc.body), tc.body)
			})
			err := advDialFails(t, addr, options(), 5*time.Second, true)
			var he *wsclient.HandshakeError
			if !errors.As(err, &he) || he.Status != tc.status || string(he.Body) != tc.body || he.Reason != "" || he.Proxy ||
				he.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatalf("HandshakeError %+v", he)
			}
		})
	}
}

// TestAdversarialClientInvalidSwitches: 101 answers that break RFC 6455
// §4.1 in ways dial_test.go does not try; each is a HandshakeError with
// StatusCode 101 and a Reason.
func TestAdversarialClientInvalidSwitches(t *testing.T) {
	good := func(req *http.Request) string {
		return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept(req) + "\r\n"
	}
	for _, tc := range []struct {
		name   string
		header func(req *http.Request) string
		offer  []string // subprotocols offered
		reason string
	}{
		{"accept twice", func(req *http.Request) string {
			return good(req) + "Sec-WebSocket-Accept: " + accept(req) + "\r\n"
		}, nil, "Sec-WebSocket-Accept"},
		{"accept in lower case", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + strings.ToLower(accept(req)) + "\r\n"
		}, nil, "Sec-WebSocket-Accept"},
		{"accept of the key itself", func(req *http.Request) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + req.Header.Get("Sec-WebSocket-Key") + "\r\n"
		}, nil, "Sec-WebSocket-Accept"},
		{"Upgrade h2c", func(req *http.Request) string {
			return strings.Replace(good(req), "Upgrade: websocket", "Upgrade: h2c", 1)
		}, nil, "Upgrade header"},
		{"Connection close", func(req *http.Request) string {
			return strings.Replace(good(req), "Connection: Upgrade", "Connection: close", 1)
		}, nil, "Connection header"},
		{"Connection Upgrade-Insecure-Requests", func(req *http.Request) string {
			return strings.Replace(good(req), "Connection: Upgrade", "Connection: Upgrade-Insecure-Requests", 1)
		}, nil, "Connection header"},
		{"subprotocol in another case", func(req *http.Request) string {
			return good(req) + "Sec-WebSocket-Protocol: CHAT\r\n"
		}, []string{"chat"}, "not offered"},
		{"two subprotocols on two lines", func(req *http.Request) string {
			return good(req) + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: v2\r\n"
		}, []string{"chat", "v2"}, "several subprotocols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := advAnswer(t, func(req *http.Request) string {
				return "HTTP/1.1 101 Switching Protocols\r\n" + tc.header(req) + "\r\n"
			})
			o := options()
			o.Subprotocols = tc.offer
			err := advDialFails(t, addr, o, 5*time.Second, true)
			var he *wsclient.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != 101 || !strings.Contains(he.Reason, tc.reason) {
				t.Fatalf("got %v, want an invalid 101 because of %s", err, tc.reason)
			}
		})
	}
}

// TestAdversarialClientMalformedTokens: RFC 6455 §4.1 makes the client
// fail a 101 whose Upgrade is not "websocket" (case-insensitively), whose
// Connection has no "Upgrade" token, or whose Sec-WebSocket-Protocol
// names a subprotocol that was not offered. A value that merely begins
// with the right token ("websocket/2", "chat;q=1") is none of these.
func TestAdversarialClientMalformedTokens(t *testing.T) {
	for _, tc := range []struct {
		name, upgrade, connection, protocol string
	}{
		{"Upgrade websocket/2", "websocket/2", "Upgrade", ""},
		{"Upgrade websocket;v=13", "websocket;v=13", "Upgrade", ""},
		{"Upgrade websocket@evil", "websocket@evil", "Upgrade", ""},
		{"Connection Upgrade=1", "websocket", "Upgrade=1", ""},
		{"Connection Upgrade/x", "websocket", "Upgrade/x", ""},
		{"subprotocol chat;q=1", "websocket", "Upgrade", "chat;q=1"},
		{"subprotocol chat/2", "websocket", "Upgrade", "chat/2"},
		{"subprotocol chat=1", "websocket", "Upgrade", "chat=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := advAnswer(t, func(req *http.Request) string {
				h := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + tc.upgrade + "\r\nConnection: " + tc.connection +
					"\r\nSec-WebSocket-Accept: " + accept(req) + "\r\n"
				if tc.protocol != "" {
					h += "Sec-WebSocket-Protocol: " + tc.protocol + "\r\n"
				}
				return h + "\r\n"
			})
			o := options()
			o.Subprotocols = []string{"chat"}
			err := advDialFails(t, addr, o, 5*time.Second, true)
			if he, _ := errors.AsType[*wsclient.HandshakeError](err); he == nil || he.StatusCode != 101 || he.Reason == "" {
				t.Fatalf("got %v, want an invalid 101", err)
			}
		})
	}
}

// TestAdversarialClientDeflateAnswers: permessage-deflate answers at the
// edges of RFC 7692 §7.1 that dial_test.go does not try. A value that is
// not 8 to 15 in plain digits, a window parameter without a value, or a
// client_max_window_bits without a value (§7.1.2.2: the response's must
// have one) fail with ErrCompressionResponse; a quoted valid value is
// accepted (§7.1: quoted-string values are allowed), a quoted empty one
// is malformed (RFC 6455 §9.1: unquoted, a value is a token). An offer
// client_max_window_bits=10 is answered with at most 10 (§7.1.2.2).
func TestAdversarialClientDeflateAnswers(t *testing.T) {
	const granted = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tc := range []struct {
		answer    string
		ownWBit   bool // offer client_max_window_bits through Options.Extensions
		ok        bool
		malformed bool   // refused as outside the header's grammar
		offerBits string // the value of that offer
	}{
		{granted + `; server_max_window_bits="10"`, false, true, false, ""},
		{granted + "; server_max_window_bits=+9", false, false, false, ""},
		{granted + "; server_max_window_bits= 9", false, true, false, ""},
		{granted + "; server_max_window_bits", false, false, false, ""},
		{granted + `; server_max_window_bits=""`, false, false, true, ""},
		{granted + "; client_max_window_bits", true, false, false, ""},
		{granted + "; client_max_window_bits=8", true, true, false, ""},
		{granted + "; client_max_window_bits=15; client_max_window_bits=15", true, false, false, ""},
		{granted + "; client_no_context_takeover", false, false, false, ""},
		{granted + "; client_max_window_bits=9", true, true, false, "10"},
		{granted + "; client_max_window_bits=10", true, true, false, "10"},
		{granted + "; client_max_window_bits=11", true, false, false, "10"},
	} {
		t.Run(tc.answer, func(t *testing.T) {
			addr := advAnswer(t, func(req *http.Request) string {
				return switchAnswer(req, "Sec-WebSocket-Extensions: "+tc.answer+"\r\n")
			})
			o := options()
			o.Config.Compression.Enabled = true
			if tc.ownWBit {
				o.Extensions = []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{
					{Name: "client_no_context_takeover"}, {Name: "server_no_context_takeover"}, {Name: "client_max_window_bits", Value: tc.offerBits}}}}
			}
			if tc.ok {
				u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
				if err != nil {
					t.Fatalf("refused a valid answer: %v", err)
				}
				u.Conn.Close()
				if len(u.Extensions) != 1 || u.Extensions[0].Name != "permessage-deflate" {
					t.Fatalf("extensions %v", u.Extensions)
				}
				return
			}
			err := advDialFails(t, addr, o, 5*time.Second, true)
			if tc.malformed {
				if !errors.Is(err, wsclient.ErrHandshake) || !strings.Contains(err.Error(), "malformed Sec-WebSocket-Extensions") {
					t.Fatalf("got %v, want a malformed-header HandshakeError", err)
				}
				return
			}
			if !errors.Is(err, wsclient.ErrCompressionResponse) {
				t.Fatalf("got %v, want ErrCompressionResponse", err)
			}
		})
	}
}

// TestAdversarialClientDeflateNameInAnotherCase: the client compares the
// server's extension names to its offers exactly, as colibri's server and
// wsconn do (docs/client.md "Extensions and compression"), so an answer
// "PERMESSAGE-DEFLATE; ..." accepts an extension that was not offered: a
// HandshakeError, never a connection that runs uncompressed while the
// server compresses.
func TestAdversarialClientDeflateNameInAnotherCase(t *testing.T) {
	for _, answer := range []string{
		"PERMESSAGE-DEFLATE; x_bogus=1",
		"Permessage-Deflate; server_max_window_bits=99",
		"Permessage-Deflate; server_no_context_takeover; client_max_window_bits=10",
	} {
		t.Run(answer, func(t *testing.T) {
			addr := advAnswer(t, func(req *http.Request) string {
				return switchAnswer(req, "Sec-WebSocket-Extensions: "+answer+"\r\n")
			})
			o := options()
			o.Config.Compression.Enabled = true
			err := advDialFails(t, addr, o, 5*time.Second, true)
			if he, _ := errors.AsType[*wsclient.HandshakeError](err); he == nil || !strings.Contains(he.Reason, "not offered") {
				t.Fatalf("got %v, want an extension that was not offered", err)
			}
		})
	}
}

// TestAdversarialClientBrokenOrSlowAnswers: a server that hangs up in the
// middle of its answer, puts frame bytes where headers go, or never ends
// its headers. Each Dial fails quickly with a wrapped error that is not a
// HandshakeError (no valid HTTP answer arrived); a never-ending header
// ends with the handshake timeout.
func TestAdversarialClientBrokenOrSlowAnswers(t *testing.T) {
	const status = "HTTP/1.1 101 Switching Protocols\r\n"
	for _, tc := range []struct {
		name    string
		serve   func(conn net.Conn, req *http.Request)
		timeout bool
	}{
		{"close after the status line", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, status)
		}, false},
		{"close inside a header line", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, status+"Upgrade: websocket\r\nConnection: Upg")
		}, false},
		{"close before the blank line", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, switchAnswer(req, "")[:len(switchAnswer(req, ""))-2])
		}, false},
		{"close inside the status line", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 10")
		}, false},
		{"a frame where a header line goes", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, status+"Upgrade: websocket\r\n\x81\x05hello\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(io.Discard, conn)
		}, false},
		{"headers that never end", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, status)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}, true},
		{"a header line that never ends", func(conn net.Conn, req *http.Request) {
			io.WriteString(conn, status+"X-Slow: ")
			for {
				if _, err := io.WriteString(conn, "a"); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) { tc.serve(conn, req) })
			o := options()
			o.HandshakeTimeout = 300 * time.Millisecond
			err := advDialFails(t, addr, o, 3*time.Second, false)
			if tc.timeout != errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v; want the handshake timeout: %v", err, tc.timeout)
			}
			if tc.timeout && !strings.Contains(err.Error(), "handshake took longer than 300ms") {
				t.Fatalf("timeout text %q", err)
			}
		})
	}
}

// TestAdversarialClientTimeoutInsideAHeaderName: a server that is slow
// in the middle of a header line, before its colon, or stops after frame
// bytes sent where a header line goes. The handshake's time runs out
// first: docs/client.md "Errors" says the error then matches
// context.DeadlineExceeded and reads "handshake took longer than …".
func TestAdversarialClientTimeoutInsideAHeaderName(t *testing.T) {
	for _, partial := range []string{"Sec-WebSocket-Acc", "\x81\x05hello"} {
		t.Run(fmt.Sprintf("%q", partial), func(t *testing.T) {
			addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"+partial)
				io.Copy(io.Discard, br)
			})
			o := options()
			o.HandshakeTimeout = 300 * time.Millisecond
			err := advDialFails(t, addr, o, 3*time.Second, false)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handshake took longer than 300ms") {
				t.Fatalf("got %v, want the handshake timeout", err)
			}
		})
	}
}

// TestAdversarialClientHugeHeaders: a server that sends headers without
// end, as fast as it can. The client must give up after
// MaxResponseHeaderBytes (1 MiB, like the server side of colibri; net/http's
// Transport stops at 10 MiB) with ErrResponseHeaderTooLarge, not buffer
// everything until its handshake timeout (30 s by default) or its memory
// runs out. What the server manages to write beyond the limit sits in
// socket buffers, a few MiB at most.
func TestAdversarialClientHugeHeaders(t *testing.T) {
	const limit, sent = wsclient.MaxResponseHeaderBytes, 64 << 20
	for _, tc := range []struct {
		name string
		line func(i int) string
	}{
		{"many lines", func(i int) string { return fmt.Sprintf("X-H%d: %s\r\n", i, strings.Repeat("v", 1000)) }},
		{"one endless line", func(i int) string { return strings.Repeat("v", 1024) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var written atomic.Int64
			addr := rawServer(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) {
				io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nX-Start: ")
				io.WriteString(conn, "1\r\n")
				for i := 0; written.Load() < sent; i++ {
					n, err := io.WriteString(conn, tc.line(i))
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
				// Everything went through: the client is still reading.
				// Hang up rather than wait for its timeout.
			})
			o := options()
			o.HandshakeTimeout = 10 * time.Second
			err := advDialFails(t, addr, o, 10*time.Second, false)
			if !errors.Is(err, wsclient.ErrResponseHeaderTooLarge) {
				t.Fatalf("got %v, want ErrResponseHeaderTooLarge", err)
			}
			if n := written.Load(); n >= sent {
				t.Fatalf("the client read %d MiB of headers and still wanted more; want it to give up by %d MiB", n>>20, limit>>20)
			}
		})
	}
}

// TestAdversarialClientMaskedFrameWithThe101: a masked frame that comes in
// the same write as the 101 (so the client finds it buffered with the
// handshake) is a protocol violation like any other: 1002 and
// frames.ErrMasked (docs/client.md "What the client checks").
func TestAdversarialClientMaskedFrameWithThe101(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, "")+string([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}))
		readFrames(conn, br, nil)
	})
	got := make(chan int, 1)
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		n := 0
		for range in.Messages(0) {
			n++
		}
		got <- n
		return in.Err()
	}, options())
	if !errors.Is(err, frames.ErrMasked) || wsconn.CloseStatus(err) != frames.CloseProtocolError {
		t.Fatalf("Run returned %v, want a 1002 close for the masked frame", err)
	}
	if n := <-got; n != 0 {
		t.Fatalf("the handler got %d messages from masked frames", n)
	}
}

// TestAdversarialClientInterimAnswers: RFC 9110 §15.2 asks a client to
// parse 1xx answers it did not expect before the final one: a 100 and a
// 103 before the 101 do not fail the handshake, and frames sent with the
// 101 still arrive.
func TestAdversarialClientInterimAnswers(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		interim := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
		io.WriteString(conn, interim+switchAnswer(req, "")+string([]byte{0x81, 0x02, 'h', 'i'}))
		readFrames(conn, br, nil)
	})
	got := make(chan string, 1)
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for m := range in.Messages(0) {
			got <- string(m.Payload)
			return nil
		}
		return in.Err()
	}, options())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if m := <-got; m != "hi" {
		t.Fatalf("first message %q, want hi", m)
	}
}

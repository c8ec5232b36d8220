package wstest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as testing.T does, without failing the real test. Everything
// else (Cleanup in particular) goes to the real test.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
}

// run calls f in a goroutine of its own and returns the failure reported
// through r meanwhile, or "" when there was none.
func (r *recorder) run(f func()) string {
	r.mu.Lock()
	r.msg = ""
	r.mu.Unlock()
	inOwnGoroutine(f)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msg
}

// failure runs f with a recorder and returns the failure it reported, or
// "" when f passed.
func failure(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	return r.run(func() { f(r) })
}

func wantFailure(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("failure message\n got: %s\nwant: %s", got, want)
	}
}

// memEcho starts an in-memory echo server with cfg.
func memEcho(t *testing.T, cfg wsconn.Config) *wstest.Server {
	cfg.Logger = quiet
	return wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{Config: &cfg}))
}

// TestClientSendsMalformedFrames sends what no well-behaved client would
// and checks the close code and reason colibri's server answers with.
func TestClientSendsMalformedFrames(t *testing.T) {
	srv := memEcho(t, wsconn.Config{MaxMessageSize: 1024})
	for _, tc := range []struct {
		name   string
		send   func(c *wstest.Client)
		code   frames.CloseCode
		reason string
	}{
		{"invalid UTF-8", func(c *wstest.Client) {
			c.SendFrame(frames.Text([]byte{'o', 'k', 0xff}))
		}, frames.CloseInvalidPayload, "invalid UTF-8 in text message"},
		{"oversized ping", func(c *wstest.Client) {
			c.SendFrame(frames.Ping(make([]byte, 126)))
		}, frames.CloseProtocolError, "control frame payload over 125 bytes"},
		{"fragmented ping", func(c *wstest.Client) {
			c.SendFrame(frames.Frame{Op: frames.OpPing})
		}, frames.CloseProtocolError, "fragmented control frame"},
		{"reserved opcode", func(c *wstest.Client) {
			c.SendFrame(frames.Frame{Op: 0x3, Fin: true})
		}, frames.CloseProtocolError, "reserved opcode"},
		{"RSV1 without extension", func(c *wstest.Client) {
			c.SendFrame(frames.Frame{Op: frames.OpText, Fin: true, Rsv: frames.Rsv1, Payload: []byte("x")})
		}, frames.CloseProtocolError, "reserved bits set without a negotiated extension"},
		{"unmasked", func(c *wstest.Client) {
			c.SendHeader(frames.Header{Op: frames.OpText, Fin: true, Length: 2}, []byte("hi"))
		}, frames.CloseProtocolError, "client frame not masked"},
		{"lone continuation", func(c *wstest.Client) {
			c.SendFrame(frames.Continuation([]byte("x"), true))
		}, frames.CloseProtocolError, "continuation frame without a message to continue"},
		{"interleaved messages", func(c *wstest.Client) {
			c.SendFrame(frames.Frame{Op: frames.OpText, Payload: []byte("one")})
			c.SendText("two")
		}, frames.CloseProtocolError, "new data frame inside a fragmented message"},
		{"announced length over the limit", func(c *wstest.Client) {
			c.SendHeader(frames.Header{Op: frames.OpBinary, Fin: true, Masked: true, Length: 1 << 40}, nil)
		}, frames.CloseMessageTooBig, "message too large"},
		{"close code 1005 on the wire", func(c *wstest.Client) {
			c.SendClose(frames.CloseNoStatus, "")
		}, frames.CloseProtocolError, "invalid close code"},
		{"raw length with the top bit set", func(c *wstest.Client) {
			c.SendRaw([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
		}, frames.CloseProtocolError, "64-bit payload length with the most significant bit set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := srv.Dial(t, "/", nil)
			tc.send(c)
			c.ExpectClose(tc.code, tc.reason)
		})
	}
}

func TestClientFragmentsAndControlFrames(t *testing.T) {
	c := memEcho(t, wsconn.Config{}).Dial(t, "/", nil)
	c.SendFrame(frames.Frame{Op: frames.OpText, Payload: []byte("hel")})
	c.SendFrame(frames.Ping([]byte("between fragments")))
	c.SendFrame(frames.Continuation([]byte("lo"), true))
	c.ExpectPong([]byte("between fragments"))
	c.ExpectText("hello")
	big := bytes.Repeat([]byte{7}, 70000)
	c.SendBinary(big)
	c.ExpectBinary(big)
	c.Close()
}

func TestClientReadFrame(t *testing.T) {
	c := memEcho(t, wsconn.Config{FragmentSize: 4}).Dial(t, "/", nil)
	c.SendText("hello world")
	for i, want := range []struct {
		op  frames.Opcode
		fin bool
		p   string
	}{{frames.OpText, false, "hell"}, {frames.OpContinuation, false, "o wo"}, {frames.OpContinuation, true, "rld"}} {
		h, p := c.ReadFrame()
		if h.Op != want.op || h.Fin != want.fin || string(p) != want.p || h.Masked {
			t.Fatalf("frame %d: %+v %q, want %v fin=%v %q", i, h, p, want.op, want.fin, want.p)
		}
	}
	c.SendClose(4000, "done")
	h, p := c.ReadFrame()
	if h.Op != frames.OpClose || !bytes.Equal(p, []byte{0x0f, 0xa0, 'd', 'o', 'n', 'e'}) {
		t.Fatalf("echoed close %+v % x", h, p)
	}
}

func TestClientSubprotocolAndResponse(t *testing.T) {
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{
		Accept: &handshake.AcceptOptions{Subprotocols: []string{"v2"}, Header: http.Header{"X-Served-By": {"colibri"}}},
		Config: &wsconn.Config{Logger: quiet},
	}))
	o := &wsclient.Options{Subprotocols: []string{"v1", "v2"}}
	c := srv.Dial(t, "/", o)
	if c.Subprotocol() != "v2" || c.Response().Header.Get("X-Served-By") != "colibri" {
		t.Fatalf("subprotocol %q, response header %v", c.Subprotocol(), c.Response().Header)
	}
	c.Close()
}

// ---- failure messages ----

func TestExpectFailureMessages(t *testing.T) {
	closer := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			switch m.Text() {
			case "close":
				return &wsconn.CloseError{Code: 4000, Reason: "go away"}
			case "drop":
				s.CloseNow()
				return nil
			}
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	}
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, closer, &wstest.HandlerOptions{Config: &wsconn.Config{Logger: quiet}}))

	for _, tc := range []struct {
		name string
		run  func(c *wstest.Client)
		want string
	}{
		{"other text", func(c *wstest.Client) {
			c.SendText("world")
			c.ExpectText("hello")
		}, `wstest: want text "hello", got text "world"`},
		{"binary for text", func(c *wstest.Client) {
			c.SendBinary([]byte{1, 2})
			c.ExpectText("hello")
		}, `wstest: want text "hello", got binary [01 02]`},
		{"long binary", func(c *wstest.Client) {
			c.SendBinary(bytes.Repeat([]byte{0}, 100))
			c.ExpectBinary(append(bytes.Repeat([]byte{0}, 99), 1))
		}, "wstest: want binary [00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 …] (100 bytes), " +
			"got binary [00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 …] (100 bytes) " +
			"(lengths 100 and 100, first difference at byte 99)"},
		{"nothing", func(c *wstest.Client) {
			c.Timeout = 20 * time.Millisecond
			c.ExpectText("hello")
		}, `wstest: want text "hello": nothing arrived within 20ms`},
		{"close instead", func(c *wstest.Client) {
			c.SendText("close")
			c.ExpectText("hello")
		}, `wstest: want text "hello", got close 4000 (application) "go away"`},
		{"other close", func(c *wstest.Client) {
			c.SendText("close")
			c.ExpectClose(frames.CloseNormal, "")
		}, `wstest: want close 1000 normal closure "", got close 4000 (application) "go away"`},
		{"message instead of close", func(c *wstest.Client) {
			c.SendText("still here")
			c.ExpectClose(frames.CloseNormal, "")
		}, `wstest: want close 1000 normal closure "", got text "still here"`},
		{"pong payload", func(c *wstest.Client) {
			c.SendFrame(frames.Ping([]byte("a")))
			c.ExpectPong([]byte("b"))
		}, `wstest: want pong "b", got pong "a"`},
		{"dropped", func(c *wstest.Client) {
			c.SendText("drop")
			c.ExpectMessage()
		}, "wstest: want a message: the server closed the connection without a CLOSE frame"},
		{"send after close", func(c *wstest.Client) {
			c.CloseNow()
			c.SendText("anyone?")
		}, "wstest: send text frame: the client is closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, failure(t, func(tb testing.TB) { tc.run(srv.Dial(tb, "/", nil)) }), tc.want)
		})
	}
	t.Run("passing", func(t *testing.T) {
		wantFailure(t, failure(t, func(tb testing.TB) {
			c := srv.Dial(tb, "/", nil)
			c.SendText("close")
			c.ExpectClose(4000, "go away")
		}), "")
	})
}

// TestExpectChecksTheServer drives the test client against a server that
// breaks the protocol on purpose.
func TestExpectChecksTheServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"masked frame", []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}, "server broke the protocol: server frame masked"},
		{"invalid UTF-8", []byte{0x81, 0x02, 0xc3, 0x28}, "server sent an invalid message: invalid UTF-8 in text message"},
		{"reserved opcode", []byte{0x8b, 0x00}, "server broke the protocol: reserved opcode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				u, err := handshake.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer u.Conn.Close()
				u.Conn.Write(tc.frame)
				u.Conn.Read(make([]byte, 1))
			}))
			got := failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectText("hi") })
			if !strings.HasPrefix(got, `wstest: want text "hi": `+tc.want) {
				t.Fatalf("failure %q, want it to say %q", got, tc.want)
			}
		})
	}
}

func TestDialFailureMessage(t *testing.T) {
	srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "members only", http.StatusForbidden)
	}))
	wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/private", nil) }),
		"wstest: dial /private: wsclient: handshake refused: 403 Forbidden: members only\nresponse body:\nmembers only\n")
	o := &wsclient.Options{Config: &wsconn.Config{Compression: wsconn.Compression{Enabled: true}}}
	wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/", o) }),
		"wstest: dial /: the test client does not decompress; use wsclient.Run with the server's NetDial to test compression")
}

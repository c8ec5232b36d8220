package wsclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// The conformance tests run colibri's client against gorilla/websocket and
// coder/websocket servers (see helpers_test.go).

type session = wsconn.Session[*http.Response]

// roundTrip writes m and returns the next message, cloned.
func roundTrip(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, m messages.Message) (messages.Message, error) {
	if err := out.WriteMessage(ctx, m); err != nil {
		return messages.Message{}, err
	}
	for got := range in.Messages(0) {
		return got.Clone(), nil
	}
	return messages.Message{}, fmt.Errorf("no answer: %w", in.Err())
}

func expectClose(t *testing.T, p *peer, code int, reason string) {
	t.Helper()
	select {
	case got := <-p.closes:
		if got.code != code || got.reason != reason {
			t.Fatalf("%s server received close %d %q, want %d %q", p.name, got.code, got.reason, code, reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s server received no close", p.name)
	}
}

func TestInteropEcho(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			if s.Value.StatusCode != http.StatusSwitchingProtocols {
				return fmt.Errorf("session value is a %d response", s.Value.StatusCode)
			}
			for _, m := range []messages.Message{
				{Kind: messages.KindText, Payload: []byte("hello, 🐦")},
				{Kind: messages.KindBinary, Payload: []byte{0, 1, 254, 255}},
				{Kind: messages.KindText, Payload: nil},
			} {
				got, err := roundTrip(ctx, in, out, m)
				if err != nil {
					return err
				}
				if got.Kind != m.Kind || !bytes.Equal(got.Payload, m.Payload) {
					return fmt.Errorf("echo of %v %q came back as %v %q", m.Kind, m.Payload, got.Kind, got.Payload)
				}
			}
			return nil
		}, options())
		if err != nil {
			t.Fatal(err)
		}
		expectClose(t, p, 1000, "")
	})
}

func TestInteropFragmentsFromClient(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		o := options()
		o.Config.FragmentSize = 1000
		want := strings.Repeat("fragment ", 2000)
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			// One message cut by FragmentSize, one streamed with Writer.
			got, err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte(want)})
			if err != nil {
				return err
			}
			if string(got.Payload) != want {
				return fmt.Errorf("fragmented text came back as %d bytes", len(got.Payload))
			}
			w, err := out.Writer(ctx, messages.KindBinary)
			if err != nil {
				return err
			}
			for i := range 5 {
				if _, err := w.Write(bytes.Repeat([]byte{byte(i)}, 700)); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
			for m := range in.Messages(0) {
				if m.Kind != messages.KindBinary || len(m.Payload) != 3500 || m.Payload[3499] != 4 {
					return fmt.Errorf("streamed binary came back as %v of %d bytes", m.Kind, len(m.Payload))
				}
				return nil
			}
			return in.Err()
		}, o)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestInteropFragmentsFromServer(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			if err := out.WriteText(ctx, "frag:6"); err != nil {
				return err
			}
			n, size := 0, 0
			for f := range in.Frames() {
				n++
				size += len(f.Payload)
				if n == 1 && f.Op != frames.OpText || n > 1 && f.Op != frames.OpContinuation {
					return fmt.Errorf("frame %d has opcode %v", n, f.Op)
				}
				if f.Fin {
					break
				}
			}
			if n < 2 || size != 6<<10 {
				return fmt.Errorf("got %d bytes in %d frames, want 6144 bytes in several (loop ended: %v)", size, n, in.Err())
			}
			return nil
		}, options())
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestInteropServerPingAnswered(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			got, err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte("ping:are you there")})
			if err != nil {
				return err
			}
			if string(got.Payload) != "pong:are you there" {
				return fmt.Errorf("server reported %q, want the pong it got", got.Payload)
			}
			return nil
		}, options())
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestInteropClientCloseCode(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		bye := &wsconn.CloseError{Code: 4001, Reason: "client is done"}
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			return bye
		}, options())
		if err != bye {
			t.Fatalf("Run returned %v, want the handler's close error", err)
		}
		expectClose(t, p, 4001, "client is done")
	})
}

func TestInteropServerCloseCode(t *testing.T) {
	each(t, func(t *testing.T, p *peer) {
		var ended error
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			if err := out.WriteText(ctx, "close:4002:server is done"); err != nil {
				return err
			}
			for m := range in.Messages(0) {
				return fmt.Errorf("unexpected message %q", m.Payload)
			}
			ended = in.Err()
			return nil
		}, options())
		if err != nil {
			t.Fatal(err)
		}
		var ce *wsconn.CloseError
		if !errors.As(ended, &ce) || ce.Code != 4002 || ce.Reason != "server is done" {
			t.Fatalf("inbound ended with %v, want close 4002 \"server is done\"", ended)
		}
	})
}

func TestInteropSixteenMiB(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB round trips in -short mode")
	}
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i>>8) ^ byte(i)
	}
	each(t, func(t *testing.T, p *peer) {
		o := options()
		o.Config.MaxMessageSize = 17 << 20
		err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			got, err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindBinary, Payload: big})
			if err != nil {
				return err
			}
			if !bytes.Equal(got.Payload, big) {
				return fmt.Errorf("16 MiB echo came back as %d different bytes", len(got.Payload))
			}
			return nil
		}, o)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestInteropCompression(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("context takeover %v", takeover), func(t *testing.T) {
			each(t, func(t *testing.T, p *peer) {
				o := options()
				o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: takeover}
				err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
					if e := s.Extensions(); len(e) != 1 || e[0].Name != "permessage-deflate" {
						return fmt.Errorf("negotiated %v, want permessage-deflate", e)
					}
					for i, m := range []string{strings.Repeat("compress me, ", 5000), "short", strings.Repeat("again and again ", 3000)} {
						got, err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte(m)})
						if err != nil {
							return err
						}
						if got.Text() != m {
							return fmt.Errorf("message %d came back as %d bytes", i, len(got.Payload))
						}
					}
					return nil
				}, o)
				if err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestInteropTLS(t *testing.T) {
	p := gorillaPeer(t, true)
	addr := p.srv.Listener.Addr().String()
	echoOnce := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		got, err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte("over TLS")})
		if err == nil && string(got.Payload) != "over TLS" {
			err = fmt.Errorf("echo %q", got.Payload)
		}
		return err
	}
	t.Run("trusted", func(t *testing.T) {
		o := options()
		o.TLSConfig = &tls.Config{RootCAs: certPool(p.srv)}
		if !strings.HasPrefix(p.url, "wss://127.0.0.1:") {
			t.Fatalf("server URL %s", p.url)
		}
		if err := wsclient.Run(testCtx(t), p.url, echoOnce, o); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server name from URL", func(t *testing.T) {
		// httptest's certificate names example.com; the URL's host is what
		// gets verified, whatever address the connection goes to.
		o := options()
		o.TLSConfig = &tls.Config{RootCAs: certPool(p.srv)}
		o.NetDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		_, port, _ := net.SplitHostPort(addr)
		if err := wsclient.Run(testCtx(t), "wss://example.com:"+port+"/", echoOnce, o); err != nil {
			t.Fatal(err)
		}
		_, _, err := wsclient.Dial(testCtx(t), "wss://wrong.example:"+port+"/", o)
		var he x509.HostnameError
		if !errors.As(err, &he) || he.Host != "wrong.example" {
			t.Fatalf("dial with a host the certificate does not name: %v", err)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		_, _, err := wsclient.Dial(testCtx(t), p.url, options())
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Fatalf("dial without trusting the test certificate: %v", err)
		}
	})
}

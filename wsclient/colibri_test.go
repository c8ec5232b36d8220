package wsclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// These tests run the client against colibri's own server, through
// wstest, both in memory and over loopback TCP.

// servers starts h on a memory and a loopback server and runs f for each.
func servers(t *testing.T, h http.Handler, f func(t *testing.T, srv *wstest.Server, o *wsclient.Options)) {
	for _, kind := range []string{"memory", "loopback"} {
		t.Run(kind, func(t *testing.T) {
			var srv *wstest.Server
			if kind == "memory" {
				srv = wstest.NewMemoryServer(t, h)
			} else {
				srv = wstest.NewServer(t, h)
			}
			o := options()
			o.NetDial = srv.NetDial
			f(t, srv, o)
		})
	}
}

// serverConfig is the server side's connection config.
func serverConfig(cfg wsconn.Config) *wstest.HandlerOptions {
	cfg.Logger = quiet
	return &wstest.HandlerOptions{Config: &cfg, Accept: &handshake.AcceptOptions{Subprotocols: []string{"chat.v2"}}}
}

func TestColibriCloseCodesBothWays(t *testing.T) {
	ended := make(chan error, 1)
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if m.Text() == "close please" {
				return &wsconn.CloseError{Code: 4002, Reason: "server is done"}
			}
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		ended <- in.Err()
		return nil
	}, serverConfig(wsconn.Config{}))
	servers(t, h, func(t *testing.T, srv *wstest.Server, o *wsclient.Options) {
		t.Run("client closes", func(t *testing.T) {
			bye := &wsconn.CloseError{Code: 4001, Reason: "client is done"}
			err := wsclient.Run(testCtx(t), srv.URL()+"/", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				got, err := roundTrip(ctx, in, out, messages.Text("hi"))
				if err != nil || got.Text() != "hi" {
					return fmt.Errorf("echo %q: %v", got.Payload, err)
				}
				return bye
			}, o)
			if err != bye {
				t.Fatalf("Run returned %v", err)
			}
			select {
			case err := <-ended:
				var ce *wsconn.CloseError
				if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "client is done" {
					t.Fatalf("server's inbound ended with %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("server handler did not see the close")
			}
		})
		t.Run("server closes", func(t *testing.T) {
			var ended error
			err := wsclient.Run(testCtx(t), srv.URL()+"/", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				if err := out.WriteText(ctx, "close please"); err != nil {
					return err
				}
				for range in.Messages(0) {
				}
				ended = in.Err()
				return nil
			}, o)
			if err != nil {
				t.Fatal(err)
			}
			if wsconn.CloseStatus(ended) != 4002 || !strings.HasSuffix(ended.Error(), "server is done") {
				t.Fatalf("client's inbound ended with %v", ended)
			}
		})
	})
}

// TestColibriKeepAliveBothWays lets both sides go quiet for longer than
// their ping interval: each pings, each answers, and each measures a
// round-trip time, which only an answered PING produces.
func TestColibriKeepAliveBothWays(t *testing.T) {
	const interval = 20 * time.Millisecond
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
			if err := out.WriteText(ctx, strconv.FormatBool(s.RTT() > 0)); err != nil {
				return err
			}
		}
		return in.Err()
	}, serverConfig(wsconn.Config{PingInterval: interval}))
	servers(t, h, func(t *testing.T, srv *wstest.Server, o *wsclient.Options) {
		o.Config.PingInterval = interval
		err := wsclient.Run(testCtx(t), srv.URL(), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			for ctx.Err() == nil {
				// Stay quiet for a few intervals, then ask the server
				// whether its PING was answered.
				time.Sleep(3 * interval)
				got, err := roundTrip(ctx, in, out, messages.Text("rtt?"))
				if err != nil {
					return err
				}
				if got.Text() == "true" && s.RTT() > 0 {
					return nil
				}
			}
			return ctx.Err()
		}, o)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestColibriReceivesClientFragments(t *testing.T) {
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		n, size := 0, 0
		for f := range in.Frames() {
			n++
			size += len(f.Payload)
			if f.Fin {
				return out.WriteText(ctx, fmt.Sprintf("%d bytes in %d frames", size, n))
			}
		}
		return in.Err()
	}, serverConfig(wsconn.Config{}))
	servers(t, h, func(t *testing.T, srv *wstest.Server, o *wsclient.Options) {
		o.Config.FragmentSize = 1000
		err := wsclient.Run(testCtx(t), srv.URL(), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			got, err := roundTrip(ctx, in, out, messages.Text(strings.Repeat("é", 2500)))
			if err == nil && got.Text() != "5000 bytes in 5 frames" {
				err = fmt.Errorf("server saw %s", got.Payload)
			}
			return err
		}, o)
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestColibriCompression negotiates permessage-deflate with colibri's
// server and checks that the message really travels compressed: the
// server counts the bytes it read off the wire.
func TestColibriCompression(t *testing.T) {
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			reply := fmt.Sprintf("%d bytes, %d on the wire, %d extension", len(m.Payload), s.Stats().BytesIn, len(s.Extensions()))
			if err := out.WriteText(ctx, reply); err != nil {
				return err
			}
		}
		return in.Err()
	}, serverConfig(wsconn.Config{Compression: wsconn.Compression{Enabled: true}}))
	servers(t, h, func(t *testing.T, srv *wstest.Server, o *wsclient.Options) {
		o.Config.Compression.Enabled = true
		err := wsclient.Run(testCtx(t), srv.URL(), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			got, err := roundTrip(ctx, in, out, messages.Text(strings.Repeat("colibri ", 10000)))
			if err != nil {
				return err
			}
			var n, wire, exts int
			if _, err := fmt.Sscanf(got.Text(), "%d bytes, %d on the wire, %d extension", &n, &wire, &exts); err != nil {
				return fmt.Errorf("server said %q", got.Payload)
			}
			if n != 80000 || wire > 2000 || exts != 1 || len(s.Extensions()) != 1 {
				return fmt.Errorf("server read %d bytes as %d on the wire with %d extensions; the client has %d", n, wire, exts, len(s.Extensions()))
			}
			return nil
		}, o)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestColibriSubprotocol(t *testing.T) {
	chosen := make(chan string, 2)
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		chosen <- s.Subprotocol()
		return nil
	}, serverConfig(wsconn.Config{}))
	servers(t, h, func(t *testing.T, srv *wstest.Server, o *wsclient.Options) {
		o.Subprotocols = []string{"chat.v3", "chat.v2"}
		var got string
		err := wsclient.Run(testCtx(t), srv.URL(), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			got = s.Subprotocol()
			for range in.Messages(0) {
			}
			return in.Err()
		}, o)
		if err != nil || got != "chat.v2" || <-chosen != "chat.v2" {
			t.Fatalf("client's subprotocol %q (err %v), want chat.v2 on both sides", got, err)
		}
	})
}

func TestColibriRefusalIsAHandshakeError(t *testing.T) {
	h := wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return errors.New("never reached")
	}, serverConfig(wsconn.Config{}))
	servers(t, h, func(t *testing.T, srv *wstest.Server, o *wsclient.Options) {
		o.Header = http.Header{"Origin": {"https://elsewhere.example"}}
		_, _, err := wsclient.Dial(testCtx(t), srv.URL(), o)
		var he *wsclient.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || !strings.Contains(string(he.Body), "elsewhere.example") {
			t.Fatalf("cross-origin dial: %v", err)
		}
	})
}

// TestRunContextEndsConnection cancels Run's context while the handler
// waits for messages: the handler's context ends, Run reports the
// cancellation and the server (gorilla here, so the code is visible)
// receives 1001 Going Away, as wsconn.Serve documents for a cancelled
// context.
func TestRunContextEndsConnection(t *testing.T) {
	p := gorillaPeer(t, false)
	ctx, cancel := context.WithCancel(testCtx(t))
	err := wsclient.Run(ctx, p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		time.AfterFunc(10*time.Millisecond, cancel)
		for range in.Messages(0) {
		}
		return in.Err()
	}, options())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want the context's cancellation", err)
	}
	select {
	case got := <-p.closes:
		if got.code != int(frames.CloseGoingAway) {
			t.Fatalf("server received close %d %q, want 1001", got.code, got.reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server received no close")
	}
}

package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// colibri's client against the servers of Node's ws (WebSocketServer)
// and Python's websockets (websockets.serve): testdata/*/server.*.

// peerServer is a running server script.
type peerServer struct {
	name string
	url  string // ws://127.0.0.1:PORT
	p    *process
}

// serverEvent is a line a server script prints.
type serverEvent struct {
	Port   int    `json:"port"`
	Event  string `json:"event"`
	Path   string `json:"path"`
	Offer  string `json:"offer"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func (s *peerServer) next(t *testing.T) serverEvent {
	t.Helper()
	select {
	case line, ok := <-s.p.lines:
		if !ok {
			t.Fatalf("%s server ended; stderr:\n%s", s.name, s.p.stderr)
		}
		var ev serverEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s server printed %q", s.name, line)
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatalf("%s server: no event; stderr:\n%s", s.name, s.p.stderr)
	}
	return serverEvent{}
}

// expect waits for the server's next event and checks it.
func (s *peerServer) expect(t *testing.T, want serverEvent) serverEvent {
	t.Helper()
	got := s.next(t)
	if got.Event != want.Event || got.Path != want.Path || (want.Event == "close" && (got.Code != want.Code || got.Reason != want.Reason)) {
		t.Fatalf("%s server reported %+v, want %+v", s.name, got, want)
	}
	return got
}

// serverStacks are the servers, each with how to start it in a mode.
var serverStacks = []struct {
	name  string
	start func(t *testing.T, mode string) *peerServer
}{
	{"node-ws", func(t *testing.T, mode string) *peerServer {
		s := nodeStack()
		if s.open == nil {
			unavailable(t, s.version)
		}
		node, _ := exec.LookPath("node")
		return startServer(t, "node ws", node, testdata("node", "server.js"), mode)
	}},
	{"python-websockets", func(t *testing.T, mode string) *peerServer {
		py, _ := python()
		if py == "" {
			unavailable(t, pythonStack().version)
		}
		return startServer(t, "python websockets", py, testdata("python", "server.py"), mode)
	}},
}

func startServer(t *testing.T, name string, argv ...string) *peerServer {
	t.Helper()
	s := &peerServer{name: name, p: startProcess(t, name+" server", argv...)}
	ev := s.next(t)
	if ev.Port == 0 {
		t.Fatalf("%s server printed %+v first", name, ev)
	}
	s.url = fmt.Sprintf("ws://127.0.0.1:%d", ev.Port)
	return s
}

type clientSession = wsconn.Session[*http.Response]

func roundTrip(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, m messages.Message) error {
	if err := out.WriteMessage(ctx, m); err != nil {
		return err
	}
	for got := range in.Messages(64 << 20) {
		if got.Kind != m.Kind || !bytes.Equal(got.Payload, m.Payload) {
			return fmt.Errorf("sent %v of %d bytes, got back %v of %d bytes", m.Kind, len(m.Payload), got.Kind, len(got.Payload))
		}
		return nil
	}
	return fmt.Errorf("no echo: %w", in.Err())
}

// TestClientAgainstServers runs colibri's client against each server,
// plain and compressed: echo up to 1 MiB, PING and PONG both ways, close
// both ways.
func TestClientAgainstServers(t *testing.T) {
	for _, srv := range serverStacks {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []string{"plain", "deflate", "deflate-reset"} {
				t.Run(mode, func(t *testing.T) {
					s := srv.start(t, mode)
					clientAgainst(t, s, mode)
				})
			}
		})
	}
}

func clientAgainst(t *testing.T, s *peerServer, mode string) {
	cfg := &wsconn.Config{PingInterval: 50 * time.Millisecond, MaxMessageSize: 64 << 20}
	if mode != "plain" {
		// Takeover on our side where the server allows it.
		cfg.Compression = wsconn.Compression{Enabled: true, ContextTakeover: mode == "deflate"}
	}
	opts := &wsclient.Options{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("echo and ping", func(t *testing.T) {
		sent := 0
		err := wsclient.Run(ctx, s.url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
			if got := len(sess.Extensions()); got != map[bool]int{true: 1, false: 0}[mode != "plain"] {
				return fmt.Errorf("%d extensions negotiated: %q", got, sess.Value.Header.Get("Sec-WebSocket-Extensions"))
			}
			for _, m := range []messages.Message{
				{Kind: messages.KindText, Payload: payload("text", 1<<20)},
				{Kind: messages.KindBinary, Payload: payload("binary", 1<<20)},
				{Kind: messages.KindText, Payload: payload("text", 1<<20)},
				{Kind: messages.KindText, Payload: []byte("colibri 🐦")},
				{Kind: messages.KindBinary, Payload: nil},
			} {
				if err := roundTrip(ctx, in, out, m); err != nil {
					return err
				}
				sent += len(m.Payload)
			}
			// Our keep-alive PING, 50 ms after the last frame, is answered.
			deadline := time.Now().Add(10 * time.Second)
			for sess.RTT() == 0 {
				if time.Now().After(deadline) {
					return errors.New("no PONG to colibri's PING")
				}
				time.Sleep(10 * time.Millisecond)
			}
			st := sess.Stats()
			if mode != "plain" && (st.BytesIn > int64(sent/10) || st.BytesOut > int64(sent/10)) {
				return fmt.Errorf("%d payload bytes each way took %d in and %d out: not compressed (%q)",
					sent, st.BytesIn, st.BytesOut, sess.Value.Header.Get("Sec-WebSocket-Extensions"))
			}
			return nil
		}, opts)
		if err != nil {
			t.Fatal(err)
		}
		s.expect(t, serverEvent{Event: "open", Path: "/echo"})
		s.expect(t, serverEvent{Event: "close", Path: "/echo", Code: 1000})
	})

	t.Run("ping from the server", func(t *testing.T) {
		err := wsclient.Run(ctx, s.url+"/ping", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
			for m := range in.Messages(0) {
				if m.Text() != "pong server ping" {
					return fmt.Errorf("got %q", m.Text())
				}
				return nil
			}
			return in.Err()
		}, opts)
		if err != nil {
			t.Fatal(err)
		}
		s.expect(t, serverEvent{Event: "open", Path: "/ping"})
		s.expect(t, serverEvent{Event: "close", Path: "/ping", Code: 1000})
	})

	t.Run("close from the client", func(t *testing.T) {
		bye := &wsconn.CloseError{Code: 4001, Reason: "bye from colibri 🐦"}
		err := wsclient.Run(ctx, s.url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
			return bye
		}, opts)
		if !errors.Is(err, bye) {
			t.Fatalf("Run returned %v", err)
		}
		s.expect(t, serverEvent{Event: "open", Path: "/echo"})
		s.expect(t, serverEvent{Event: "close", Path: "/echo", Code: 4001, Reason: "bye from colibri 🐦"})
	})

	t.Run("close from the server", func(t *testing.T) {
		err := wsclient.Run(ctx, s.url+"/close?code=4002&reason=server+says+bye", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
			if err := out.WriteText(ctx, "close, please"); err != nil {
				return err
			}
			for m := range in.Messages(0) {
				return fmt.Errorf("got %q", m.Text())
			}
			return in.Err()
		}, opts)
		var ce *wsconn.CloseError
		if !errors.As(err, &ce) || ce.Code != 4002 || ce.Reason != "server says bye" {
			t.Fatalf("Run returned %v, want the server's close 4002", err)
		}
		s.expect(t, serverEvent{Event: "open", Path: "/close"})
		// The server sees its own code come back (RFC 6455 §5.5.1).
		s.expect(t, serverEvent{Event: "close", Path: "/close", Code: 4002, Reason: "server says bye"})
	})

	if mode != "plain" {
		t.Run("client_max_window_bits", func(t *testing.T) {
			// Our own offer with client_max_window_bits: a server that
			// answers with a window gets messages compressed with it.
			o := *opts
			offer := wsconn.Extension{Name: "permessage-deflate"}
			if !cfg.Compression.ContextTakeover {
				offer.Params = []wsconn.ExtensionParam{{Name: "client_no_context_takeover"}, {Name: "server_no_context_takeover"}}
			}
			offer.Params = append(offer.Params, wsconn.ExtensionParam{Name: "client_max_window_bits"})
			o.Extensions = []wsconn.Extension{offer}
			err := wsclient.Run(ctx, s.url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				t.Logf("%s answered %q", s.name, sess.Value.Header.Get("Sec-WebSocket-Extensions"))
				for _, size := range []int{1 << 20, 100000, 300} {
					if err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindBinary, Payload: payload("binary", size)}); err != nil {
						return err
					}
				}
				return nil
			}, &o)
			if err != nil {
				t.Fatal(err)
			}
			ev := s.expect(t, serverEvent{Event: "open", Path: "/echo"})
			if !strings.Contains(ev.Offer, "client_max_window_bits") {
				t.Fatalf("offered %q", ev.Offer)
			}
			s.expect(t, serverEvent{Event: "close", Path: "/echo", Code: 1000})
		})
	}
}

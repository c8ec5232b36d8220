package interop

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/internal/tcpstate"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// ixDial returns Options whose connections report their local and remote
// addresses, separated by a space.
func ixDial(cfg *wsconn.Config, local chan<- string) *wsclient.Options {
	return &wsclient.Options{Config: cfg, NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err == nil {
			local <- nc.LocalAddr().String() + " " + nc.RemoteAddr().String()
		}
		return nc, err
	}}
}

// timeWait reports whether the client's end and the server's end of a TCP
// connection (ends: the client's local and remote IPv4 addresses,
// separated by a space) are in TIME-WAIT, looking for up to a second for
// either.
func timeWait(t *testing.T, ends string) (client, server bool) {
	t.Helper()
	local, remote, _ := strings.Cut(ends, " ")
	for range 20 {
		var err error
		if client, server, err = tcpstate.TimeWait(local, remote); err != nil {
			t.Fatal(err)
		}
		if client || server {
			return client, server
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false, false
}

// TestInteropCornerClientHoldsTimeWait: after a clean closing handshake with ws's and
// websockets' servers, the TCP connection's TIME-WAIT should be on the
// server's side (RFC 6455 §7.1.1: the server closes TCP first "so that it
// holds the TIME_WAIT state and not the client"; docs/client.md: the client
// "waits ... for the server to close TCP first").
func TestInteropCornerClientHoldsTimeWait(t *testing.T) {
	for _, srv := range serverStacks {
		t.Run(srv.name, func(t *testing.T) {
			s := srv.start(t, "plain")
			for _, c := range []struct {
				name, path string
				handler    func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error
			}{
				{"client closes", "/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
					return roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte("hello")})
				}},
				{"server closes", "/close?code=4002&reason=bye", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
					if err := out.WriteText(ctx, "close, please"); err != nil {
						return err
					}
					for range in.Messages(0) {
					}
					return nil
				}},
			} {
				t.Run(c.name, func(t *testing.T) {
					local := make(chan string, 1)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					start := time.Now()
					if err := wsclient.Run(ctx, s.url+c.path, c.handler, ixDial(&wsconn.Config{}, local)); err != nil {
						t.Fatal(err)
					}
					took := time.Since(start)
					path, _, _ := strings.Cut(c.path, "?")
					s.expect(t, serverEvent{Event: "open", Path: path})
					s.next(t)
					addr := <-local
					if client, server := timeWait(t, addr); client || !server {
						t.Errorf("%s: TIME-WAIT on the client's end %s: %v, on the server's: %v (Run took %v): the client closed TCP first", s.name, addr, client, server, took.Round(time.Millisecond))
					}
				})
			}
		})
	}
}

// ixServerEnd is testdata/corners/server.js's report of a connection.
type ixServerEnd struct {
	Event          string   `json:"event"`
	Path           string   `json:"path"`
	Code           int      `json:"code"`
	Reason         string   `json:"reason"`
	Pongs          []string `json:"pongs"`
	RemoteFinFirst bool     `json:"remoteFinFirst"`
	Errors         []string `json:"errors"`
}

// TestInteropCornerClientAgainstNodePings: ws's server sends PINGs with an empty, a
// short, a 125-byte and a binary payload; colibri's client answers each
// with its payload, in order, plain and compressed, and ws logs no error.
func TestInteropCornerClientAgainstNodePings(t *testing.T) {
	st := nodeStack()
	if st.open == nil {
		unavailable(t, st.version)
	}
	node, _ := exec.LookPath("node")
	for _, mode := range []string{"plain", "deflate"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t, "ws (corners)", node, testdata("corners", "server.js"), mode)
			cfg := &wsconn.Config{}
			if mode == "deflate" {
				cfg.Compression = wsconn.Compression{Enabled: true, ContextTakeover: true}
			}
			var stats wsconn.Stats
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := wsclient.Run(ctx, s.url+"/ping", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				for m := range in.Messages(0) {
					if m.Text() != "pongs" {
						return fmt.Errorf("got %q", m.Text())
					}
					break
				}
				if err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte(strings.Repeat("colibri 🐦 ", 1000))}); err != nil {
					return err
				}
				stats = sess.Stats()
				return nil
			}, &wsclient.Options{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			var ev ixServerEnd
			select {
			case line := <-s.p.lines:
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("server printed %q", line)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no end from the server; stderr:\n%s", s.p.stderr)
			}
			want := []string{"", hex.EncodeToString([]byte("p1")), hex.EncodeToString([]byte(strings.Repeat("x", 125))), "00ff800a"}
			if !slices.Equal(ev.Pongs, want) || ev.Code != 1000 || len(ev.Errors) > 0 {
				t.Errorf("ws saw pongs %q, close %d %q, errors %q; want pongs %q, 1000", ev.Pongs, ev.Code, ev.Reason, ev.Errors, want)
			}
			if stats.MessagesIn != 2 || stats.MessagesOut != 1 {
				t.Errorf("client stats %+v", stats)
			}
			if mode == "deflate" && stats.BytesOut > 2000 {
				t.Errorf("client sent %d bytes for 12000 compressible", stats.BytesOut)
			}
		})
	}
}

package wstest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

var quiet = slog.New(slog.DiscardHandler)

// echo sends every message back as it came.
func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

func echoHandler() *wstest.HandlerOptions {
	return &wstest.HandlerOptions{Config: &wsconn.Config{Logger: quiet}}
}

func TestMemoryServerEcho(t *testing.T) {
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	if srv.URL() != "ws://wstest.invalid" {
		t.Fatalf("URL %q", srv.URL())
	}
	c := srv.Dial(t, "/", nil)
	c.SendText("hello")
	c.ExpectText("hello")
	c.SendBinary([]byte{1, 2, 3})
	c.ExpectBinary([]byte{1, 2, 3})
	c.SendClose(frames.CloseNormal, "bye")
	c.ExpectClose(frames.CloseNormal, "bye")
}

func TestLoopbackServerEcho(t *testing.T) {
	srv := wstest.NewServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	if !strings.HasPrefix(srv.URL(), "ws://127.0.0.1:") {
		t.Fatalf("URL %q", srv.URL())
	}
	c := srv.Dial(t, "/", nil)
	c.SendText("hello")
	c.ExpectText("hello")
	c.Close()
}

type userKey struct{}

// TestMemoryServerIsRealHTTP serves a mux with middleware in memory: plain
// routes answer through an http.Client, values middleware set reach the
// WebSocket handler, and unknown routes refuse the upgrade.
func TestMemoryServerIsRealHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil || net.ParseIP(host) == nil {
			http.Error(w, "remote address "+r.RemoteAddr, http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok from "+r.Host)
	})
	mux.Handle("GET /ws", wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "hello, "+ctx.Value(userKey{}).(string))
	}, echoHandler()))
	withUser := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, r.URL.Query().Get("user"))))
		})
	}
	srv := wstest.NewMemoryServer(t, withUser(mux))

	tr := &http.Transport{DialContext: srv.NetDial}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://wstest.invalid/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok from wstest.invalid" {
		t.Fatalf("GET /health: %d %q", resp.StatusCode, body)
	}

	c := srv.Dial(t, "/ws?user=ann", nil)
	c.ExpectText("hello, ann")
	c.ExpectClose(frames.CloseNormal, "")

	_, _, err = wsclient.Dial(t.Context(), srv.URL()+"/nowhere", &wsclient.Options{NetDial: srv.NetDial})
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound {
		t.Fatalf("dial to a missing route: %v", err)
	}
}

func TestServerCloseEndsSessions(t *testing.T) {
	started := make(chan struct{})
	returned := make(chan error, 1)
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		close(started)
		for range in.Messages(0) {
		}
		returned <- in.Err()
		return nil
	}, echoHandler()))
	r := &recorder{TB: t}
	var c *wstest.Client
	wantFailure(t, r.run(func() { c = srv.Dial(r, "/", nil) }), "")
	<-started
	srv.Close()
	select {
	case err := <-returned:
		if wsconn.CloseStatus(err) != frames.CloseAbnormal {
			t.Fatalf("the session ended with %v, want an abnormal close", err)
		}
	default:
		t.Fatal("Close returned before the session's handler")
	}
	wantFailure(t, r.run(func() { c.ExpectMessage() }),
		"wstest: want a message: the server closed the connection without a CLOSE frame")
	if _, _, err := wsclient.Dial(t.Context(), srv.URL(), &wsclient.Options{NetDial: srv.NetDial}); err == nil {
		t.Fatal("dial to a closed server succeeded")
	}
}

// TestMemoryServerBuffersLikeASocket writes many messages before reading
// any echo, which needs buffering in both directions, as TCP gives.
func TestMemoryServerBuffersLikeASocket(t *testing.T) {
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	c := srv.Dial(t, "/", nil)
	msg := bytes.Repeat([]byte("b"), 16<<10)
	for i := range 40 {
		msg[0] = byte(i)
		c.SendBinary(msg)
	}
	for i := range 40 {
		msg[0] = byte(i)
		c.ExpectBinary(msg)
	}
	c.Close()
}

func TestServerDialTimesOutOnAHandlerThatHangs(t *testing.T) {
	release := make(chan struct{})
	srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer close(release)
	o := &wsclient.Options{HandshakeTimeout: 20 * time.Millisecond}
	got := failure(t, func(tb testing.TB) { srv.Dial(tb, "/", o) })
	if !strings.HasPrefix(got, "wstest: dial /: wsclient: dial ws://wstest.invalid/: handshake took longer than 20ms") {
		t.Fatalf("failure %q", got)
	}
}

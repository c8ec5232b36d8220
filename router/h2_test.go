package router_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/internal/h2test"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// serveTLS runs r over TLS with HTTP/1.1 and HTTP/2 on a loopback port
// and returns its https base URL and a client trusting its certificate.
func serveTLS(t *testing.T, r *router.Router) (string, *h2test.Client, *tls.Config) {
	t.Helper()
	srv, ln, pool := h2test.Server(t, r)
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	client := h2test.NewClient(pool)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		client.Close()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		<-served
	})
	return "https://" + ln.Addr().String(), client, &tls.Config{RootCAs: pool}
}

// protoLog is middleware that notes how each request arrived.
type protoLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *protoLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, fmt.Sprintf("%s %s %s", r.Proto, r.Method, r.URL.Path))
		l.mu.Unlock()
		ctx := context.WithValue(r.Context(), userKey{}, "ada")
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (l *protoLog) saw(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.seen, s)
}

type userKey struct{}

// room is the decision's value: the path's name.
type room struct{ Name string }

func decideRoom(r *http.Request) (room, router.Decision) {
	switch name := r.PathValue("name"); name {
	case "locked":
		return room{}, router.Reject(http.StatusUnauthorized, nil, "locked room")
	case "page":
		return room{}, router.DontUpgrade()
	default:
		return room{name}, router.Upgrade(http.Header{"X-Room": {name}})
	}
}

// greetThenEcho says how the handler sees its connection, echoes, and
// ends with 4000 on "bye".
func greetThenEcho(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[room]) error {
	user, _ := ctx.Value(userKey{}).(string)
	greeting := fmt.Sprintf("%s http2=%v sub=%s user=%s", s.Value.Name, s.HTTP2(), s.Subprotocol(), user)
	if err := out.WriteText(ctx, greeting); err != nil {
		return err
	}
	for m := range in.Messages(0) {
		if string(m.Payload) == "bye" {
			return &wsconn.CloseError{Code: 4000, Reason: "bye " + s.Value.Name}
		}
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

func newRoomRouter(log *protoLog) *router.Router {
	r := router.New(router.WithConfig(quiet))
	r.Use(log.middleware)
	r.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over "+r.Proto)
	})
	// A page on the path of a declined upgrade, for any method.
	r.HandleFunc("/ws/room/page", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "the page") })
	router.WS(r, "/ws/room/{name}", decideRoom, greetThenEcho, router.WithSubprotocols("chat.v2", "chat.v1"))
	return r
}

func openRoom(t *testing.T, c *h2test.Client, base, name string) *h2test.Socket {
	t.Helper()
	s, _, err := c.Dial(context.Background(), base+"/ws/room/"+name, http.Header{"Sec-Websocket-Protocol": {"chat.v1, chat.v2"}})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(s.CloseNow)
	if got := s.Response.Header.Get("X-Room"); got != name {
		t.Fatalf("X-Room %q, want %q", got, name)
	}
	if got := s.Response.Header.Get("Sec-WebSocket-Protocol"); got != "chat.v1" {
		t.Fatalf("subprotocol %q, want chat.v1", got)
	}
	h2pText(t, s, name+" http2=true sub=chat.v1 user=ada")
	return s
}

func get(t *testing.T, c *h2test.Client, url string) string {
	t.Helper()
	resp, err := c.HTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Several WebSockets and ordinary requests share one TLS connection; the
// same route, middleware, decision and handler serve them as they serve
// HTTP/1.1; closing one socket leaves the others and the connection be.
func TestHTTP2SocketsShareOneConnection(t *testing.T) {
	log := &protoLog{}
	r := newRoomRouter(log)
	base, client, _ := serveTLS(t, r)

	if got := get(t, client, base+"/hello"); got != "hello over HTTP/2.0" {
		t.Fatalf("GET: %q", got)
	}
	a := openRoom(t, client, base, "a")
	b := openRoom(t, client, base, "b")
	if got := get(t, client, base+"/hello"); got != "hello over HTTP/2.0" {
		t.Fatalf("GET between sockets: %q", got)
	}
	c := openRoom(t, client, base, "c")
	for _, s := range []*h2test.Socket{a, b, c, a} {
		h2pEcho(t, s, "ping "+strings.Repeat("🐦", 3))
	}
	if n := r.Connections(); n != 3 {
		t.Fatalf("router counts %d connections, want 3", n)
	}

	// The handler ends a with 4000; its stream ends, nothing else does.
	if err := a.WriteText("bye"); err != nil {
		t.Fatal(err)
	}
	_, _, err := a.ReadMessage()
	var ce *h2test.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "bye a" {
		t.Fatalf("a: %v, want CLOSE 4000 \"bye a\"", err)
	}
	if err := a.AwaitEnd(); err != nil {
		t.Fatalf("a's stream ended with %v", err)
	}
	h2pEcho(t, b, "b still here")
	h2pEcho(t, c, "c still here")

	// The client closes b; the server echoes its code.
	if ce, err := b.Close(ws.StatusNormalClosure, "leaving"); err != nil || ce.Code != ws.StatusNormalClosure {
		t.Fatalf("b close: %v %v", ce, err)
	}
	h2pEcho(t, c, "c after b")
	if got := get(t, client, base+"/hello"); got != "hello over HTTP/2.0" {
		t.Fatalf("GET after closes: %q", got)
	}
	d := openRoom(t, client, base, "d")
	h2pEcho(t, d, "a new stream on the same connection")

	if n := client.Dials(); n != 1 {
		t.Fatalf("client dialed %d TLS connections, want 1", n)
	}
	for _, want := range []string{"HTTP/2.0 CONNECT /ws/room/a", "HTTP/2.0 GET /hello"} {
		if !log.saw(want) {
			t.Errorf("middleware never saw %q", want)
		}
	}

	// Shutdown sends 1001 on every open stream.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.Shutdown(ctx)
		done <- err
	}()
	for _, s := range []*h2test.Socket{c, d} {
		if _, _, err := s.ReadMessage(); !errors.As(err, &ce) || ce.Code != ws.StatusGoingAway {
			t.Fatalf("at shutdown: %v, want CLOSE 1001", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Refusals over HTTP/2 are plain HTTP answers on the stream, and a
// declined extended CONNECT never reaches an HTTP route.
func TestHTTP2Refusals(t *testing.T) {
	r := newRoomRouter(&protoLog{})
	base, client, tlsConf := serveTLS(t, r)
	ctx := context.Background()

	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
		body   string
	}{
		{"reject", "/ws/room/locked", nil, http.StatusUnauthorized, "locked room"},
		{"decline", "/ws/room/page", nil, http.StatusForbidden, "declined"},
		{"cross-site", "/ws/room/x", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden, "not allowed"},
		{"no route", "/nowhere", nil, http.StatusNotFound, ""},
	} {
		_, resp, err := client.Dial(ctx, base+tc.path, tc.header)
		if err == nil || resp == nil || resp.StatusCode != tc.status || !strings.Contains(err.Error(), tc.body) {
			t.Errorf("%s: %v, want %d %q", tc.name, err, tc.status, tc.body)
		}
		if resp != nil && resp.Header.Get("Upgrade") != "" {
			t.Errorf("%s: HTTP/2 refusal carries Upgrade: %q", tc.name, resp.Header.Get("Upgrade"))
		}
	}
	// Same-origin browsers pass.
	s, _, err := client.Dial(ctx, base+"/ws/room/x", http.Header{"Origin": {base}})
	if err != nil {
		t.Fatalf("same origin: %v", err)
	}
	s.CloseNow()

	// Over HTTP/1.1 the declined upgrade still gets the page.
	d := gorilla.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 5 * time.Second}
	wss := "wss" + strings.TrimPrefix(base, "https")
	_, resp, err := d.Dial(wss+"/ws/room/page", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusOK || body(t, resp) != "the page" {
		t.Fatalf("HTTP/1.1 decline: %v", err)
	}
}

// The TLS server still speaks HTTP/1.1 to clients that ask for it, with
// the same route.
func TestHTTP1BesideHTTP2(t *testing.T) {
	r := newRoomRouter(&protoLog{})
	base, client, tlsConf := serveTLS(t, r)
	d := gorilla.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"chat.v2"}}
	wss := "wss" + strings.TrimPrefix(base, "https")
	c, _, err := d.Dial(wss+"/ws/room/h1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "h1 http2=false sub=chat.v2 user=ada" {
		t.Fatalf("HTTP/1.1 greeting %q %v", p, err)
	}
	s := openRoom(t, client, base, "h2")
	h2pEcho(t, s, "both at once")
	if err := c.WriteMessage(gorilla.TextMessage, []byte("h1 echo")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "h1 echo" {
		t.Fatalf("HTTP/1.1 echo %q %v", p, err)
	}
}

// h2Observer records what a router's observer is told.
type h2Observer struct {
	mu       sync.Mutex
	upgrades []wsconn.UpgradeResult
	http2    []bool
}

func (o *h2Observer) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.http2 = append(o.http2, c.HTTP2())
	return nil
}

func (o *h2Observer) Upgraded(_ *http.Request, u wsconn.UpgradeResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.upgrades = append(o.upgrades, u)
}

func (o *h2Observer) seen() ([]wsconn.UpgradeResult, []bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.upgrades), slices.Clone(o.http2)
}

// The router reports an HTTP/2 handshake when the 200 has gone out, while
// the stream is still being served, as it reports an HTTP/1.1 one after
// the 101.
func TestHTTP2HandshakeReportedWhileServing(t *testing.T) {
	obs := &h2Observer{}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	router.WS(r, "/echo", nil, echo[struct{}])
	base, client, _ := serveTLS(t, r)
	s, _, err := client.Dial(context.Background(), base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	h2pEcho(t, s, "open")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ups, h2 := obs.seen()
		if len(ups) == 1 && len(h2) == 1 {
			if u := ups[0]; u.Route != "/echo" || u.Status != http.StatusOK || !u.Accepted || u.Err != nil || u.Duration <= 0 {
				t.Fatalf("reported %+v, want /echo accepted with 200", u)
			}
			if !h2[0] {
				t.Fatal("the observer's Conn says it is not on HTTP/2")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while the socket is open the observer saw %v and %v", ups, h2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h2pEcho(t, s, "still open after the report")
}

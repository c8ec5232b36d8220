package middleware_test

// Recover's 500 carries the header fields the response
// had when Recover was entered, from outside: net/http's client, raw TCP
// with http.ReadResponse, gorilla/websocket and x/net/http2.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvtLines keeps the JSON lines of a logger.
type rvtLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *rvtLines) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

func (l *rvtLines) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return len(p), nil
}

func (l *rvtLines) find(msg string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

// rvtGet sends a GET for path with net/http's client and returns the
// response with its body.
func rvtGet(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: guard}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// The fields set in front of Recover come back as they were, whatever the
// panicking handler did to them on the way: a value changed in place
// through the slice the map holds, a field deleted, values appended to a
// slice with room to spare (which shares its array with the front's), a
// non-canonical duplicate, the whole map cleared and refilled. RequestID
// and Log sit in front, and Log records the 500.
func TestRecoverRestoresFrontFieldsWhateverTheHandlerDid(t *testing.T) {
	lines := &rvtLines{}
	front := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", "https://app.example")
			vary := make([]string, 1, 4) // room to append in place
			vary[0] = "Origin"
			h["Vary"] = vary
			next.ServeHTTP(w, r)
		})
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h[http.CanonicalHeaderKey(middleware.RequestIDHeader)][0] = "forged"
		h["Vary"] = append(h["Vary"], "Cookie")
		delete(h, "Access-Control-Allow-Origin")
		h["x-request-id"] = []string{"second"}
		saved := h.Clone()
		clear(h)
		for k, v := range saved {
			h[k] = v
		}
		h.Set("Set-Cookie", "session=granted")
		h.Set("Content-Encoding", "br")
		h.Set("Trailer", "X-Checksum")
		panic("after rewriting the header")
	})
	h := middleware.RequestID(middleware.Log(lines.logger())(front(middleware.Recover(lines.logger())(inner))))
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, body := rvtGet(t, srv.URL+"/items", http.Header{middleware.RequestIDHeader: {"rid-42"}})
	if resp.StatusCode != http.StatusInternalServerError || body != "Internal Server Error\n" {
		t.Fatalf("got %d %q, want 500", resp.StatusCode, body)
	}
	if v := resp.Header.Values(middleware.RequestIDHeader); !slices.Equal(v, []string{"rid-42"}) {
		t.Errorf("X-Request-ID %q, want rid-42 alone", v)
	}
	if v := resp.Header.Values("Vary"); !slices.Equal(v, []string{"Origin"}) {
		t.Errorf("Vary %q, want Origin alone", v)
	}
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin %q", v)
	}
	for _, k := range []string{"Set-Cookie", "Content-Encoding", "Trailer"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			t.Errorf("the 500 carries the handler's %s %q", k, v)
		}
	}
	if len(resp.Trailer) > 0 {
		t.Errorf("the 500 announces trailers %v", resp.Trailer)
	}
	if p := lines.find("panic"); p == nil || p["panic"] != "after rewriting the header" {
		t.Errorf("panic line %v: the handler did not get through its rewrites", p)
	}
	line := lines.find("request")
	if line == nil || line["status"] != float64(500) || line["level"] != "ERROR" || line["request_id"] != "rid-42" {
		t.Errorf("Log line %v, want the 500 at ERROR with the id", line)
	}
}

// rvtRawRead reads one response off br, body included (Content-Length).
func rvtRawRead(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// A handler that sent 103 Early Hints (with its Link) before panicking has
// not started the final response: the client gets the 103, then a 500
// with the front's fields and without what the handler set around the
// 103.
func TestRecoverAfterEarlyHints(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Set-Cookie", "late=1")
		panic("after the hints")
	})
	srv := httptest.NewServer(middleware.RequestID(middleware.Recover(slog.New(slog.DiscardHandler))(inner)))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nX-Request-ID: rid-7\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	early, _ := rvtRawRead(t, br)
	if early.StatusCode != http.StatusEarlyHints || early.Header.Get("Link") == "" {
		t.Fatalf("first %d %v, want 103 with Link", early.StatusCode, early.Header)
	}
	final, body := rvtRawRead(t, br)
	if final.StatusCode != http.StatusInternalServerError || body != "Internal Server Error\n" {
		t.Fatalf("final %d %q, want 500", final.StatusCode, body)
	}
	if final.Header.Get("Link") != "" || final.Header.Get("Set-Cookie") != "" {
		t.Errorf("the 500 carries the handler's fields: %v", final.Header)
	}
	if final.Header.Get(middleware.RequestIDHeader) != "rid-7" {
		t.Errorf("the 500 lost the request id: %v", final.Header)
	}
}

// A "Connection: close" set in front of Recover (a draining server
// shedding its keep-alive connections, say) is a field the response had
// when Recover was entered, which the doc says the 500 carries; Recover
// deletes it along with the upgrade fields, so the 500 keeps the
// connection open against the front's wish.
func TestRecoverKeepsConnectionCloseSetInFront(t *testing.T) {
	draining := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(draining(middleware.Recover(slog.New(slog.DiscardHandler))(http.HandlerFunc(
		func(http.ResponseWriter, *http.Request) { panic("boom") }))))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, _ := rvtRawRead(t, br)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	if !resp.Close {
		t.Errorf("the 500 does not say Connection: close (header %v)", resp.Header)
	}
	// The server closes its side: the next read ends at once (the
	// deadline only bounds the failure).
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the 500 the connection stays open (read: %v)", err)
	}
}

// On a ws route, with Recover and RequestID in front: a group middleware
// that sets a cookie, lets the route accept, then panics gets a 500 with
// the id and without the cookie or the upgrade fields, over HTTP/1.1
// (gorilla) and HTTP/2 (x/net/http2's extended CONNECT); no WebSocket is
// served and no place is held.
func TestRecoverOnAWSRoute(t *testing.T) {
	var mu sync.Mutex
	sessions := 0
	r := router.New(router.WithConfig(wsconn.Config{Logger: quietLogger}))
	r.Use(middleware.RequestID, middleware.Recover(quietLogger))
	panicAfter := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Add("Set-Cookie", "granted=1")
			next.ServeHTTP(w, req) // the route records its Upgrade
			panic("after the decision")
		})
	}
	r.With(panicAfter).Group(func(g *router.Router) {
		router.WS(g, "/ws", func(*http.Request) (string, router.Decision) {
			return "v", router.Upgrade(http.Header{"X-Room": {"lobby"}})
		}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
			mu.Lock()
			sessions++
			mu.Unlock()
			return nil
		})
	})

	check := func(proto string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusInternalServerError || body != "Internal Server Error\n" {
			t.Errorf("%s: got %d %q, want 500", proto, resp.StatusCode, body)
		}
		for _, k := range []string{"Upgrade", "Connection", "Set-Cookie", "X-Room", "Sec-Websocket-Accept"} {
			if v := resp.Header.Values(k); len(v) > 0 && !(k == "Connection" && slices.Equal(v, []string{"close"})) {
				t.Errorf("%s: the 500 carries %s %q", proto, k, v)
			}
		}
		if resp.Header.Get(middleware.RequestIDHeader) != "rid-"+proto {
			t.Errorf("%s: the 500 lost the request id: %v", proto, resp.Header)
		}
	}

	base := serve(t, r)
	resp, body := refused(t, wsURL(base, "/ws"), http.Header{middleware.RequestIDHeader: {"rid-h1"}})
	check("h1", resp, body)

	hbase, client := h2Serve(t, r)
	s, resp2, err := client.Dial(context.Background(), hbase+"/ws", http.Header{middleware.RequestIDHeader: {"rid-h2"}})
	if s != nil {
		s.CloseNow()
		t.Fatal("HTTP/2: a stream was opened after the panic")
	}
	if resp2 == nil {
		t.Fatalf("HTTP/2: %v", err)
	}
	if resp2.ProtoMajor != 2 {
		t.Errorf("HTTP/2: answered over HTTP/%d", resp2.ProtoMajor)
	}
	h2body := ""
	if err != nil && strings.HasSuffix(err.Error(), ": Internal Server Error\n") {
		h2body = "Internal Server Error\n" // h2test puts the refusal's body in its error
	}
	check("h2", resp2, h2body)

	mu.Lock()
	n := sessions
	mu.Unlock()
	if n != 0 || r.Connections() != 0 {
		t.Errorf("%d sessions served, %d places held after the panics", n, r.Connections())
	}
}

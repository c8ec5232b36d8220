package router_test

// Reject with response headers, from outside: raw
// HTTP/1.1 on TCP read with http.ReadResponse, net/http's client,
// gorilla/websocket, and HTTP/2 through x/net/http2 and a raw framer.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

// rvtRaw is a response as it came off the wire: its head's lines, and
// the parsed response with its body read.
type rvtRaw struct {
	lines []string // the status line and the field lines, as sent
	resp  *http.Response
	body  string
}

// fields returns the field lines named name (any case), as sent.
func (r *rvtRaw) fields(name string) []string {
	var out []string
	for _, l := range r.lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// rvtRead reads one response from br, keeping its head as sent.
func rvtRead(t *testing.T, br *bufio.Reader, method string) *rvtRaw {
	t.Helper()
	var head bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the head: %v (so far %q)", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	raw := &rvtRaw{lines: strings.Split(strings.TrimSuffix(head.String(), "\r\n\r\n"), "\r\n")}
	// The head alone for http.ReadResponse; the body is read off br by
	// its Content-Length, so that br keeps what follows.
	resp, err := http.ReadResponse(bufio.NewReader(&head), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("ReadResponse: %v\n%s", err, strings.Join(raw.lines, "\n"))
	}
	var b []byte
	switch {
	case resp.ContentLength > 0:
		b = make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatalf("reading the body: %v", err)
		}
	case resp.ContentLength < 0 && resp.StatusCode >= 200 && resp.StatusCode != http.StatusNoContent:
		t.Fatalf("a response without Content-Length:\n%s", strings.Join(raw.lines, "\n"))
	}
	raw.resp, raw.body = resp, string(b)
	return raw
}

// rvtExchange sends the raw requests on one connection to addr and reads
// a response for each, in order.
func rvtExchange(t *testing.T, addr string, reqs ...string) []*rvtRaw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rvtGuard))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	// One bufio.Reader for the connection; each response is read off it
	// with a reader that sees exactly its bytes.
	br := bufio.NewReader(c)
	var out []*rvtRaw
	for _, req := range reqs {
		method, _, _ := strings.Cut(req, " ")
		out = append(out, rvtRead(t, br, method))
	}
	return out
}

// rvtPlain is a plain GET of path on addr, keeping the connection alive.
func rvtPlain(addr, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
}

// rvtRejectRouter serves /ws with a ws route rejecting with status, header
// and body, and /plain with an HTTP route; mws go in front of everything.
func rvtRejectRouter(status int, header http.Header, body string, mws ...func(http.Handler) http.Handler) *router.Router {
	rt := router.New(router.WithConfig(quiet))
	rt.Use(mws...)
	rt.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain page") })
	router.WS(rt, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Reject(status, header, body)
	}, echo[struct{}])
	return rt
}

func rvtSetHeader(k, v string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add(k, v)
			next.ServeHTTP(w, r)
		})
	}
}

// The decision's fields add up with middleware's, the router's own fields
// (the body's and the handshake's) are ignored in any spelling, names
// that are no token never reach the wire, and the response stays framed:
// a request sent behind it on the same connection gets its own answer.
func TestRejectMergesAndKeepsTheRoutersFields(t *testing.T) {
	header := http.Header{
		"Vary":                     {"Authorization"},
		"x-request-id":             {"decision"},
		"WWW-AUTHENTICATE":         {`Bearer realm="chat"`, `Basic realm="chat"`},
		"CONTENT-LENGTH":           {"9999"},
		"content-type":             {"application/json"},
		"Transfer-encoding":        {"chunked"},
		"cOnNeCtIoN":               {"close"},
		"UPGRADE":                  {"websocket"},
		"sec-websocket-accept":     {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
		"SEC-WEBSOCKET-EXTENSIONS": {"permessage-deflate"},
		"Sec-WebSocket-Protocol":   {"chat"},
		"X-Content-Type-Options":   {"sniff-away"},
		"Content-Type ":            {"text/html"}, // no token: never on the wire
		"Content-Length\t":         {"1"},
	}
	rt := rvtRejectRouter(http.StatusUnauthorized, header, "token required",
		rvtSetHeader("Vary", "Origin"), rvtSetHeader("X-Request-Id", "mw"))
	addr := rvtServe(t, rt)
	defer rt.Shutdown(context.Background())

	got := rvtExchange(t, addr, rvtUpgrade(addr, "/ws"), rvtPlain(addr, "/plain"))
	r := got[0]
	if r.resp.StatusCode != http.StatusUnauthorized || r.body != "token required\n" {
		t.Fatalf("got %d %q, want 401 %q\n%s", r.resp.StatusCode, r.body, "token required\n", strings.Join(r.lines, "\n"))
	}
	if v := r.fields("Vary"); !slices.Contains(v, "Origin") || !slices.Contains(v, "Authorization") {
		t.Errorf("Vary %q, want middleware's Origin and the decision's Authorization", v)
	}
	if v := r.fields("X-Request-Id"); !slices.Equal(v, []string{"mw", "decision"}) {
		t.Errorf("X-Request-Id %q, want middleware's then the decision's", v)
	}
	if v := r.fields("WWW-Authenticate"); len(v) != 2 {
		t.Errorf("WWW-Authenticate %q, want both challenges", v)
	}
	if v := r.fields("Content-Length"); len(v) != 1 || v[0] != "15" {
		t.Errorf("Content-Length lines %q, want one, 15", v)
	}
	if v := r.fields("Content-Type"); len(v) != 1 || v[0] != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type lines %q, want the router's alone", v)
	}
	if v := r.fields("X-Content-Type-Options"); !slices.Equal(v, []string{"nosniff"}) {
		t.Errorf("X-Content-Type-Options %q, want nosniff alone", v)
	}
	for _, k := range []string{"Transfer-Encoding", "Upgrade", "Connection", "Sec-WebSocket-Accept",
		"Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"} {
		if v := r.fields(k); len(v) > 0 {
			t.Errorf("the refusal carries %s %q", k, v)
		}
	}
	for _, l := range r.lines {
		if strings.HasPrefix(l, "Content-Type ") || strings.HasPrefix(l, "Content-Length\t") {
			t.Errorf("a field name that is no token reached the wire: %q", l)
		}
	}
	if p := got[1]; p.resp.StatusCode != http.StatusOK || p.body != "plain page" {
		t.Errorf("the request behind the refusal got %d %q", p.resp.StatusCode, p.body)
	}
}

// CR and LF in the decision's values or names cannot add a field, end
// the head early or smuggle a second response: the refusal's head has the
// fields it should, and the request pipelined behind it gets its own
// answer.
func TestRejectHeaderCannotInject(t *testing.T) {
	header := http.Header{
		"Www-Authenticate":             {"Bearer\r\nSet-Cookie: evil=1"},
		"Retry-After":                  {"30\nX-Injected: yes"},
		"X-Split":                      {"a\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"},
		"X-Name\r\nSet-Cookie: evil=2": {"v"},
		"X-Bare-Cr":                    {"one\rLocation: /evil"},
	}
	rt := rvtRejectRouter(http.StatusUnauthorized, header, "no\r\nSet-Cookie: body=1")
	addr := rvtServe(t, rt)
	defer rt.Shutdown(context.Background())

	got := rvtExchange(t, addr, rvtUpgrade(addr, "/ws"), rvtPlain(addr, "/plain"))
	r := got[0]
	if r.resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", r.resp.StatusCode)
	}
	for _, k := range []string{"Set-Cookie", "X-Injected", "Location"} {
		if v := r.fields(k); len(v) > 0 {
			t.Errorf("a value injected the field %s %q:\n%s", k, v, strings.Join(r.lines, "\n"))
		}
	}
	if v := r.fields("Www-Authenticate"); len(v) != 1 || !strings.HasPrefix(v[0], "Bearer") {
		t.Errorf("WWW-Authenticate %q, want its value with the line break made harmless", v)
	}
	if r.body != "no\r\nSet-Cookie: body=1\n" {
		t.Errorf("body %q", r.body)
	}
	if p := got[1]; p.resp.StatusCode != http.StatusOK || p.body != "plain page" {
		t.Errorf("the request behind the refusal got %d %q: a response was smuggled", p.resp.StatusCode, p.body)
	}
}

// The refusal's body is the router's plain text, as it is sent: a
// decision's Content-Encoding describes the body as much as Content-Type
// does, and labels the plain text as gzip. net/http's client, which asked
// for gzip itself, then fails to read the 401 (and so would a browser).
func TestRejectContentEncodingIsTheRouters(t *testing.T) {
	rt := rvtRejectRouter(http.StatusUnauthorized, http.Header{
		"Content-Encoding": {"gzip"},
		"Www-Authenticate": {`Bearer realm="chat"`},
	}, "token required")
	addr := rvtServe(t, rt)
	defer rt.Shutdown(context.Background())

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"},
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	if err != nil || string(body) != "token required\n" {
		t.Errorf("net/http's client read %q, %v; want the plain-text body", body, err)
	}
	raw := rvtExchange(t, addr, rvtUpgrade(addr, "/ws"))[0]
	if v := raw.fields("Content-Encoding"); len(v) > 0 {
		t.Errorf("the refusal's plain text is labelled Content-Encoding %q", v)
	}
}

// rvtSink is a slog handler keeping its records' attributes.
type rvtSink struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (s *rvtSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (s *rvtSink) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.lines = append(s.lines, m)
	s.mu.Unlock()
	return len(p), nil
}

func (s *rvtSink) find(msg, path string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l["msg"] == msg && l["path"] == path {
			return l
		}
	}
	return nil
}

// With the documented stack in front (RequestID, Log, Recover), a refusal
// carries the request id and the decision's fields; Log records the
// status the client got, as a refused upgrade at WARN; Recover neither
// interferes nor, for a decision that panics, lets anything of the
// route's reach its 500. gorilla is the client.
func TestRejectThroughRequestIDLogRecover(t *testing.T) {
	logs := &rvtSink{}
	rt := router.New(router.WithConfig(quiet))
	rt.Use(middleware.RequestID, middleware.Log(logs.logger()), middleware.Recover(slog.New(slog.DiscardHandler)))
	router.WS(rt, "/ws/{mode}", func(r *http.Request) (struct{}, router.Decision) {
		switch r.PathValue("mode") {
		case "slow":
			return struct{}{}, router.Reject(http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, "slow down")
		case "panic":
			panic("decision failed")
		case "odd":
			return struct{}{}, router.Reject(http.StatusOK, http.Header{"X-Why": {"odd"}}, "")
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}])
	base := serve(t, rt)

	c, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/slow"), http.Header{"X-Request-Id": {"rid-1"}})
	if c != nil {
		c.Close()
		t.Fatal("upgraded a rejected request")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("got %v %v, want 429", resp, err)
	}
	if resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-Request-Id") != "rid-1" {
		t.Errorf("429 header %v, want Retry-After 7 and X-Request-Id rid-1", resp.Header)
	}
	line := logs.find("request", "/ws/slow")
	if line == nil {
		t.Fatal("no Log line for the refusal")
	}
	if line["status"] != float64(429) || line["upgrade"] != "refused" || line["level"] != "WARN" || line["request_id"] != "rid-1" {
		t.Errorf("Log line %v, want status 429, upgrade refused, WARN, request_id rid-1", line)
	}

	_, resp, _ = gorilla.DefaultDialer.Dial(wsURL(base, "/ws/odd"), nil)
	if resp == nil || resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Why") != "odd" {
		t.Errorf("a Reject with 200: %v, want 403 with X-Why", resp)
	}

	_, resp, _ = gorilla.DefaultDialer.Dial(wsURL(base, "/ws/panic"), http.Header{"X-Request-Id": {"rid-2"}})
	if resp == nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a panicking decision: %v, want 500", resp)
	}
	if resp.Header.Get("X-Request-Id") != "rid-2" || resp.Header.Get("Upgrade") != "" {
		t.Errorf("500 header %v", resp.Header)
	}
	if line := logs.find("request", "/ws/panic"); line == nil || line["status"] != float64(500) || line["level"] != "ERROR" {
		t.Errorf("Log line for the recovered panic %v, want the 500 at ERROR", line)
	}
	if n := rt.Connections(); n != 0 {
		t.Errorf("%d places held after refusals", n)
	}
}

// Middleware that sends an interim 103 Early Hints before the decision
// does not stop the refusal: the client gets the 103, then the 401 with
// the decision's fields.
func TestRejectAfterEarlyHints(t *testing.T) {
	hints := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			next.ServeHTTP(w, r)
		})
	}
	rt := rvtRejectRouter(http.StatusUnauthorized, http.Header{"Www-Authenticate": {"Bearer"}}, "who?", hints)
	addr := rvtServe(t, rt)
	defer rt.Shutdown(context.Background())

	c, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rvtGuard))
	if _, err := io.WriteString(c, rvtUpgrade(addr, "/ws")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	early := rvtRead(t, br, http.MethodGet)
	if early.resp.StatusCode != http.StatusEarlyHints {
		t.Fatalf("first response %d, want 103", early.resp.StatusCode)
	}
	final := rvtRead(t, br, http.MethodGet)
	if final.resp.StatusCode != http.StatusUnauthorized || final.body != "who?\n" ||
		final.resp.Header.Get("Www-Authenticate") != "Bearer" {
		t.Errorf("final %d %q %v, want the 401 with WWW-Authenticate", final.resp.StatusCode, final.body, final.resp.Header)
	}
}

// rvtH2Fields sends an extended CONNECT for path on a raw HTTP/2
// connection and returns the response's header fields as sent, and its
// body.
func rvtH2Fields(t *testing.T, c *h2pRaw, authority, path string) ([]hpack.HeaderField, string) {
	t.Helper()
	c.hb.Reset()
	for _, f := range [][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
		{":path", path}, {":authority", authority}, {"sec-websocket-version", "13"},
	} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const id = 1
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	var fields []hpack.HeaderField
	var body bytes.Buffer
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %v", f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.HeadersFrame:
			fs, err := c.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			fields = append(fields, fs...)
			if f.StreamEnded() {
				return fields, body.String()
			}
		case *http2.DataFrame:
			body.Write(f.Data())
			if f.StreamEnded() {
				return fields, body.String()
			}
		}
	}
}

// Over HTTP/2 (x/net/http2's client) the refusal carries the decision's
// fields and middleware's, with the router's body.
func TestRejectOverHTTP2CarriesItsHeaders(t *testing.T) {
	rt := rvtRejectRouter(http.StatusUnauthorized, http.Header{
		"www-authenticate": {`Bearer realm="chat"`},
		"Retry-After":      {"5"},
		"Content-Type":     {"application/json"},
	}, "token required", rvtSetHeader("X-Request-Id", "mw"))
	h := h2pServe(t, rt, nil)
	resp, body := h2pConnect(t, h.client, h.base+"/ws", "websocket", http.Header{"Sec-Websocket-Version": {"13"}})
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusUnauthorized || body != "token required\n" {
		t.Fatalf("got HTTP/%d %d %q, want an HTTP/2 401", resp.ProtoMajor, resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Www-Authenticate": `Bearer realm="chat"`, "Retry-After": "5", "X-Request-Id": "mw",
		"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
}

// RFC 9113 §8.2.2: an HTTP/2 response carrying a connection-specific field
// (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade;
// TE is allowed in requests only) is malformed, and browsers fail such a
// stream (Chrome: ERR_HTTP2_PROTOCOL_ERROR) instead of showing the 401.
// The router's own 200 drops them all (handshake's connectionHeaders), and
// net/http drops only Connection; the refusal passes a decision's
// Keep-Alive, Proxy-Connection and TE on to the wire.
func TestRejectOverHTTP2SendsNoConnectionSpecificField(t *testing.T) {
	rt := rvtRejectRouter(http.StatusTooManyRequests, http.Header{
		"Retry-After":       {"5"},
		"Keep-Alive":        {"timeout=5"},
		"Proxy-Connection":  {"keep-alive"},
		"Te":                {"trailers"},
		"Connection":        {"close"},
		"Upgrade":           {"websocket"},
		"Transfer-Encoding": {"chunked"},
	}, "slow down")
	h := h2pServe(t, rt, nil)
	raw := h2pDialRaw(t, h.addr, h.pool)
	fields, body := rvtH2Fields(t, raw, h.addr, "/ws")
	var status string
	var bad []string
	for _, f := range fields {
		switch f.Name {
		case ":status":
			status = f.Value
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te":
			bad = append(bad, f.Name+": "+f.Value)
		}
	}
	if status != "429" || body != "slow down\n" {
		t.Fatalf("got %s %q, want 429", status, body)
	}
	if len(bad) > 0 {
		t.Errorf("the HTTP/2 refusal carries connection-specific fields %q", bad)
	}
}

// The refusal over HTTP/2 leaves the connection usable: the next stream
// on it upgrades and echoes, and rejects hold no place.
func TestRejectOverHTTP2KeepsTheConnection(t *testing.T) {
	rt := router.New(router.WithConfig(quiet))
	router.WS(rt, "/ws/{who}", func(r *http.Request) (struct{}, router.Decision) {
		if r.PathValue("who") != "ada" {
			return struct{}{}, router.Reject(http.StatusUnauthorized, http.Header{"Www-Authenticate": {"Bearer"}}, "")
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}])
	h := h2pServe(t, rt, nil)
	for range 3 {
		resp, body := h2pConnect(t, h.client, h.base+"/ws/eve", "websocket", http.Header{"Sec-Websocket-Version": {"13"}})
		if resp.StatusCode != http.StatusUnauthorized || body != "" || resp.Header.Get("Www-Authenticate") != "Bearer" {
			t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	if n := rt.Connections(); n != 0 {
		t.Errorf("%d places held after refusals", n)
	}
	s, _ := h2pDial(t, h, "/ws/ada")
	defer s.CloseNow()
	h2pEcho(t, s, "after the refusals")
	if d := h.client.Dials(); d != 1 {
		t.Errorf("%d TLS connections, want the refusals and the WebSocket on one", d)
	}
}

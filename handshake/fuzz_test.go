package handshake_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/httphead"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/memconn"
	"github.com/colibri-ws/colibri/wsconn"
)

// fuzzOrigins and fuzzSubprotocols configure the handshakes the fuzz
// targets check.
var (
	fuzzOrigins      = []string{"*.example.com", "localhost:*"}
	fuzzSubprotocols = []string{"chat", "superchat"}
)

// headerValues turns a fuzzed string into header values: "" is no header,
// and each newline starts another header line of the same name.
func headerValues(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// listElements splits comma-separated header values into their trimmed,
// non-empty elements (RFC 9110 §5.6.1), and reports whether every element
// is a plain token: only then must httphead's scanner read the lists the
// same way.
func listElements(values []string) (elems []string, clean bool) {
	clean = true
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.Trim(e, " \t")
			if e == "" {
				continue
			}
			if !isToken(e) {
				clean = false
			}
			elems = append(elems, e)
		}
	}
	return elems, clean
}

// spaceToComma turns the white space in values into commas.
func spaceToComma(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = strings.NewReplacer(" ", ",", "\t", ",").Replace(v)
	}
	return out
}

// isToken reports whether s is an RFC 9110 §5.6.2 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

func containsFold(elems []string, token string) bool {
	return slices.ContainsFunc(elems, func(e string) bool { return strings.EqualFold(e, token) })
}

// FuzzCheckRequest builds requests from arbitrary header values and holds
// the handshake checks to RFC 6455 §4.2.1 and RFC 8441 §4, written out
// again here: CheckRequest refuses exactly the requests that break a rule,
// with the status of the first rule broken; CheckOrigin lets through only
// the request's own host and the allowed patterns; SelectSubprotocol picks
// the client's first supported choice; and negotiateDeflate, given
// what ParseExtensions makes of Sec-WebSocket-Extensions, answers
// only a permessage-deflate offer, with parameters both sides of a
// connection accept, and accepts its own answer offered back.
func FuzzCheckRequest(f *testing.F) {
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	f.Add("GET", uint8(1), "websocket", "Upgrade", "13", key, "example.com", "", "chat", "permessage-deflate; client_max_window_bits", false)
	f.Add("GET", uint8(1), "WebSocket, h2c", "keep-alive, Upgrade", "13", key, "example.com", "https://example.com", "v2, superchat, chat", "permessage-deflate; server_max_window_bits=15, x-webkit-deflate-frame", true)
	f.Add("GET", uint8(1), "websocket", "Upgrade", " 13", key+" ", "app.example.com:8443", "https://app.example.com:8443", "chat\nsuperchat", "permessage-deflate;client_no_context_takeover;server_no_context_takeover", false)
	f.Add("GET", uint8(1), "websocket", "upgrade", "8", key, "example.com", "http://localhost:3000", "", "permessage-deflate; server_max_window_bits=10", false)
	f.Add("POST", uint8(1), "websocket", "Upgrade", "13", key, "example.com", "", "", "", false)
	f.Add("GET", uint8(0), "websocket", "Upgrade", "13", key, "example.com", "null", "", "", false)
	f.Add("GET", uint8(1), "websocket", "Upgrade", "13", "c2hvcnQ=", "example.com", "https://example.com.evil.net", "", "", true)
	f.Add("GET", uint8(1), "websocket", "Upgrade", "13\n13", key+"\n"+key, "EXAMPLE.com:443", "https://example.com", "", "permessage-deflate; client_max_window_bits=16", true)
	f.Add("CONNECT", uint8(2), "websocket", "", "13", "", "example.com", "https://example.com", "chat", "permessage-deflate", true)
	f.Add("CONNECT", uint8(2), "h2c", "", "13", "", "example.com", "", "", "", false)
	f.Fuzz(func(t *testing.T, method string, proto uint8, upgrade, connection, version, key, host, origin, protocols, extensions string, secure bool) {
		r := &http.Request{Method: method, Header: http.Header{}, Host: host, URL: &url.URL{Path: "/"}}
		r.ProtoMajor, r.ProtoMinor = 1, int(proto&1)
		if proto&2 != 0 {
			r.ProtoMajor, r.ProtoMinor = 2, 0
		}
		if secure {
			r.TLS = &tls.ConnectionState{}
		}
		set := func(name, v string) {
			if vs := headerValues(v); vs != nil {
				r.Header[http.CanonicalHeaderKey(name)] = vs
			}
		}
		if r.ProtoMajor == 2 {
			set(":protocol", upgrade)
		} else {
			set("Upgrade", upgrade)
			set("Connection", connection)
			set("Sec-WebSocket-Key", key)
		}
		set("Sec-WebSocket-Version", version)
		set("Origin", origin)
		set("Sec-WebSocket-Protocol", protocols)
		set("Sec-WebSocket-Extensions", extensions)

		checkRequestAgainstRFC(t, r)
		checkOriginRule(t, r)
		checkSubprotocolChoice(t, r)
		for _, takeover := range []bool{false, true} {
			checkNegotiation(t, r.Header.Values("Sec-WebSocket-Extensions"), takeover)
		}
	})
}

// checkRequestAgainstRFC compares CheckRequest with the rules of RFC 6455
// §4.2.1 (HTTP/1.1) or RFC 8441 §4 and §5 (HTTP/2), taken in the order
// CheckRequest documents.
func checkRequestAgainstRFC(t *testing.T, r *http.Request) {
	t.Helper()
	got := handshake.CheckRequest(r)
	versions := r.Header.Values("Sec-WebSocket-Version")
	// colibri trims any white space around the version and the key.
	versionOK := len(versions) == 1 && strings.TrimSpace(versions[0]) == "13"
	want, exact := 0, true
	if r.ProtoMajor == 2 {
		switch {
		case r.Method != http.MethodConnect:
			want = http.StatusMethodNotAllowed
		case !strings.EqualFold(r.Header.Get(":protocol"), "websocket"):
			want = http.StatusBadRequest
		case !versionOK:
			want = http.StatusUpgradeRequired
		}
	} else {
		// colibri, like httphead, also takes white space between tokens
		// as a separator in these two headers: "Upgrade: h2c websocket"
		// passes. Harmless, since either way the client asks to upgrade.
		upgrades, clean1 := listElements(spaceToComma(r.Header.Values("Upgrade")))
		conns, clean2 := listElements(spaceToComma(r.Header.Values("Connection")))
		exact = clean1 && clean2
		keys := r.Header.Values("Sec-WebSocket-Key")
		keyOK := false
		if len(keys) == 1 {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0]))
			keyOK = err == nil && len(b) == 16
		}
		switch {
		case r.Method != http.MethodGet:
			want = http.StatusMethodNotAllowed
		case r.ProtoMinor < 1, r.Host == "":
			want = http.StatusBadRequest
		case !containsFold(upgrades, "websocket"):
			want = http.StatusUpgradeRequired
		case !containsFold(conns, "upgrade"):
			want = http.StatusBadRequest
		case !versionOK:
			want = http.StatusUpgradeRequired
		case !keyOK:
			want = http.StatusBadRequest
		}
	}
	switch {
	case got == nil && want != 0:
		t.Fatalf("CheckRequest accepted %s %s %q, which the RFC refuses with %d", r.Method, r.Proto, r.Header, want)
	case got != nil && exact && got.Status != want:
		t.Fatalf("CheckRequest(%s HTTP/%d.%d %q) = %d %q, want %d", r.Method, r.ProtoMajor, r.ProtoMinor, r.Header, got.Status, got.Message, want)
	case got != nil && !slices.Contains([]int{400, 405, 426}, got.Status):
		t.Fatalf("CheckRequest refused with %d", got.Status)
	}
	if got != nil {
		if got.Status == http.StatusUpgradeRequired && got.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Fatalf("426 without Sec-WebSocket-Version: 13: %q", got.Header)
		}
		rec := httptest.NewRecorder()
		got.Write(rec)
		if rec.Code != got.Status {
			t.Fatalf("Error.Write sent %d, want %d", rec.Code, got.Status)
		}
	}
}

// checkOriginRule holds CheckOrigin to its rule: no Origin passes; an
// Origin passes only if it is an http or https URL whose host[:port] is
// the request's Host (default ports aside) or matches an allowed pattern.
func checkOriginRule(t *testing.T, r *http.Request) {
	t.Helper()
	got := handshake.CheckOrigin(r, fuzzOrigins)
	origin := r.Header.Get("Origin")
	if got != nil {
		if got.Status != http.StatusForbidden {
			t.Fatalf("CheckOrigin refused %q with %d", origin, got.Status)
		}
		if origin == "" {
			t.Fatalf("CheckOrigin refused a request without Origin")
		}
		return
	}
	if origin == "" {
		return
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("CheckOrigin accepted the malformed origin %q", origin)
	}
	strip := func(hostport string) string {
		hostport = strings.ToLower(hostport)
		for _, p := range []string{":80", ":443"} {
			hostport = strings.TrimSuffix(hostport, p)
		}
		return hostport
	}
	if strip(u.Host) == strip(r.Host) {
		return
	}
	for _, p := range fuzzOrigins {
		if ok, _ := path.Match(p, strings.ToLower(u.Host)); ok {
			return
		}
		if ok, _ := path.Match(p, strip(u.Host)); ok {
			return
		}
	}
	t.Fatalf("CheckOrigin let origin %q through to host %q", origin, r.Host)
}

// checkSubprotocolChoice holds SelectSubprotocol to the client's order of
// preference.
func checkSubprotocolChoice(t *testing.T, r *http.Request) {
	t.Helper()
	got := handshake.SelectSubprotocol(r, fuzzSubprotocols)
	offered, clean := listElements(r.Header.Values("Sec-WebSocket-Protocol"))
	if got != "" && (!slices.Contains(fuzzSubprotocols, got) || !slices.Contains(offered, got)) {
		t.Fatalf("SelectSubprotocol chose %q from %q", got, offered)
	}
	if !clean {
		return
	}
	want := ""
	for _, p := range offered {
		if slices.Contains(fuzzSubprotocols, p) {
			want = p
			break
		}
	}
	if got != want {
		t.Fatalf("SelectSubprotocol chose %q from %q, want %q", got, offered, want)
	}
}

// checkNegotiation runs the permessage-deflate negotiation on the offers
// in values.
func checkNegotiation(t *testing.T, values []string, takeover bool) {
	t.Helper()
	for _, v := range values {
		if _, ok := httphead.ParseOptions([]byte(v), nil); !ok {
			return // Accept refuses a malformed header before negotiating
		}
	}
	offers, err := handshake.ParseExtensions(values...)
	if err != nil {
		t.Fatalf("httphead parses %q, ParseExtensions does not: %v", values, err)
	}
	c := wsconn.Compression{Enabled: true, ContextTakeover: takeover}
	resp, ok := handshake.NegotiateDeflate(c, offers)
	if !ok {
		return
	}
	if !slices.ContainsFunc(offers, func(o wsconn.Extension) bool { return o.Name == "permessage-deflate" }) {
		t.Fatalf("negotiateDeflate answered %s to offers without permessage-deflate", resp)
	}
	if resp.Name != "permessage-deflate" {
		t.Fatalf("negotiateDeflate answered %s", resp)
	}
	for _, p := range resp.Params {
		switch p.Name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.Value != "" {
				t.Fatalf("answer %s: %s with a value", resp, p.Name)
			}
		case "server_max_window_bits":
			// The offer's own value, which must be 8 to 15 (RFC 7692
			// §7.1.2.1).
			n, err := strconv.Atoi(p.Value)
			if err != nil || n < 8 || n > 15 || strconv.Itoa(n) != p.Value {
				t.Fatalf("answer %s: server_max_window_bits=%s", resp, p.Value)
			}
			if !slices.ContainsFunc(offers, func(o wsconn.Extension) bool {
				v, ok := o.Param("server_max_window_bits")
				return o.Name == "permessage-deflate" && ok && v == p.Value
			}) {
				t.Fatalf("answer %s: a window no offer asked for", resp)
			}
		default:
			t.Fatalf("answer %s: parameter %s", resp, p.Name)
		}
	}
	if !takeover {
		for _, k := range []string{"server_no_context_takeover", "client_no_context_takeover"} {
			if _, ok := resp.Param(k); !ok {
				t.Fatalf("answer %s without %s, though context takeover is off", resp, k)
			}
		}
	}
	// What goes on the wire parses back to the answer, and both ends of
	// the connection agree to use it.
	wire := resp.String()
	back, err := handshake.ParseExtensions(wire)
	if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], resp) {
		t.Fatalf("answer %#v went on the wire as %q and came back as %#v, %v", resp, wire, back, err)
	}
	for _, client := range []bool{false, true} {
		if on, served := deflateAgreed(back, client); !on || !served {
			t.Fatalf("answer %q: deflate on %v, served %v (client %v)", wire, on, served, client)
		}
	}
	again, ok := handshake.NegotiateDeflate(c, back)
	if !ok || !reflect.DeepEqual(again, resp) {
		t.Fatalf("answer %s offered back gave %s, %v", resp, again, ok)
	}
}

// memListener hands the server ends of memconn pipes to an http.Server.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *memListener) Addr() net.Addr { return listenerAddr{} }

// listenerAddr is the address of a memListener.
type listenerAddr struct{}

func (listenerAddr) Network() string { return "mem" }
func (listenerAddr) String() string  { return "listener" }

// acceptTrial is what the server saw of one FuzzAccept request.
type acceptTrial struct {
	mu      sync.Mutex
	ran     bool
	want    *handshake.Error // what CheckRequest and CheckOrigin said
	err     error            // what Accept returned
	key     string
	offered []string // subprotocols offered
	deflate bool     // the client offered permessage-deflate
}

type trialKey struct{}

// acceptDeadline bounds one FuzzAccept request.
const acceptDeadline = 5 * time.Second

// acceptServer is an http.Server on memconn pipes whose handler accepts
// WebSockets with handshake.Accept (subprotocols, origin patterns and
// compression on) and records what it saw in each connection's
// acceptTrial.
type acceptServer struct {
	ln *memListener
}

func newAcceptServer(tb testing.TB) *acceptServer {
	ln := newMemListener()
	srv := &http.Server{
		Handler:           http.HandlerFunc(fuzzAcceptHandler),
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, trialKey{}, c.(*memconn.Conn).Tag)
		},
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	tb.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	return &acceptServer{ln: ln}
}

// try sends request on a new connection, shuts the client's sending side,
// checks everything the server answers and returns the status of its
// answer, 0 for none.
func (s *acceptServer) try(t *testing.T, request []byte) int {
	t.Helper()
	trial := &acceptTrial{}
	client, server := memconn.Pipe(0)
	defer client.Close()
	server.Tag = trial
	select {
	case s.ln.conns <- server:
	case <-time.After(acceptDeadline):
		t.Fatal("the server did not accept the connection")
	}
	_ = client.SetReadDeadline(time.Now().Add(acceptDeadline))
	if _, err := client.Write(request); err != nil {
		t.Fatal(err)
	}
	_ = client.CloseWrite()
	out, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("reading the answer: %v (got %q)", err, out)
	}
	return checkAcceptAnswer(t, trial, out)
}

// handshakeFixtures reads the requests in testdata/handshakes.
func handshakeFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	dir := filepath.Join("..", "testdata", "handshakes")
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	fixtures := make(map[string][]byte)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".http") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		fixtures[e.Name()] = b
	}
	return fixtures
}

// FuzzAccept sends arbitrary bytes as a request to an acceptServer, then
// shuts the client's sending side and reads everything the server
// answers. The server must answer within a deadline without panicking,
// with a response that parses or none at all; a request that reaches the
// handler must get exactly what CheckRequest and CheckOrigin decided:
// their refusal, or a 101 that gobwas/ws did not second-guess, with the
// right Sec-WebSocket-Accept, a subprotocol the client offered, an
// extension answer the client can use, and then well-formed frames ending
// in one CLOSE. The seeds are the handshakes in testdata/handshakes, the
// browser's followed by the frames Chromium sent, and the corpus in
// testdata/fuzz/FuzzAccept.
func FuzzAccept(f *testing.F) {
	frames, err := os.ReadFile(filepath.Join("..", "testdata", "frames", "chromium-plain.bin"))
	if err != nil {
		f.Fatal(err)
	}
	fixtures := handshakeFixtures(f)
	for _, name := range slices.Sorted(maps.Keys(fixtures)) {
		b := fixtures[name]
		f.Add(b)
		if strings.HasPrefix(name, "chromium-") {
			f.Add(append(append([]byte(nil), b...), frames...))
		}
	}
	s := newAcceptServer(f)
	f.Fuzz(func(t *testing.T, request []byte) {
		s.try(t, request)
	})
}

// TestHandshakeFixtures sends each request in testdata/handshakes through
// an acceptServer and checks the status it gets, besides everything
// FuzzAccept checks: captures from Chromium, gorilla/websocket and
// coder/websocket, and crafted requests that are unusual but valid (header
// lists, values spread over several lines) or invalid.
func TestHandshakeFixtures(t *testing.T) {
	want := map[string]int{
		"chromium-deflate.http":             101,
		"chromium-subprotocols.http":        101,
		"coder.http":                        101,
		"gorilla.http":                      403, // its Origin is another site
		"crafted-connection-list.http":      101,
		"crafted-connection-two-lines.http": 101,
		"crafted-upgrade-list.http":         101,
		"crafted-protocol-two-lines.http":   101,
		"crafted-trailing-nbsp.http":        101,
		"crafted-empty-host.http":           400,
		"crafted-extensions-malformed.http": 400,
		"crafted-http10.http":               400,
		"crafted-post.http":                 405,
		"crafted-short-key.http":            400,
		"crafted-tls-hello.http":            400, // net/http's own
		"crafted-version-8.http":            426,
	}
	s := newAcceptServer(t)
	for name, request := range handshakeFixtures(t) {
		t.Run(name, func(t *testing.T) {
			status, ok := want[name]
			if !ok {
				t.Fatalf("no expected status for %s: add it to the table", name)
			}
			if got := s.try(t, request); got != status {
				t.Fatalf("status %d, want %d", got, status)
			}
		})
	}
}

func fuzzAcceptHandler(w http.ResponseWriter, r *http.Request) {
	trial := r.Context().Value(trialKey{}).(*acceptTrial)
	want := handshake.CheckRequest(r)
	if want == nil {
		want = handshake.CheckOrigin(r, fuzzOrigins)
	}
	if want == nil {
		// With compression on, a malformed extension offer is refused.
		for _, v := range r.Header.Values("Sec-WebSocket-Extensions") {
			if _, ok := httphead.ParseOptions([]byte(v), nil); !ok {
				want = &handshake.Error{Status: http.StatusBadRequest, Message: "malformed Sec-WebSocket-Extensions header"}
			}
		}
	}
	offered, _ := listElements(r.Header.Values("Sec-WebSocket-Protocol"))
	trial.mu.Lock()
	trial.ran, trial.want, trial.key, trial.offered = true, want, r.Header.Get("Sec-WebSocket-Key"), offered
	trial.deflate = strings.Contains(strings.Join(r.Header.Values("Sec-WebSocket-Extensions"), ","), "permessage-deflate")
	trial.mu.Unlock()

	u, err := handshake.Accept(w, r, &handshake.AcceptOptions{
		Subprotocols:   fuzzSubprotocols,
		OriginPatterns: fuzzOrigins,
		Compression:    wsconn.Compression{Enabled: true},
		Timeout:        acceptDeadline,
	})
	trial.mu.Lock()
	trial.err = err
	trial.mu.Unlock()
	if err != nil {
		return
	}
	cfg := &wsconn.Config{Logger: quietLogger, PingInterval: -1, CloseTimeout: time.Minute, Compression: wsconn.Compression{Enabled: true}}
	_ = wsconn.Serve(context.Background(), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil
	}, cfg)
}

// checkAcceptAnswer checks the server's answer to one request and
// returns its status, 0 for none.
func checkAcceptAnswer(t *testing.T, trial *acceptTrial, out []byte) int {
	t.Helper()
	trial.mu.Lock()
	defer trial.mu.Unlock()
	if len(out) == 0 {
		if trial.ran {
			t.Fatalf("the handler ran (CheckRequest, CheckOrigin: %v; Accept: %v) but the client got no answer", trial.want, trial.err)
		}
		return 0 // an incomplete request: net/http closes without a word
	}
	br := bufio.NewReader(bytes.NewReader(out))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the answer does not parse: %v\n%q", err, out)
	}
	if !trial.ran {
		if resp.StatusCode < 400 {
			t.Fatalf("net/http answered %d to a request the handler never saw", resp.StatusCode)
		}
		return resp.StatusCode
	}
	if trial.want != nil {
		he, ok := errors.AsType[*handshake.Error](trial.err)
		if !ok || he.Status != trial.want.Status || resp.StatusCode != trial.want.Status {
			t.Fatalf("the checks refused with %d %q, but Accept returned %v and the client got %d", trial.want.Status, trial.want.Message, trial.err, resp.StatusCode)
		}
		return resp.StatusCode
	}
	if trial.err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("the checks passed but Accept returned %v and the client got %d %q", trial.err, resp.StatusCode, body)
	}
	sum := sha1.Sum([]byte(strings.TrimSpace(trial.key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q for key %q", got, want, trial.key)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Fatalf("101 without Upgrade: websocket and Connection: Upgrade: %q", resp.Header)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" && (!slices.Contains(fuzzSubprotocols, p) || !slices.Contains(trial.offered, p)) {
		t.Fatalf("subprotocol %q chosen from %q", p, trial.offered)
	}
	exts, err := handshake.ParseExtensions(resp.Header.Values("Sec-WebSocket-Extensions")...)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	deflate, served := deflateAgreed(exts, true)
	if !served || len(exts) > 1 || (deflate && !trial.deflate) {
		t.Fatalf("extension answer %v: served %v (offered permessage-deflate: %v)", exts, served, trial.deflate)
	}
	rest, _ := io.ReadAll(br)
	checkServerFrames(t, rest, deflate)
	return resp.StatusCode
}

var quietLogger = slog.New(slog.DiscardHandler)

// deflateAgreed reports whether wsconn serves a connection whose
// negotiated extensions are exts, on the client's side or the server's
// (a connection it cannot use fails before its handler runs), and whether
// permessage-deflate is on for it.
func deflateAgreed(exts []wsconn.Extension, client bool) (on, served bool) {
	local, peer := memconn.Pipe(0)
	_ = peer.Close()
	cfg := &wsconn.Config{Logger: quietLogger, PingInterval: -1, Compression: wsconn.Compression{Enabled: true}}
	_ = wsconn.Serve(context.Background(), wsconn.Upgraded{Conn: local, Extensions: exts, Client: client}, struct{}{},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			served = true
			return nil
		}, cfg)
	on = served && slices.ContainsFunc(exts, func(e wsconn.Extension) bool { return e.Name == "permessage-deflate" })
	return on, served
}

// checkServerFrames parses everything the server sent after its 101 and
// checks it: well-formed frames (RSV1 only on the first frame of a
// message, and only with permessage-deflate), whole messages, and exactly
// one CLOSE, last.
func checkServerFrames(t *testing.T, out []byte, deflate bool) {
	t.Helper()
	var allowedRsv byte
	if deflate {
		allowedRsv = frames.Rsv1
	}
	closes, inMessage := 0, false
	for len(out) > 0 {
		if len(out) < 2 || len(out) < frames.HeaderSize(out[0], out[1]) {
			t.Fatalf("the server's bytes end inside a frame header: % x", out)
		}
		hn := frames.HeaderSize(out[0], out[1])
		h, err := frames.ParseHeader(out[:hn])
		if err != nil {
			t.Fatalf("server frame header % x: %v", out[:hn], err)
		}
		if err := h.Check(false, allowedRsv); err != nil {
			t.Fatalf("server frame %+v breaks the protocol: %v", h, err)
		}
		if int64(len(out)-hn) < h.Length {
			t.Fatalf("the server's bytes end inside a frame's payload")
		}
		p := out[hn : hn+int(h.Length)]
		out = out[hn+int(h.Length):]
		if closes > 0 {
			t.Fatalf("the server sent a %v frame after its CLOSE", h.Op)
		}
		switch h.Op {
		case frames.OpClose:
			closes++
			// An empty payload (1005) is allowed: it echoes an empty CLOSE.
			if code, _, err := frames.ParseClose(p); err != nil {
				t.Fatalf("the server's CLOSE payload % x: code %v, %v", p, code, err)
			}
		case frames.OpPing, frames.OpPong:
		case frames.OpContinuation:
			if !inMessage {
				t.Fatalf("the server sent a continuation frame outside a message")
			}
			if h.Rsv != 0 {
				t.Fatalf("RSV bits on a continuation frame")
			}
		default:
			if inMessage {
				t.Fatalf("the server began a %v message inside another", h.Op)
			}
			inMessage = true
		}
		if !h.Op.IsControl() && h.Fin {
			inMessage = false
		}
	}
	if closes != 1 {
		t.Fatalf("the server sent %d CLOSE frames, want 1", closes)
	}
}

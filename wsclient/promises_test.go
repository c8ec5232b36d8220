package wsclient_test

// Each test here checks one promise that the documentation of package
// wsclient makes (docs/client.md, the package's doc comments), through real
// loopback sockets. The server side is gorilla/websocket behind net/http, or
// a raw listener that writes the bytes a test needs; never colibri's own
// server code.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// ---- helpers ----

// rawFrame is a frame a raw server read.
type rawFrame struct {
	h frames.Header
	p []byte
}

// closeFrame1000 is an unmasked CLOSE frame with code 1000, as a server sends it.
var closeFrame1000 = []byte{0x88, 0x02, 0x03, 0xe8}

// silentServer accepts TCP connections on 127.0.0.1 and never writes a
// byte; each connection stays open until the client closes it.
func silentServer(t *testing.T) string {
	t.Helper()
	return tcpServer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// dialTo is a NetDial that reaches addr whatever address it is asked for.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// after waits for a value from ch, failing the test after a generous
// guard.
func after[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// ---- Run and the handler ----

// docs/client.md: "the close code chosen by what the handler returns"
// (via handlers.md); wsclient/run.go (Run doc): "nil closes with 1000, a
// *wsconn.CloseError with its code, any other error with 1011", and
// "Run returns ... the handler's error".
func TestPromiseHandlerErrorCloses1011(t *testing.T) {
	p := gorillaPeer(t, false)
	boom := errors.New("boom")
	err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		return boom
	}, options())
	if !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the handler's error", err)
	}
	got := after(t, p.closes, "the server to receive a close")
	if got.code != int(frames.CloseInternalError) {
		t.Fatalf("server received close %d %q, want 1011", got.code, got.reason)
	}
}

// doc.go (Run example): "return in.Err() // nil when the server closed
// cleanly"; wsconn.CloseError: Inbound.Err returns one only "when the peer
// closed with a code other than 1000, 1001 or 1005". A handler that passes
// in.Err() on then makes Run return nil.
func TestPromiseServerCleanCloseIsNil(t *testing.T) {
	p := gorillaPeer(t, false)
	for _, code := range []int{1000, 1001} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				if err := out.WriteText(ctx, fmt.Sprintf("close:%d:bye", code)); err != nil {
					return err
				}
				for m := range in.Messages(0) {
					return fmt.Errorf("unexpected message %q", m.Payload)
				}
				return in.Err()
			}, options())
			if err != nil {
				t.Fatalf("Run returned %v after the server closed with %d", err, code)
			}
		})
	}
}

// docs/client.md "What the client checks and sends": "A masked frame from
// the server, like any other protocol violation, closes the connection
// with 1002 and ends the inbound loop with a *wsconn.CloseError whose Err
// is the *frames.Violation"; and "Run returns ... the reason the
// connection failed (a *wsconn.CloseError for a protocol violation by the
// server, for example)".
func TestPromiseProtocolViolationCloses1002(t *testing.T) {
	sent := make(chan frames.CloseCode, 1)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, ""))
		// FIN | RSV1 | text "hi": RSV1 with no extension negotiated.
		conn.Write([]byte{0xC1, 0x02, 'h', 'i'})
		for {
			h, p, err := pReadFrame(br)
			if err != nil {
				return
			}
			if h.Op == frames.OpClose {
				code, _, _ := frames.ParseClose(p)
				sent <- code
				return
			}
		}
	})
	var inErr error
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for range in.Messages(0) {
		}
		inErr = in.Err()
		return nil
	}, options())
	for name, e := range map[string]error{"in.Err()": inErr, "Run": err} {
		var ce *wsconn.CloseError
		var v *frames.Violation
		if !errors.As(e, &ce) || ce.Code != frames.CloseProtocolError || !errors.As(ce.Err, &v) {
			t.Errorf("%s = %v (%T), want a *wsconn.CloseError 1002 whose Err is a *frames.Violation", name, e, e)
		}
	}
	if code := after(t, sent, "the client's CLOSE"); code != frames.CloseProtocolError {
		t.Fatalf("client closed with %d, want 1002", code)
	}
}

// docs/client.md "What the client checks and sends": "On close, once the
// server's CLOSE has come, the client waits, up to Config.CloseTimeout,
// for the server to close TCP first, as RFC 6455 §7.1.1 asks of clients,
// without sending its own FIN first."
func TestPromiseClientWaitsForServerToCloseTCP(t *testing.T) {
	for _, serverCloses := range []bool{true, false} {
		t.Run(fmt.Sprintf("server closes %v", serverCloses), func(t *testing.T) {
			runDone := make(chan struct{})
			type report struct {
				sentMore      error // the server's read after its CLOSE: a timeout, as the client sends nothing, not even its FIN
				returnedEarly bool  // Run returned while the server held TCP open
			}
			reports := make(chan report, 1)
			addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(conn, switchAnswer(req, ""))
				var r report
				defer func() { reports <- r }()
				for {
					h, _, err := pReadFrame(br)
					if err != nil {
						return
					}
					if h.Op == frames.OpClose {
						break
					}
				}
				conn.Write(closeFrame1000)
				_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				_, r.sentMore = br.ReadByte()
				select {
				case <-runDone:
					r.returnedEarly = true
					return
				default:
				}
				if !serverCloses {
					// Hold TCP open until the client gives up.
					select {
					case <-runDone:
					case <-time.After(10 * time.Second):
					}
				}
			})
			o := options()
			o.Config.CloseTimeout = 10 * time.Second
			if !serverCloses {
				o.Config.CloseTimeout = 500 * time.Millisecond
			}
			start := time.Now()
			err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				return nil
			}, o)
			took := time.Since(start)
			close(runDone)
			if err != nil {
				t.Fatal(err)
			}
			r := after(t, reports, "the server's report")
			if ne, ok := errors.AsType[net.Error](r.sentMore); !ok || !ne.Timeout() {
				t.Errorf("after the closing handshake the server read %v; want nothing (no FIN) before it closed TCP", r.sentMore)
			}
			if r.returnedEarly {
				t.Error("Run returned, closing TCP, before the server closed it")
			}
			if serverCloses && took > 5*time.Second {
				t.Errorf("Run took %v after the server closed TCP", took)
			}
			if !serverCloses && (took < 500*time.Millisecond || took > 5*time.Second) {
				t.Errorf("Run took %v against a server that never closes TCP, want about CloseTimeout (500ms)", took)
			}
		})
	}
}

// docs/client.md (Run): "Everything Handlers says holds on the client
// side too: ... PING answered whether or not the handler reads"; doc.go:
// "control frames are answered whether or not it reads".
func TestPromisePingAnsweredWithoutReading(t *testing.T) {
	pongs := make(chan string, 1)
	srv := pServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := (&gorilla.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(s string) error {
			pongs <- s
			return nil
		})
		if err := c.WriteControl(gorilla.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second)); err != nil {
			return
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}, nil)
	err := wsclient.Run(testCtx(t), wsURL(srv), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		// Never reads.
		select {
		case p := <-pongs:
			if p != "are you there" {
				return fmt.Errorf("PONG carried %q", p)
			}
			return nil
		case <-ctx.Done():
			return errors.New("the server never got its PONG")
		}
	}, options())
	if err != nil {
		t.Fatal(err)
	}
}

// docs/client.md (Run): "sibling tasks with s.Go" hold on the client side;
// wsconn: "the connection is not torn down before they have returned".
func TestPromiseSiblingTasksFinishBeforeRunReturns(t *testing.T) {
	p := gorillaPeer(t, false)
	var siblingDone atomic.Bool
	err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if err := s.Go(func(ctx context.Context) error {
			if err := out.WriteText(ctx, "from sibling"); err != nil {
				return err
			}
			<-ctx.Done()
			siblingDone.Store(true)
			return nil
		}); err != nil {
			return err
		}
		for m := range in.Messages(0) {
			if m.Text() != "from sibling" {
				return fmt.Errorf("echo %q", m.Payload)
			}
			return nil
		}
		return in.Err()
	}, options())
	if err != nil {
		t.Fatal(err)
	}
	if !siblingDone.Load() {
		t.Fatal("Run returned before the sibling task")
	}
}

// docs/client.md "Run": "Cancelling it starts the close: colibri sends
// 1001 Going Away after the message being written and cancels the
// handler's context; the handler returns and the connection closes."
// docs/client.md "Dial": "With either [wsconn.Serve or wsconn.Start], the
// connection closes with 1001 when the context passed to it ends." The
// handler here waits for its context and returns what it says, as a
// handler that only writes would. Twenty connections each, since the code
// must not depend on who notices the cancellation first.
func TestPromiseContextEndCloses1001(t *testing.T) {
	p := gorillaPeer(t, false)
	for _, how := range []string{"Run", "Serve", "Start"} {
		t.Run(how, func(t *testing.T) {
			codes := map[int]int{}
			for range 20 {
				ctx, cancel := context.WithCancel(testCtx(t))
				started := make(chan struct{})
				go func() {
					<-started
					cancel()
				}()
				handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
					close(started)
					<-ctx.Done()
					return ctx.Err()
				}
				cfg := &wsconn.Config{Logger: quiet}
				switch how {
				case "Run":
					_ = wsclient.Run(ctx, p.url, handler, options())
				default:
					u, resp, err := wsclient.Dial(testCtx(t), p.url, options())
					if err != nil {
						cancel()
						t.Fatal(err)
					}
					if how == "Serve" {
						_ = wsconn.Serve(ctx, u, resp, handler, cfg)
					} else if err := wsconn.Start(ctx, u, resp, handler, cfg); err != nil {
						cancel()
						t.Fatal(err)
					}
				}
				got := after(t, p.closes, "the server to receive a close")
				codes[got.code]++
			}
			if codes[int(frames.CloseGoingAway)] != 20 {
				t.Fatalf("close codes the server received over 20 connections: %v, want 1001 every time", codes)
			}
		})
	}
}

// docs/client.md "Options": "*wsclient.Options may be nil; every zero field
// means its default"; dial.go: "The zero value, and a nil *Options, mean
// the documented defaults."
func TestPromiseNilOptions(t *testing.T) {
	srv := pServer(t, gorillaEcho, nil)
	err := wsclient.Run(testCtx(t), wsURL(srv), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		got, err := roundTrip(ctx, in, out, messages.Text("nil options"))
		if err == nil && got.Text() != "nil options" {
			err = fmt.Errorf("echo %q", got.Payload)
		}
		return err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, resp, err := wsclient.Dial(testCtx(t), wsURL(srv), &wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u.Conn.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("response %d", resp.StatusCode)
	}
}

// dial.go (Dial doc): "ctx bounds the handshake only, as does
// Options.HandshakeTimeout"; (HandshakeTimeout doc): "It does not bound the
// connection that follows"; "its Client field is set"; "The *http.Response
// is the server's 101 answer ...; its Body is empty." docs/client.md: "The
// Upgraded has Client set".
func TestPromiseDialContextBoundsHandshakeOnly(t *testing.T) {
	srv := pServer(t, gorillaEcho, nil)
	o := options()
	o.HandshakeTimeout = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	u, resp, err := wsclient.Dial(ctx, wsURL(srv), o)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if !u.Client {
		t.Error("Upgraded.Client is false")
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("response %d", resp.StatusCode)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 0 {
		t.Errorf("the 101's body read %q, %v; want empty", b, err)
	}
	// Let the handshake timeout pass: it must not touch the connection.
	<-time.After(4 * o.HandshakeTimeout)
	err = wsconn.Serve(testCtx(t), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		got, err := roundTrip(ctx, in, out, messages.Text("later"))
		if err == nil && got.Text() != "later" {
			err = fmt.Errorf("echo %q", got.Payload)
		}
		return err
	}, o.Config)
	if err != nil {
		t.Fatalf("serving after the dial's context and timeout ended: %v", err)
	}
}

// docs/client.md "Options": Header: "The handshake's own headers are always
// set by Dial. User information in the URL ... becomes Basic
// Authorization unless Header has one." dial.go: Upgrade, Connection,
// Sec-WebSocket-Key, -Version, -Protocol and -Extensions "are set by Dial
// and replace any given here". "What the client checks and sends": "a
// random 16-byte Sec-WebSocket-Key".
func TestPromiseHandshakeHeadersAlwaysSetByDial(t *testing.T) {
	reqs := make(chan http.Header, 2)
	srv := pServer(t, func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.Header.Clone()
		gorillaEcho(w, r)
	}, nil)
	o := options()
	// Lower-case keys on purpose: a map literal does not canonicalise them.
	o.Header = http.Header{
		"upgrade":                  {"h2c"},
		"connection":               {"close"},
		"sec-websocket-key":        {"AAAAAAAAAAAAAAAAAAAAAA=="},
		"sec-websocket-version":    {"8"},
		"sec-websocket-protocol":   {"evil"},
		"sec-websocket-extensions": {"evil"},
		"authorization":            {"Bearer tok"},
	}
	url := "ws://ann:pw@" + strings.TrimPrefix(srv.URL, "http://") + "/"
	var keys []string
	for range 2 {
		u, _, err := wsclient.Dial(testCtx(t), url, o)
		if err != nil {
			t.Fatal(err)
		}
		u.Conn.Close()
		h := after(t, reqs, "the request")
		for k, want := range map[string]string{
			"Upgrade":                  "websocket",
			"Connection":               "Upgrade",
			"Sec-Websocket-Version":    "13",
			"Sec-Websocket-Protocol":   "",
			"Sec-Websocket-Extensions": "",
			"Authorization":            "Bearer tok",
		} {
			if got := strings.Join(h.Values(k), ","); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		key := h.Values("Sec-Websocket-Key")
		if len(key) != 1 || key[0] == "AAAAAAAAAAAAAAAAAAAAAA==" {
			t.Errorf("Sec-WebSocket-Key %q", key)
		} else if b, err := base64.StdEncoding.DecodeString(key[0]); err != nil || len(b) != 16 {
			t.Errorf("Sec-WebSocket-Key %q is not 16 bytes in base64", key[0])
		}
		keys = append(keys, strings.Join(key, ","))
	}
	if keys[0] == keys[1] {
		t.Errorf("two dials sent the same key %q", keys[0])
	}
}

// dial.go (Options doc): "Options may be shared by many dials."
func TestPromiseOptionsSharedByManyDials(t *testing.T) {
	p := gorillaPeer(t, false)
	o := options()
	o.Header = http.Header{"X-Token": {"t"}}
	o.Subprotocols = []string{"a", "b"}
	o.Extensions = []wsconn.Extension{{Name: "x-ext", Params: []wsconn.ExtensionParam{{Name: "level", Value: "2"}}}}
	o.Config.Compression.Enabled = true
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			errs <- wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				m := fmt.Sprintf("dial %d", i)
				got, err := roundTrip(ctx, in, out, messages.Text(m))
				if err == nil && got.Text() != m {
					err = fmt.Errorf("echo %q", got.Payload)
				}
				return err
			}, o)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for range 8 {
		after(t, p.closes, "the server's close")
	}
}

// ---- URLs, NetDial, Proxy request ----

// docs/client.md: "URLs may be ws://, wss://, or http:// and https:// taken
// as their WebSocket counterparts." dial.go (NetDial): "network is "tcp"
// and addr is host:port"; (Proxy): "The request it receives has the scheme
// "http" for ws:// URLs and "https" for wss:// URLs".
func TestPromiseURLSchemesNetDialAndProxyRequest(t *testing.T) {
	plain := pServer(t, gorillaEcho, nil)
	secure := pServer(t, gorillaEcho, &tls.Config{})
	type dialed struct{ network, addr string }
	dials := make(chan dialed, 1)
	schemes := make(chan string, 1)
	o := options()
	o.Proxy = func(r *http.Request) (*url.URL, error) {
		schemes <- r.URL.Scheme
		return nil, nil
	}
	o.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials <- dialed{network, addr}
		to := map[string]string{
			"echo.wsclient.test:80":  plain.Listener.Addr().String(),
			"echo.wsclient.test:443": secure.Listener.Addr().String(),
		}[addr]
		if to == "" {
			return nil, fmt.Errorf("unexpected address %s", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
	o.TLSConfig = &tls.Config{RootCAs: certPool(secure), ServerName: "example.com"}
	for _, tc := range []struct{ url, scheme, addr string }{
		{"ws://echo.wsclient.test/", "http", "echo.wsclient.test:80"},
		{"wss://echo.wsclient.test/", "https", "echo.wsclient.test:443"},
		{"http://echo.wsclient.test/", "http", "echo.wsclient.test:80"},
		{"https://echo.wsclient.test/", "https", "echo.wsclient.test:443"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if err := wsclient.Run(testCtx(t), tc.url, echoText, o); err != nil {
				t.Fatal(err)
			}
			if s := after(t, schemes, "the proxy request"); s != tc.scheme {
				t.Errorf("Proxy saw scheme %q, want %q", s, tc.scheme)
			}
			if d := after(t, dials, "NetDial"); d.network != "tcp" || d.addr != tc.addr {
				t.Errorf("NetDial(%q, %q), want tcp %s", d.network, d.addr, tc.addr)
			}
		})
	}
}

// ---- TLS ----

// docs/client.md "TLS": "Dial clones Options.TLSConfig ... sets ServerName
// to the URL's host name when it is empty ... sets NextProtos to http/1.1";
// "Certificate errors come back wrapped"; "Errors": "DNS, TCP, TLS failures
// | wrapped as wsclient: dial <url>: …, with the cause reachable by
// errors.As".
func TestPromiseTLSConfigClonedServerNameALPN(t *testing.T) {
	type hello struct {
		serverName string
		protos     []string
	}
	hellos := make(chan hello, 4)
	srv := pServer(t, gorillaEcho, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hellos <- hello{h.ServerName, slices.Clone(h.SupportedProtos)}
		return nil, nil
	}})
	addr := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	shared := &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}
	o := options()
	o.TLSConfig = shared
	o.NetDial = dialTo(addr)
	if err := wsclient.Run(testCtx(t), "wss://example.com:"+port+"/", echoText, o); err != nil {
		t.Fatal(err)
	}
	h := after(t, hellos, "the ClientHello")
	if h.serverName != "example.com" || !slices.Equal(h.protos, []string{"http/1.1"}) {
		t.Errorf("ClientHello: server name %q, ALPN %q; want example.com, [http/1.1]", h.serverName, h.protos)
	}
	if shared.ServerName != "" || !slices.Equal(shared.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("the caller's config was modified: ServerName %q, NextProtos %q", shared.ServerName, shared.NextProtos)
	}

	t.Run("explicit server name kept", func(t *testing.T) {
		o := options()
		o.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "example.com"}
		u, _, err := wsclient.Dial(testCtx(t), "wss://"+addr+"/", o)
		if err != nil {
			t.Fatal(err)
		}
		u.Conn.Close()
		if h := after(t, hellos, "the ClientHello"); h.serverName != "example.com" {
			t.Errorf("server name %q, want example.com", h.serverName)
		}
	})

	t.Run("certificate error wrapped", func(t *testing.T) {
		_, _, err := wsclient.Dial(testCtx(t), "wss://"+addr+"/x", options())
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) || errors.Is(err, wsclient.ErrHandshake) ||
			!strings.HasPrefix(err.Error(), "wsclient: dial wss://"+addr+"/x: ") {
			t.Fatalf("got %v", err)
		}
	})
}

// ---- timeouts ----

// docs/client.md "Options": HandshakeTimeout "30 s (DefaultHandshakeTimeout)
// | bounds dialing, the proxy tunnel, TLS and the upgrade together;
// negative: only ctx". NetDial's context carries that bound.
func TestPromiseHandshakeTimeoutDefaultAndNegative(t *testing.T) {
	if wsclient.DefaultHandshakeTimeout != 30*time.Second {
		t.Fatalf("DefaultHandshakeTimeout = %v", wsclient.DefaultHandshakeTimeout)
	}
	deadlines := make(chan time.Time, 1)
	stop := errors.New("stop here")
	o := options()
	o.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dl, _ := ctx.Deadline()
		deadlines <- dl
		return nil, stop
	}
	start := time.Now()
	_, _, err := wsclient.Dial(context.Background(), "ws://127.0.0.1:1/", o)
	end := time.Now()
	if !errors.Is(err, stop) {
		t.Fatalf("got %v", err)
	}
	dl := after(t, deadlines, "NetDial")
	if dl.IsZero() || dl.Sub(start) < 30*time.Second || dl.Sub(end) > 30*time.Second {
		t.Errorf("default handshake deadline %v after the start, want 30s", dl.Sub(start))
	}

	o.HandshakeTimeout = -1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, err = wsclient.Dial(ctx, "ws://127.0.0.1:1/", o)
	if !errors.Is(err, stop) {
		t.Fatalf("got %v", err)
	}
	if dl := after(t, deadlines, "NetDial"); !dl.IsZero() {
		t.Errorf("negative HandshakeTimeout: the dial has a deadline %v from now", time.Until(dl))
	}
}

// docs/client.md "Options": HandshakeTimeout "bounds dialing, the proxy
// tunnel, TLS and the upgrade"; "Errors": "the handshake took longer than
// HandshakeTimeout | matches context.DeadlineExceeded; the text says
// "handshake took longer than …""; errors.go: "Network failures and
// timeouts are not HandshakeErrors." (The upgrade phase is covered by
// TestDialHandshakeTimeout.)
func TestPromiseHandshakeTimeoutBoundsEveryPhase(t *testing.T) {
	silent := silentServer(t)
	// A proxy that reads the CONNECT request and never answers.
	mute := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.Copy(io.Discard, br)
	})
	// A refusal whose chunked body never ends, from a server and from a
	// proxy: the timeout, not a HandshakeError with half a body.
	endless := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		io.Copy(io.Discard, br)
	})
	for _, tc := range []struct {
		name string
		url  string
		opts func(o *wsclient.Options)
	}{
		{"dialing", "ws://echo.wsclient.test/", func(o *wsclient.Options) {
			o.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				<-ctx.Done()
				return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
			}
		}},
		{"proxy tunnel", "ws://echo.wsclient.test/", func(o *wsclient.Options) {
			o.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: mute})
		}},
		{"TLS", "wss://" + silent + "/", nil},
		{"refusal body", "ws://" + endless + "/", nil},
		{"proxy refusal body", "ws://echo.wsclient.test/", func(o *wsclient.Options) {
			o.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: endless})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options()
			o.HandshakeTimeout = 100 * time.Millisecond
			if tc.opts != nil {
				tc.opts(o)
			}
			start := time.Now()
			_, _, err := wsclient.Dial(testCtx(t), tc.url, o)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handshake took longer than 100ms") {
				t.Fatalf("got %v, want the handshake timeout", err)
			}
			if errors.Is(err, wsclient.ErrHandshake) || !strings.HasPrefix(err.Error(), "wsclient: dial ") {
				t.Fatalf("got %v, want a wrapped network error, not a HandshakeError", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("the timeout took %v", d)
			}
		})
	}
}

// ---- refusals and bad answers ----

// docs/client.md "Options": "Redirects are not followed: a 3xx answer is a
// HandshakeError with the Location header in it." dial.go (Dial doc) says
// the same.
func TestPromiseRedirectNotFollowed(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		gorillaEcho(w, r)
	})
	var code atomic.Int32
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new", int(code.Load()))
	})
	srv := pServer(t, mux.ServeHTTP, nil)
	for _, c := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			code.Store(int32(c))
			_, resp, err := wsclient.Dial(testCtx(t), wsURL(srv)+"/old", options())
			var he *wsclient.HandshakeError
			if !errors.As(err, &he) || !errors.Is(err, wsclient.ErrHandshake) || he.StatusCode != c || he.Header.Get("Location") != "/new" {
				t.Fatalf("got %v, want a HandshakeError %d with Location /new", err, c)
			}
			if resp == nil || resp.StatusCode != c {
				t.Fatalf("response %v", resp)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

// docs/client.md: "Run returns the dial error"; "The error's text carries
// the status and the first line of the body".
func TestPromiseRunReturnsRefusal(t *testing.T) {
	srv := pServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "first line\nsecond line", http.StatusForbidden)
	}, nil)
	called := false
	err := wsclient.Run(testCtx(t), wsURL(srv), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		called = true
		return nil
	}, options())
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Fatalf("Run returned %v, want the HandshakeError", err)
	}
	if called {
		t.Fatal("the handler ran after a refused handshake")
	}
	if got := err.Error(); got != "wsclient: handshake refused: 403 Forbidden: first line" {
		t.Fatalf("error text %q", got)
	}
}

// doc.go: "Network failures and timeouts are wrapped with the URL";
// errors.go: a HandshakeError needs "an HTTP answer". A server that answers
// with something that is not HTTP, or hangs up, gives a wrapped error, at
// once.
func TestPromiseNonHTTPAnswerIsWrappedDialError(t *testing.T) {
	for _, answer := range []string{"SSH-2.0-OpenSSH_9.6\r\n", ""} {
		t.Run(fmt.Sprintf("%q", answer), func(t *testing.T) {
			addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(conn, answer)
			})
			start := time.Now()
			_, _, err := wsclient.Dial(testCtx(t), "ws://"+addr+"/p", options())
			if err == nil || errors.Is(err, wsclient.ErrHandshake) || !strings.HasPrefix(err.Error(), "wsclient: dial ws://"+addr+"/p: ") {
				t.Fatalf("got %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

// doc.go: "Upgrade and Connection must name the upgrade" (token lists, case
// insensitive, RFC 6455 §4.1): an answer with "Connection: keep-alive,
// Upgrade" and "Upgrade: WebSocket" is valid.
func TestPromiseUpgradeTokenListsAccepted(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept(req))
		io.Copy(io.Discard, br)
	})
	u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, options())
	if err != nil {
		t.Fatal(err)
	}
	u.Conn.Close()
}

// ---- proxies ----

// docs/client.md "Proxies": "Other proxy schemes (https://, socks5://) are
// refused with an error before anything is dialed." (socks5 is covered by
// TestProxyUnsupportedScheme.)
func TestPromiseProxyHTTPSSchemeRefused(t *testing.T) {
	o := options()
	o.Proxy = http.ProxyURL(&url.URL{Scheme: "https", Host: "127.0.0.1:1"})
	dialed := false
	o.NetDial = func(context.Context, string, string) (net.Conn, error) {
		dialed = true
		return nil, errors.New("must not dial")
	}
	_, _, err := wsclient.Dial(testCtx(t), "ws://127.0.0.1:1/", o)
	if err == nil || dialed || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("https proxy: %v (dialed %v)", err, dialed)
	}
}

// docs/client.md "Proxies": by default the proxy comes from the
// environment: "HTTP_PROXY for ws:// URLs, ... NO_PROXY for exceptions (the
// lower-case names work too)"; "requests to localhost and loopback
// addresses never go through a proxy"; "the environment is read once per
// process, at the first use; changing the variables later has no effect";
// "a function returning nil, nil for none at all". net/http reads the
// environment once per process, so the test runs in a child process.
func TestPromiseProxyEnvironmentRules(t *testing.T) {
	const child = "WSCLIENT_PROMISE_PROXY_CHILD"
	if os.Getenv(child) == "" {
		cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^TestPromiseProxyEnvironmentRules$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the test in a child process: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestPromiseProxyEnvironmentRules") {
			t.Fatalf("the child process did not run the test:\n%s", out)
		}
		return
	}

	srv := pServer(t, gorillaEcho, nil)
	peerAddr := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(peerAddr)
	proxy := startProxy(t, "", map[string]string{"via.wsclient.test:80": peerAddr})
	// Only the lower-case names are set.
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD", "https_proxy"} {
		t.Setenv(k, "")
	}
	t.Setenv("http_proxy", proxy.url.String())
	t.Setenv("no_proxy", "direct.wsclient.test")

	var mu sync.Mutex
	var direct []string // addresses dialed without the proxy
	o := &wsclient.Options{Config: &wsconn.Config{Logger: quiet}}
	o.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if addr == proxy.url.Host {
			return d.DialContext(ctx, network, addr)
		}
		mu.Lock()
		direct = append(direct, addr)
		mu.Unlock()
		host, _, _ := net.SplitHostPort(addr)
		switch host {
		case "127.0.0.1", "localhost", "direct.wsclient.test", "via.wsclient.test":
			return d.DialContext(ctx, network, peerAddr)
		}
		return nil, fmt.Errorf("unexpected address %s", addr)
	}
	check := func(o *wsclient.Options, u string, wantDirect string, wantTunnels int) {
		t.Helper()
		mu.Lock()
		direct = nil
		mu.Unlock()
		if err := wsclient.Run(testCtx(t), u, echoText, o); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		mu.Lock()
		got := slices.Clone(direct)
		mu.Unlock()
		if wantDirect == "" && len(got) != 0 || wantDirect != "" && !slices.Equal(got, []string{wantDirect}) {
			t.Errorf("%s: dialed %q directly, want %q", u, got, wantDirect)
		}
		if n := len(proxy.tunnels()); n != wantTunnels {
			t.Errorf("%s: the proxy opened %d tunnels in all, want %d", u, n, wantTunnels)
		}
	}
	check(o, "ws://127.0.0.1:"+port+"/", "127.0.0.1:"+port, 0)
	check(o, "ws://localhost:"+port+"/", "localhost:"+port, 0)
	check(o, "ws://direct.wsclient.test/", "direct.wsclient.test:80", 0)
	check(o, "ws://via.wsclient.test/", "", 1)

	// Read once: new values change nothing.
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	t.Setenv("no_proxy", "")
	check(o, "ws://via.wsclient.test/", "", 2)
	check(o, "ws://direct.wsclient.test/", "direct.wsclient.test:80", 2)

	// A Proxy that returns nil, nil: no proxy, whatever the environment.
	none := *o
	none.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	check(&none, "ws://via.wsclient.test/", "via.wsclient.test:80", 2)
}

// ---- extensions and compression ----

// docs/client.md "Options": Extensions are "offered in
// Sec-WebSocket-Extensions, before permessage-deflate"; "Extensions and
// compression": "without ContextTakeover it asks for no context takeover in
// both directions"; "A permessage-deflate offer of your own there replaces
// the one Config.Compression makes".
func TestPromiseExtensionOffers(t *testing.T) {
	deflate := wsconn.Extension{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{{Name: "client_max_window_bits"}}}
	for _, tc := range []struct {
		name  string
		exts  []wsconn.Extension
		comp  wsconn.Compression
		offer string
	}{
		{"others first", []wsconn.Extension{{Name: "x-ext", Params: []wsconn.ExtensionParam{{Name: "level", Value: "2"}}}},
			wsconn.Compression{Enabled: true},
			"x-ext; level=2, permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		{"context takeover", nil, wsconn.Compression{Enabled: true, ContextTakeover: true}, "permessage-deflate"},
		{"own deflate offer replaces", []wsconn.Extension{deflate}, wsconn.Compression{Enabled: true},
			"permessage-deflate; client_max_window_bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offers := make(chan []string, 1)
			addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				offers <- req.Header.Values("Sec-WebSocket-Extensions")
				io.WriteString(conn, switchAnswer(req, ""))
				io.Copy(io.Discard, br)
			})
			o := options()
			o.Extensions = tc.exts
			o.Config.Compression = tc.comp
			u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
			if err != nil {
				t.Fatal(err)
			}
			u.Conn.Close()
			if got := after(t, offers, "the offer"); !slices.Equal(got, []string{tc.offer}) {
				t.Fatalf("offered %q, want %q", got, tc.offer)
			}
		})
	}
}

// docs/client.md "Extensions and compression": Dial "refuses an answer
// that accepts anything not offered (or one extension twice)"; only a
// permessage-deflate answer matches ErrCompressionResponse.
func TestPromiseExtensionAcceptedTwiceRefused(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, "Sec-WebSocket-Extensions: x-a, x-a\r\n"))
		io.Copy(io.Discard, br)
	})
	o := options()
	o.Extensions = []wsconn.Extension{{Name: "x-a"}}
	_, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 101 || !strings.Contains(he.Reason, "twice") ||
		!errors.Is(err, wsclient.ErrHandshake) || errors.Is(err, wsclient.ErrCompressionResponse) {
		t.Fatalf("got %v, want an invalid 101 for an extension accepted twice", err)
	}
}

// serveOneMessage answers the handshake with extra headers, reads the
// client's frames until its CLOSE, which it answers, and hands over the
// first data frame.
func serveOneMessage(t *testing.T, extra string) (string, <-chan rawFrame) {
	got := make(chan rawFrame, 1)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, extra))
		first := true
		for {
			h, p, err := pReadFrame(br)
			if err != nil {
				return
			}
			switch {
			case h.Op == frames.OpClose:
				conn.Write(closeFrame1000)
				return
			case first && !h.Op.IsControl():
				first = false
				got <- rawFrame{h, p}
			}
		}
	})
	return addr, got
}

// docs/client.md "Extensions and compression": other extensions are passed
// on in s.Extensions(), and Dial "applies nothing to the frames: such an
// extension takes effect only where the connection implements it".
func TestPromiseCustomExtensionAppliesNothing(t *testing.T) {
	addr, got := serveOneMessage(t, "Sec-WebSocket-Extensions: x-ext\r\n")
	o := options()
	o.Extensions = []wsconn.Extension{{Name: "x-ext"}}
	msg := strings.Repeat("plain as it is ", 100)
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if e := s.Extensions(); len(e) != 1 || e[0].Name != "x-ext" {
			return fmt.Errorf("extensions %v", e)
		}
		return out.WriteText(ctx, msg)
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	f := after(t, got, "the message")
	if f.h.Rsv != 0 || f.h.Op != frames.OpText || string(f.p) != msg {
		t.Fatalf("frame %+v with %d bytes, want a plain text frame of the message", f.h, len(f.p))
	}
}

// docs/client.md "Extensions and compression": "A server that declines
// simply leaves the extension out, and the connection runs uncompressed:
// check s.Extensions()."
func TestPromiseCompressionDeclinedRunsUncompressed(t *testing.T) {
	addr, got := serveOneMessage(t, "")
	o := options()
	o.Config.Compression.Enabled = true
	msg := strings.Repeat("compress me if you can ", 100)
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if e := s.Extensions(); len(e) != 0 {
			return fmt.Errorf("extensions %v, want none", e)
		}
		return out.WriteText(ctx, msg)
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	f := after(t, got, "the message")
	if f.h.Rsv != 0 || string(f.p) != msg {
		t.Fatalf("frame %+v with %d bytes, want the message uncompressed", f.h, len(f.p))
	}
}

// docs/client.md "Extensions and compression": "client_max_window_bits
// from 8 to 15 only if offered (colibri then compresses with that
// window)"; dial.go (Extensions): "the client then compresses with the
// window the server answers". The message is 1000 random bytes twice: with
// a 512-byte window (9 bits) the repeat is out of reach and the message
// cannot shrink; with the full window it shrinks to about half.
func TestPromiseClientMaxWindowBitsHonoured(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	block := make([]byte, 1000)
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	msg := append(slices.Clone(block), block...)
	const granted = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tc := range []struct {
		name   string
		answer string
		exts   []wsconn.Extension
		small  bool // the repeat must be found
	}{
		{"full window", granted, nil, true},
		{"9 bits", granted + "; client_max_window_bits=9", []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{
			{Name: "client_no_context_takeover"}, {Name: "server_no_context_takeover"}, {Name: "client_max_window_bits"}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := serveOneMessage(t, "Sec-WebSocket-Extensions: "+tc.answer+"\r\n")
			o := options()
			o.Config.Compression = wsconn.Compression{Enabled: true, Level: 9}
			o.Extensions = tc.exts
			err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				return out.WriteBinary(ctx, msg)
			}, o)
			if err != nil {
				t.Fatal(err)
			}
			f := after(t, got, "the message")
			if f.h.Rsv != frames.Rsv1 {
				t.Fatalf("frame %+v is not compressed", f.h)
			}
			inflated := make([]byte, len(msg))
			zr := flate.NewReader(io.MultiReader(bytes.NewReader(f.p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
			if _, err := io.ReadFull(zr, inflated); err != nil || !bytes.Equal(inflated, msg) {
				t.Fatalf("the frame does not inflate to the message: %v", err)
			}
			if tc.small && len(f.p) > 1300 {
				t.Fatalf("with the full window the message compressed to %d bytes, want the repeat found", len(f.p))
			}
			if !tc.small && len(f.p) < 1900 {
				t.Fatalf("with client_max_window_bits=9 the message compressed to %d bytes: a match reached back past 512 bytes", len(f.p))
			}
		})
	}
}

// docs/client.md "What the client checks and sends": "the caller's buffers
// are never modified" (the client masks every frame), with and without
// compression, for whole messages and streamed ones.
func TestPromiseCallerBuffersNeverModified(t *testing.T) {
	srv := pServer(t, gorillaEcho, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	payload := make([]byte, 100_000) // more than one 64 KiB fragment
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	orig := slices.Clone(payload)
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression %v", compress), func(t *testing.T) {
			o := options()
			o.Config.Compression.Enabled = compress
			err := wsclient.Run(testCtx(t), wsURL(srv), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				if compress != (len(s.Extensions()) == 1) {
					return fmt.Errorf("extensions %v", s.Extensions())
				}
				got, err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindBinary, Payload: payload})
				if err != nil {
					return err
				}
				if !bytes.Equal(got.Payload, orig) {
					return errors.New("the echo differs")
				}
				w, err := out.Writer(ctx, messages.KindBinary)
				if err != nil {
					return err
				}
				if _, err := w.Write(payload[:70_000]); err != nil {
					return err
				}
				if _, err := w.Write(payload[70_000:]); err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
				for m := range in.Messages(0) {
					if !bytes.Equal(m.Payload, orig) {
						return errors.New("the streamed echo differs")
					}
					return nil
				}
				return in.Err()
			}, o)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(payload, orig) {
				t.Fatal("the client modified the caller's buffer")
			}
		})
	}
}

// ---- keep-alive ----

// watchedConn tells when a Read on it is under way, so that a test knows
// the connection is waiting for the peer.
type watchedConn struct {
	net.Conn
	reading atomic.Int32
	entered chan struct{}
}

func (c *watchedConn) Read(p []byte) (int, error) {
	c.reading.Add(1)
	defer c.reading.Add(-1)
	select {
	case c.entered <- struct{}{}:
	default:
	}
	return c.Conn.Read(p)
}

// CloseWrite keeps the half-close of the TCP connection underneath.
func (c *watchedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// waitReading returns once a Read is under way.
func (c *watchedConn) waitReading(t *testing.T) {
	t.Helper()
	for c.reading.Load() == 0 {
		after(t, c.entered, "the client to read")
	}
}

// keepAliveRun runs a client on clk against a raw server that never sends
// a frame. The handler never reads and writes each string from markers.
// It returns the frames the server reads, the watched connection and a
// channel that gets Run's error.
func keepAliveRun(t *testing.T, clk *wstest.Clock, cfg wsconn.Config, markers <-chan string) (<-chan rawFrame, *watchedConn, <-chan error, context.CancelFunc) {
	t.Helper()
	got := make(chan rawFrame, 16)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, ""))
		for {
			h, p, err := pReadFrame(br)
			if err != nil {
				return
			}
			got <- rawFrame{h, p}
			if h.Op == frames.OpClose {
				conn.Write(append([]byte{0x88, byte(len(p))}, p...))
				return
			}
		}
	})
	conns := make(chan *watchedConn, 1)
	o := options()
	cfg.Clock, cfg.Logger = clk, quiet
	o.Config = &cfg
	o.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		w := &watchedConn{Conn: c, entered: make(chan struct{}, 1)}
		conns <- w
		return w, nil
	}
	runErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		runErr <- wsclient.Run(ctx, "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			for {
				select {
				case m := <-markers:
					if err := out.WriteText(ctx, m); err != nil {
						return err
					}
				case <-ctx.Done():
					return nil
				}
			}
		}, o)
	}()
	w := after(t, conns, "the dial")
	if err := clk.WaitTimers(ctx, 1); err != nil {
		t.Fatalf("the connection's timer: %v", err)
	}
	return got, w, runErr, cancel
}

// expectFrame reads the next frame the server got and checks its opcode
// (and, for text, its payload).
func expectFrame(t *testing.T, got <-chan rawFrame, op frames.Opcode, text string) rawFrame {
	t.Helper()
	f := after(t, got, fmt.Sprintf("a %v frame", op))
	if f.h.Op != op || op == frames.OpText && string(f.p) != text {
		t.Fatalf("server read a %v frame %q, want %v %q", f.h.Op, f.p, op, text)
	}
	return f
}

// docs/client.md "Options": "Keep-alive is on by default on the client as
// on the server: after 30 s without hearing from the server, the client
// sends a PING and closes with 1001 if no answer comes within 20 s." Run on
// a fake clock (Config.Clock) with the intervals left at their defaults.
func TestPromiseKeepAliveDefaults(t *testing.T) {
	clk := wstest.NewClock()
	markers := make(chan string)
	got, w, runErr, _ := keepAliveRun(t, clk, wsconn.Config{}, markers)

	// wsconn may ping up to a quarter interval early: not before 22.5 s.
	clk.Advance(22 * time.Second)
	markers <- "at 22s"
	expectFrame(t, got, frames.OpText, "at 22s")
	clk.Advance(8 * time.Second)
	expectFrame(t, got, frames.OpPing, "")

	// The server stays silent while the client waits for it.
	w.waitReading(t)
	clk.Advance(19 * time.Second)
	markers <- "at 49s"
	expectFrame(t, got, frames.OpText, "at 49s")
	w.waitReading(t)
	clk.Advance(time.Second)
	f := expectFrame(t, got, frames.OpClose, "")
	if code, _, _ := frames.ParseClose(f.p); code != frames.CloseGoingAway {
		t.Fatalf("client closed with %d, want 1001", code)
	}
	after(t, runErr, "Run to return")
}

// docs/client.md "Options": "Set Config.PingInterval to a negative value to
// turn it off."
func TestPromiseKeepAliveOff(t *testing.T) {
	clk := wstest.NewClock()
	markers := make(chan string)
	got, _, runErr, cancel := keepAliveRun(t, clk, wsconn.Config{PingInterval: -1}, markers)
	clk.Advance(time.Hour)
	markers <- "an hour later"
	expectFrame(t, got, frames.OpText, "an hour later")
	clk.Advance(24 * time.Hour)
	markers <- "a day later"
	expectFrame(t, got, frames.OpText, "a day later")
	// The close code on cancellation is TestPromiseContextEndCloses1001's
	// business; here the connection only has to end.
	cancel()
	expectFrame(t, got, frames.OpClose, "")
	after(t, runErr, "Run to return")
}

// ---- goroutines ----

// wsconn (quoted by docs/client.md, "Everything Handlers says holds on the
// client side"): "No goroutine outlives its connection." Checked when Run
// returns, after a clean close, a refusal, a protocol violation and a
// handshake timeout.
func TestPromiseNoGoroutineOutlivesRun(t *testing.T) {
	served := make(chan struct{}, 8)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		defer func() { served <- struct{}{} }()
		switch req.URL.Path {
		case "/clean":
			io.WriteString(conn, switchAnswer(req, ""))
			readFrames(conn, br, nil)
		case "/refused":
			io.WriteString(conn, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
			io.Copy(io.Discard, br)
		case "/violation":
			io.WriteString(conn, switchAnswer(req, ""))
			conn.Write([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}) // masked
			io.Copy(io.Discard, br)
		case "/timeout":
			io.Copy(io.Discard, br)
		}
	})
	snapshot := goleak.IgnoreCurrent()
	for _, path := range []string{"/clean", "/refused", "/violation", "/timeout"} {
		o := options()
		o.HandshakeTimeout = 200 * time.Millisecond
		_ = wsclient.Run(testCtx(t), "ws://"+addr+path, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			for range in.Messages(0) {
			}
			return nil
		}, o)
		after(t, served, "the server")
		if err := goleak.Find(snapshot); err != nil {
			t.Errorf("%s: goroutines left after Run returned: %v", path, err)
		}
	}
}

package wsclient_test

// This file compares wsclient.Dial with gobwas/ws's Dialer on what
// colibri's client needs: permessage-deflate negotiation checked against
// what colibri can honour, refusals with their status and body, control of
// the request's headers, proxies, and TLS. Each test shows a capability
// that gobwas's Dialer lacks or where it behaves differently;
// docs/architecture.md records the decision.

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// answerServer accepts connections on 127.0.0.1, reads one request from
// each, and lets answer write the response. It returns the address.
func answerServer(t *testing.T, answer func(c net.Conn, req *http.Request)) string {
	t.Helper()
	return tcpServer(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		answer(c, req)
		// Wait for the client to hang up, so that it reads the
		// whole answer before the connection closes.
		_, _ = io.Copy(io.Discard, c)
	})
}

// switchAnswer is a valid 101 for req, with extra header lines.
func switchAnswer(req *http.Request, extra string) string {
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" + extra + "\r\n"
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// TestDialDeflateResponseColibriVsGobwas offers permessage-deflate from
// both clients (gobwas's offer is the very header colibri sent) and
// answers with responses that a client must check (RFC 7692 §7.1).
// colibri refuses every one it cannot honour with an error that matches
// wsclient.ErrCompressionResponse; gobwas's Dialer matches extension names
// only and accepts them all, leaving the parameters to its user.
func TestDialDeflateResponseColibriVsGobwas(t *testing.T) {
	const granted = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	tests := []struct {
		name         string
		answer       string
		colibri      error // what colibri's error matches; nil: accepted
		gobwasRefuse bool
	}{
		{name: "grants the offer", answer: granted},
		{
			name:    "drops server_no_context_takeover, which the offer asked for",
			answer:  "permessage-deflate; client_no_context_takeover",
			colibri: wsclient.ErrCompressionResponse,
		},
		{
			name:    "client_max_window_bits that was not offered",
			answer:  granted + "; client_max_window_bits=10",
			colibri: wsclient.ErrCompressionResponse,
		},
		{
			name:    "server_max_window_bits out of range",
			answer:  granted + "; server_max_window_bits=7",
			colibri: wsclient.ErrCompressionResponse,
		},
		{
			name:    "unknown parameter",
			answer:  granted + "; x_unknown",
			colibri: wsclient.ErrCompressionResponse,
		},
		{
			name:    "accepted twice",
			answer:  granted + ", " + granted,
			colibri: wsclient.ErrCompressionResponse,
		},
		{
			name:         "an extension that was not offered",
			answer:       "x-webkit-deflate-frame",
			colibri:      wsclient.ErrHandshake,
			gobwasRefuse: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offers := make(chan string, 2)
			addr := answerServer(t, func(c net.Conn, req *http.Request) {
				offers <- req.Header.Get("Sec-WebSocket-Extensions")
				_, _ = io.WriteString(c, switchAnswer(req, "Sec-WebSocket-Extensions: "+tt.answer+"\r\n"))
			})

			u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, &wsclient.Options{
				Proxy:  noProxy,
				Config: &wsconn.Config{Compression: wsconn.Compression{Enabled: true}},
			})
			if err == nil {
				u.Conn.Close()
			}
			if (err == nil) != (tt.colibri == nil) || !errors.Is(err, tt.colibri) {
				t.Errorf("colibri: %v, want %v", err, tt.colibri)
			}

			offer := <-offers
			gobwasOffer, ok := httphead.ParseOptions([]byte(offer), nil)
			if !ok || len(gobwasOffer) != 1 {
				t.Fatalf("colibri's offer %q does not parse", offer)
			}
			conn, _, hs, err := ws.Dialer{Extensions: gobwasOffer}.Dial(testCtx(t), "ws://"+addr)
			if conn != nil {
				conn.Close()
			}
			if refused := err != nil; refused != tt.gobwasRefuse {
				t.Errorf("gobwas refused: %v (%v), want %v; it accepted %d extensions", refused, err, tt.gobwasRefuse, len(hs.Extensions))
			}
		})
	}
}

// TestDialRefusalColibriVsGobwas answers a handshake with 401, a
// WWW-Authenticate header and a body that says why. colibri returns a
// *wsclient.HandshakeError with the status, headers and body; gobwas
// returns ws.StatusError, the bare status, and shows the rest of the
// answer only to an OnStatusError callback while Dial runs.
func TestDialRefusalColibriVsGobwas(t *testing.T) {
	const body = "token expired\n"
	addr := answerServer(t, func(c net.Conn, _ *http.Request) {
		_, _ = io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n"+
			"Content-Type: text/plain\r\nContent-Length: 14\r\n\r\n"+body)
	})

	_, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, &wsclient.Options{Proxy: noProxy})
	he, ok := errors.AsType[*wsclient.HandshakeError](err)
	if !ok {
		t.Fatalf("colibri: %v, want a *wsclient.HandshakeError", err)
	}
	if he.StatusCode != 401 || string(he.Body) != body || he.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("colibri: status %d, body %q, WWW-Authenticate %q", he.StatusCode, he.Body, he.Header.Get("WWW-Authenticate"))
	}
	if !strings.Contains(err.Error(), "token expired") {
		t.Errorf("colibri: %q does not say why", err)
	}

	conn, _, _, err := ws.Dialer{}.Dial(testCtx(t), "ws://"+addr)
	if conn != nil {
		conn.Close()
	}
	var se ws.StatusError
	if !errors.As(err, &se) || se != 401 {
		t.Fatalf("gobwas: %v, want ws.StatusError(401)", err)
	}
	if strings.Contains(err.Error(), "token expired") {
		t.Errorf("gobwas: %q carries the body", err)
	}
	var seen string
	conn, _, _, _ = ws.Dialer{OnStatusError: func(status int, reason []byte, r io.Reader) {
		resp, err := http.ReadResponse(bufio.NewReader(r), nil)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			seen = string(b)
		}
	}}.Dial(testCtx(t), "ws://"+addr)
	if conn != nil {
		conn.Close()
	}
	if seen != body {
		t.Errorf("gobwas OnStatusError read body %q, want %q", seen, body)
	}
}

// TestDialHeaderControlColibriVsGobwas sends user headers that collide
// with the handshake's own and a URL with user information. colibri
// replaces a user's Sec-WebSocket-Version with its own and sends the
// user information as Basic authorization; gobwas's Dialer writes the
// user's header after its own, so the server gets two versions, and drops
// the user information.
func TestDialHeaderControlColibriVsGobwas(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	addr := answerServer(t, func(c net.Conn, req *http.Request) {
		reqs <- req
		_, _ = io.WriteString(c, switchAnswer(req, ""))
	})
	user := http.Header{"Sec-Websocket-Version": {"8"}, "X-Trace": {"abc"}}
	url := "ws://user:pass@" + addr + "/"

	u, _, err := wsclient.Dial(testCtx(t), url, &wsclient.Options{Proxy: noProxy, Header: user})
	if err != nil {
		t.Fatalf("colibri: %v", err)
	}
	u.Conn.Close()
	req := <-reqs
	if v := req.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || v[0] != "13" {
		t.Errorf("colibri sent Sec-WebSocket-Version %q, want just 13", v)
	}
	if got, want := req.Header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte("user:pass")); got != want {
		t.Errorf("colibri sent Authorization %q, want %q", got, want)
	}
	if req.Header.Get("X-Trace") != "abc" {
		t.Errorf("colibri dropped X-Trace")
	}

	conn, _, _, err := ws.Dialer{Header: ws.HandshakeHeaderHTTP(user)}.Dial(testCtx(t), url)
	if err != nil {
		t.Fatalf("gobwas: %v", err)
	}
	conn.Close()
	req = <-reqs
	if v := req.Header.Values("Sec-WebSocket-Version"); len(v) != 2 {
		t.Errorf("gobwas sent Sec-WebSocket-Version %q, want 13 and the user's 8", v)
	}
	if a := req.Header.Get("Authorization"); a != "" {
		t.Errorf("gobwas sent Authorization %q, want none", a)
	}
	if req.Header.Get("X-Trace") != "abc" {
		t.Errorf("gobwas dropped X-Trace")
	}
}

// tunnelProxy is an HTTP proxy on 127.0.0.1 that opens CONNECT tunnels
// and counts them.
func tunnelProxy(t *testing.T) (proxyURL *url.URL, tunnels *atomic.Int32) {
	t.Helper()
	tunnels = new(atomic.Int32)
	addr := tcpServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		up, err := net.Dial("tcp", req.Host)
		if err != nil {
			return
		}
		defer up.Close()
		tunnels.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(up, br)
			up.Close()
			close(done)
		}()
		_, _ = io.Copy(c, up)
		c.Close()
		<-done
	})
	return &url.URL{Scheme: "http", Host: addr}, tunnels
}

// TestDialProxyColibriVsGobwas dials through an HTTP proxy. colibri asks
// it for a CONNECT tunnel (Options.Proxy, by default the environment's
// HTTP_PROXY and HTTPS_PROXY, as net/http does); gobwas's Dialer has no
// proxy setting at all, so a gobwas user would write the CONNECT exchange
// into NetDial, which is the code wsclient already has.
func TestDialProxyColibriVsGobwas(t *testing.T) {
	addr := answerServer(t, func(c net.Conn, req *http.Request) {
		_, _ = io.WriteString(c, switchAnswer(req, ""))
	})
	proxy, tunnels := tunnelProxy(t)
	u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, &wsclient.Options{Proxy: http.ProxyURL(proxy)})
	if err != nil {
		t.Fatalf("colibri through the proxy: %v", err)
	}
	u.Conn.Close()
	if n := tunnels.Load(); n != 1 {
		t.Errorf("colibri: the proxy opened %d tunnels, want 1", n)
	}

	d := reflect.TypeFor[ws.Dialer]()
	for i := range d.NumField() {
		if name := d.Field(i).Name; strings.Contains(strings.ToLower(name), "proxy") {
			t.Errorf("gobwas's Dialer has a field %s now: see whether it can replace wsclient's CONNECT", name)
		}
	}
}

// TestDialTLSALPNColibriVsGobwas dials a TLS server with HTTP/2 enabled
// using a client config that offers h2 and http/1.1 over ALPN, as a config
// shared with an http.Client does. colibri always offers only http/1.1 over ALPN,
// which the WebSocket handshake needs, and connects; gobwas's Dialer uses
// the config as it is, the server picks h2, and the HTTP/1.1 upgrade
// request fails.
func TestDialTLSALPNColibriVsGobwas(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, err := handshake.Accept(w, r, nil); err == nil {
			u.Conn.Close()
		}
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the h2 server's complaint about gobwas's request
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	shared := &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}
	url := "wss://" + srv.Listener.Addr().String()

	u, _, err := wsclient.Dial(testCtx(t), url, &wsclient.Options{Proxy: noProxy, TLSConfig: shared})
	if err != nil {
		t.Fatalf("colibri: %v", err)
	}
	// httptest's server lists only h2; crypto/tls lets a client that
	// offers only http/1.1 in with no protocol negotiated.
	if p := u.Conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("colibri negotiated %q", p)
	}
	u.Conn.Close()

	conn, _, _, err := ws.Dialer{TLSConfig: shared}.Dial(testCtx(t), url)
	if err == nil {
		conn.Close()
		t.Fatal("gobwas upgraded over a connection whose ALPN offered h2 first")
	}
	if conn != nil {
		if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Errorf("gobwas negotiated %q, want h2", p)
		}
	}
}

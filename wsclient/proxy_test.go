package wsclient_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// connectProxy is an HTTP proxy that only tunnels (CONNECT), on 127.0.0.1.
// Targets listed in routes are sent to another address, so tests can dial
// host names that do not resolve, which http.ProxyFromEnvironment proxies
// (it never proxies loopback addresses).
type connectProxy struct {
	url    *url.URL
	auth   string            // required Proxy-Authorization, "" for none
	routes map[string]string // CONNECT target -> address dialed

	mu      sync.Mutex
	targets []string // CONNECT targets, in order
	conns   []net.Conn
	wg      sync.WaitGroup
}

func startProxy(t *testing.T, auth string, routes map[string]string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{url: &url.URL{Scheme: "http", Host: ln.Addr().String()}, auth: auth, routes: routes}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprint(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if p.auth != "" && req.Header.Get("Proxy-Authorization") != p.auth {
		body := "proxy credentials required"
		fmt.Fprintf(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.mu.Unlock()
	addr := req.Host
	if to, ok := p.routes[addr]; ok {
		addr = to
	}
	up, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.track(up)
	defer up.Close()
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, up)
	c.Close()
	<-done
}

func (p *connectProxy) tunnels() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// echoText runs one text round trip.
func echoText(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
	got, err := roundTrip(ctx, in, out, messages.Text("through the tunnel"))
	if err == nil && string(got.Payload) != "through the tunnel" {
		err = fmt.Errorf("echo %q", got.Payload)
	}
	return err
}

// onlyProxy is a NetDial that refuses to reach anything but the proxy, so
// a test fails rather than going around it (or out to the network).
func onlyProxy(p *connectProxy) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != p.url.Host {
			return nil, fmt.Errorf("test dialed %s instead of the proxy %s", addr, p.url.Host)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func TestProxyTunnel(t *testing.T) {
	plain := gorillaPeer(t, false)
	secure := gorillaPeer(t, true)
	for _, tc := range []struct {
		name string
		p    *peer
	}{{"ws", plain}, {"wss", secure}} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := startProxy(t, "", nil)
			o := options()
			o.Proxy = http.ProxyURL(proxy.url)
			o.NetDial = onlyProxy(proxy)
			if tc.name == "wss" {
				o.TLSConfig = &tls.Config{RootCAs: certPool(tc.p.srv)}
			}
			if err := wsclient.Run(testCtx(t), tc.p.url, echoText, o); err != nil {
				t.Fatal(err)
			}
			want := strings.TrimPrefix(strings.TrimPrefix(tc.p.url, "wss://"), "ws://")
			if got := proxy.tunnels(); len(got) != 1 || got[0] != want {
				t.Fatalf("proxy tunnels %q, want one to %s", got, want)
			}
		})
	}
}

func TestProxyAuthorization(t *testing.T) {
	p := gorillaPeer(t, false)
	// "Basic " + base64("ann:s3cret")
	proxy := startProxy(t, "Basic YW5uOnMzY3JldA==", nil)
	o := options()
	o.NetDial = onlyProxy(proxy)

	withUser := *proxy.url
	withUser.User = url.UserPassword("ann", "s3cret")
	o.Proxy = http.ProxyURL(&withUser)
	if err := wsclient.Run(testCtx(t), p.url, echoText, o); err != nil {
		t.Fatalf("with the proxy URL's credentials: %v", err)
	}

	o.Proxy = http.ProxyURL(proxy.url)
	_, resp, err := wsclient.Dial(testCtx(t), p.url, o)
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || !errors.Is(err, wsclient.ErrHandshake) {
		t.Fatalf("without credentials: %v, want a HandshakeError", err)
	}
	if !he.Proxy || he.StatusCode != http.StatusProxyAuthRequired || string(he.Body) != "proxy credentials required" ||
		he.Header.Get("Proxy-Authenticate") == "" {
		t.Fatalf("refusal %+v", he)
	}
	if resp == nil || resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("response %v, want the proxy's 407", resp)
	}
	if !strings.Contains(err.Error(), "proxy refused the tunnel: 407") {
		t.Fatalf("error text %q", err)
	}
}

func TestProxyUnsupportedScheme(t *testing.T) {
	o := options()
	o.Proxy = http.ProxyURL(&url.URL{Scheme: "socks5", Host: "127.0.0.1:1"})
	o.NetDial = func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("must not dial")
	}
	_, _, err := wsclient.Dial(testCtx(t), "ws://127.0.0.1:1/", o)
	if err == nil || !strings.Contains(err.Error(), `scheme "socks5" is not supported`) {
		t.Fatalf("socks5 proxy: %v", err)
	}
}

// TestProxyFromEnvironment dials with the default Proxy, which reads
// HTTP_PROXY and HTTPS_PROXY. net/http reads those variables once per
// process, so the test runs itself again in a fresh process that sets them
// before anything looks. The URL's host is a name that does not resolve:
// http.ProxyFromEnvironment does not proxy loopback addresses, and the
// proxy routes the name to the local servers.
func TestProxyFromEnvironment(t *testing.T) {
	const child = "WSCLIENT_TEST_PROXY_CHILD"
	if os.Getenv(child) == "" {
		ctx := testCtx(t)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestProxyFromEnvironment$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the test in a child process: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestProxyFromEnvironment") {
			t.Fatalf("the child process did not run the test:\n%s", out)
		}
		return
	}

	plain := gorillaPeer(t, false)
	secure := gorillaPeer(t, true)
	proxy := startProxy(t, "", map[string]string{
		"echo.wsclient.test:80":  plain.srv.Listener.Addr().String(),
		"echo.wsclient.test:443": secure.srv.Listener.Addr().String(),
	})
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, proxy.url.String())
	}
	for _, k := range []string{"NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(k, "")
	}
	o := &wsclient.Options{
		NetDial:   onlyProxy(proxy),
		TLSConfig: &tls.Config{RootCAs: certPool(secure.srv), ServerName: "example.com"},
		Config:    &wsconn.Config{Logger: quiet},
	}
	for _, u := range []string{"ws://echo.wsclient.test/", "wss://echo.wsclient.test/"} {
		if err := wsclient.Run(testCtx(t), u, echoText, o); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if got := proxy.tunnels(); len(got) != 2 || got[0] != "echo.wsclient.test:80" || got[1] != "echo.wsclient.test:443" {
		t.Fatalf("proxy tunnels %q", got)
	}
}

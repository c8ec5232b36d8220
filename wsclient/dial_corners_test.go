package wsclient_test

// Corners of how the client dials: CONNECT proxies (one that sends tunnel
// bytes with its 200, one that refuses with 407, one that wants
// Proxy-Authorization), TLS with a self-signed certificate made here,
// SNI and names, URL forms (IPv6 literals, default ports, escaped paths
// and queries), Options.Header, and what Dial returns when it fails.
// Servers are gorilla/websocket, coder/websocket, or hand-written on
// loopback listeners; helpers come from the package's other test files
// (rawServer, tcpServer, switchAnswer, pReadFrame, advClose, options).

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// ---- helpers ----

// dcCert makes a self-signed certificate for names (DNS names or IP
// literals) and returns it with a pool that trusts it.
func dcCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dial corners"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// dcServe serves h on ln with an http.Server; the cleanup closes the
// server, the hijacked connections, and waits for the handlers.
func dcServe(t *testing.T, ln net.Listener, h http.HandlerFunc) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wg.Add(1)
			defer wg.Done()
			h(w, r)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				mu.Lock()
				conns[c] = struct{}{}
				mu.Unlock()
			}
		},
		ErrorLog: log.New(io.Discard, "", 0), // failed TLS handshakes
	}
	srv.SetKeepAlivesEnabled(false)
	var served sync.WaitGroup
	served.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() {
		_ = srv.Close()
		served.Wait()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// dcGorilla is a gorilla/websocket echo handler that reports each
// request it upgrades on seen.
func dcGorilla(seen chan<- *http.Request) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			select {
			case seen <- r:
			default:
			}
		}
		up := gorilla.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}
}

// dcCoder is a coder/websocket echo handler that reports each request it
// accepts on seen.
func dcCoder(seen chan<- *http.Request) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			select {
			case seen <- r:
			default:
			}
		}
		c, err := coder.Accept(w, r, &coder.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}
}

// dcListen listens on network's loopback ("tcp4" or "tcp6"), skipping
// the test when there is none.
func dcListen(t *testing.T, network string) net.Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	return ln
}

// dcNoDial is a NetDial that records the address asked for and fails.
func dcNoDial(addrs chan<- string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		addrs <- addr
		return nil, errors.New("dial corners: not dialing")
	}
}

// ---- proxies ----

// TestDialCornerProxyTunnelBytesCloseOrder: RFC 6455 §7.1.1 and
// docs/client.md ("On close, once the server's CLOSE has come, the client
// waits, up to Config.CloseTimeout, for the server to close TCP first ...
// without sending its own FIN first"). The proxy is also the server here;
// in one case its 200 to CONNECT comes in the same write as the tunnel's
// first bytes (a 103 Early Hints from the server, which the client skips),
// which makes the client read the tunnel through a wrapper. The closing
// must not depend on that: the client sends nothing more, not even its
// FIN, and Run returns only once the server has closed TCP.
func TestDialCornerProxyTunnelBytesCloseOrder(t *testing.T) {
	for _, prefix := range []string{"", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"} {
		t.Run(fmt.Sprintf("tunnel bytes with the 200: %v", prefix != ""), func(t *testing.T) {
			runDone := make(chan struct{})
			type report struct {
				sentMore      error // what the server's read after its CLOSE got: a timeout, as the client sent nothing
				returnedEarly bool
			}
			reports := make(chan report, 1)
			proxy := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				var r report
				defer func() { reports <- r }()
				if req.Method != http.MethodConnect {
					return
				}
				io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"+prefix)
				up, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.WriteString(conn, switchAnswer(up, ""))
				for {
					h, _, err := pReadFrame(br)
					if err != nil {
						return
					}
					if h.Op == frames.OpClose {
						break
					}
				}
				conn.Write(advClose(1000, ""))
				_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				_, r.sentMore = br.ReadByte()
				select {
				case <-runDone:
					r.returnedEarly = true
				default:
				}
			})
			o := options()
			o.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})
			o.Config.CloseTimeout = 5 * time.Second
			err := wsclient.Run(testCtx(t), "ws://ws.invalid/", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				return nil
			}, o)
			close(runDone)
			if err != nil {
				t.Fatal(err)
			}
			r := after(t, reports, "the server's report")
			if ne, ok := errors.AsType[net.Error](r.sentMore); !ok || !ne.Timeout() {
				t.Errorf("after the closing handshake the server read %v; want nothing (no data, no FIN) before it closed", r.sentMore)
			}
			if r.returnedEarly {
				t.Error("Run returned, closing TCP, before the server closed it")
			}
		})
	}
}

// TestDialCornerCancelAfterTunnelOrTLS: ctx is cancelled by a timer after
// the proxy tunnel, or the TLS handshake through it, has succeeded, while
// the client waits for the server's 101 (docs/client.md "Errors": "ctx
// was cancelled | matches context.Canceled"). Dial must fail at once with
// the cancellation, wrapped with the URL, return no connection and, under
// -race, show no data race between the goroutine that cuts the handshake
// short and Dial. (A cancel that the server triggered itself would be
// ordered after Dial's writes by the race detector's model of socket
// I/O; a timer, like HandshakeTimeout's, is not.)
func TestDialCornerCancelAfterTunnelOrTLS(t *testing.T) {
	cert, pool := dcCert(t, "ws.corner.test")
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("wss %v", secure), func(t *testing.T) {
			reached := make(chan struct{}, 8)
			// A proxy that opens the tunnel and is the server at its far
			// end: TLS when secure, then it reads the upgrade request and
			// says nothing.
			proxy := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
				var r io.Reader = br
				if secure {
					tc := tls.Server(&dcBufConn{Conn: conn, r: br}, &tls.Config{Certificates: []tls.Certificate{cert}})
					if tc.Handshake() != nil {
						return
					}
					r = tc
				}
				if _, err := http.ReadRequest(bufio.NewReader(r)); err != nil {
					return
				}
				reached <- struct{}{}
				_, _ = io.Copy(io.Discard, r)
			})
			o := options()
			o.HandshakeTimeout = -1
			o.TLSConfig = &tls.Config{RootCAs: pool}
			o.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})
			target := "ws://ws.corner.test/"
			if secure {
				target = "wss://ws.corner.test/"
			}
			// Retry with a later cancel if the timer fired before the
			// upgrade request was out.
			for delay := 100 * time.Millisecond; ; delay *= 2 {
				ctx, cancel := context.WithCancel(testCtx(t))
				timer := time.AfterFunc(delay, cancel)
				u, resp, err := wsclient.Dial(ctx, target, o)
				timer.Stop()
				cancel()
				if u.Conn != nil || resp != nil {
					t.Fatalf("a failed Dial returned %v, %v", u.Conn, resp)
				}
				if !errors.Is(err, context.Canceled) || errors.Is(err, wsclient.ErrHandshake) ||
					!strings.HasPrefix(err.Error(), "wsclient: dial "+target+": ") {
					t.Fatalf("got %v, want the wrapped cancellation", err)
				}
				select {
				case <-reached:
					return
				default:
				}
				if delay > time.Second {
					t.Fatal("the upgrade request never came before the cancel")
				}
			}
		})
	}
}

// dcBufConn is a connection whose reads go through a buffered reader that
// may hold bytes already read from it.
type dcBufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *dcBufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestDialCornerProxyCredentials: docs/client.md "Proxies": user
// information in the proxy URL becomes Proxy-Authorization: Basic on the
// CONNECT request, decoded from its URL escapes and with an empty
// password when there is none; "Options": user information in the
// WebSocket URL becomes Authorization on the upgrade request. Each goes
// only where it belongs: the proxy's credentials never reach the server
// through the tunnel, the server's never reach the proxy. The CONNECT
// target of an IPv6 literal is bracketed. The server is coder/websocket.
func TestDialCornerProxyCredentials(t *testing.T) {
	ln := dcListen(t, "tcp6")
	seen := make(chan *http.Request, 1)
	dcServe(t, ln, dcCoder(seen))
	addr := ln.Addr().String()
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, proxyUser, wantProxy string
	}{
		{"escaped user and password", "us%20er:p%40ss:w%3Ard", basic("us er:p@ss:w:rd")},
		{"user without password", "ann", basic("ann:")},
		{"no user", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			connects := make(chan *http.Request, 1)
			proxy := startProxy(t, "", nil)
			// A front that records the CONNECT request and passes it on.
			front := tcpServer(t, func(conn net.Conn) {
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				connects <- req
				back, err := net.Dial("tcp", proxy.url.Host)
				if err != nil {
					return
				}
				defer back.Close()
				if req.Write(back) != nil {
					return
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = io.Copy(back, br)
					back.Close()
				}()
				_, _ = io.Copy(conn, back)
				conn.Close()
				<-done
			})
			pu, err := url.Parse("http://" + tc.proxyUser + "@" + front)
			if tc.proxyUser == "" {
				pu, err = url.Parse("http://" + front)
			}
			if err != nil {
				t.Fatal(err)
			}
			o := options()
			o.Proxy = http.ProxyURL(pu)
			err = wsclient.Run(testCtx(t), "ws://srv:s%3Acret@"+addr+"/", echoText, o)
			if err != nil {
				t.Fatal(err)
			}
			c := after(t, connects, "the CONNECT request")
			if c.Method != http.MethodConnect || c.RequestURI != addr || c.Host != addr {
				t.Errorf("CONNECT %q for host %q, want %s", c.RequestURI, c.Host, addr)
			}
			if got := c.Header.Get("Proxy-Authorization"); got != tc.wantProxy {
				t.Errorf("Proxy-Authorization %q, want %q", got, tc.wantProxy)
			}
			if got := c.Header.Get("Authorization"); got != "" {
				t.Errorf("the server's credentials went to the proxy: Authorization %q", got)
			}
			r := after(t, seen, "the upgrade request")
			if got := r.Header.Get("Authorization"); got != basic("srv:s:cret") {
				t.Errorf("Authorization %q at the server", got)
			}
			if got := r.Header.Get("Proxy-Authorization"); got != "" {
				t.Errorf("the proxy's credentials reached the server: %q", got)
			}
			if got := proxy.tunnels(); len(got) != 1 || got[0] != addr {
				t.Errorf("tunnels %q", got)
			}
		})
	}
}

// TestDialCornerSelfSignedTLS: docs/client.md "TLS": ServerName is the
// URL's host name unless the config names one, so the certificate is
// verified for it whatever address NetDial reaches; certificate errors
// come back wrapped ("wsclient: dial <url>: …") with x509.HostnameError
// and x509.UnknownAuthorityError reachable by errors.As, and are not
// HandshakeErrors. The certificate is self-signed, made here, for a DNS
// name and both loopback addresses; the server is gorilla/websocket. An
// IP literal (IPv6 too) is verified against the IP SANs and, as RFC 6066
// §3 says, sent without SNI. Through a CONNECT proxy the name sent is
// still the URL's.
func TestDialCornerSelfSignedTLS(t *testing.T) {
	cert, pool := dcCert(t, "ws.corner.test", "127.0.0.1", "::1")
	snis := make(chan string, 1)
	serve := func(network string) string {
		ln := dcListen(t, network)
		dcServe(t, tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{cert},
			GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				snis <- h.ServerName
				return nil, nil
			},
		}), dcGorilla(nil))
		return ln.Addr().String()
	}
	v4 := serve("tcp4")
	v6 := serve("tcp6")
	_, port4, _ := net.SplitHostPort(v4)
	proxy := startProxy(t, "", map[string]string{"ws.corner.test:443": v4, "other.corner.test:443": v4})
	for _, tc := range []struct {
		name, url string
		opts      func(o *wsclient.Options)
		sni       string
		check     func(err error) bool // nil: Run must succeed
	}{
		{"name", "wss://ws.corner.test:" + port4 + "/x?y=1", func(o *wsclient.Options) { o.NetDial = dialTo(v4) }, "ws.corner.test", nil},
		{"IPv4 literal", "wss://" + v4 + "/", nil, "", nil},
		{"IPv6 literal", "wss://" + v6 + "/", nil, "", nil},
		{"name through a proxy", "wss://ws.corner.test/", func(o *wsclient.Options) {
			o.Proxy = http.ProxyURL(proxy.url)
			o.NetDial = onlyProxy(proxy)
		}, "ws.corner.test", nil},
		{"wrong name", "wss://other.corner.test:" + port4 + "/", func(o *wsclient.Options) { o.NetDial = dialTo(v4) }, "other.corner.test", func(err error) bool {
			var he x509.HostnameError
			return errors.As(err, &he) && he.Host == "other.corner.test"
		}},
		{"wrong name through a proxy", "wss://other.corner.test/", func(o *wsclient.Options) {
			o.Proxy = http.ProxyURL(proxy.url)
			o.NetDial = onlyProxy(proxy)
		}, "other.corner.test", func(err error) bool {
			var he x509.HostnameError
			return errors.As(err, &he)
		}},
		{"unknown authority", "wss://" + v6 + "/", func(o *wsclient.Options) { o.TLSConfig = &tls.Config{} }, "", func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options()
			o.TLSConfig = &tls.Config{RootCAs: pool}
			if tc.opts != nil {
				tc.opts(o)
			}
			err := wsclient.Run(testCtx(t), tc.url, echoText, o)
			switch {
			case tc.check == nil && err != nil:
				t.Fatal(err)
			case tc.check != nil && (err == nil || !tc.check(err) || errors.Is(err, wsclient.ErrHandshake) ||
				!strings.HasPrefix(err.Error(), "wsclient: dial "+tc.url+": ")):
				t.Fatalf("got %v, want a wrapped certificate error", err)
			}
			if got := after(t, snis, "the ClientHello"); got != tc.sni {
				t.Errorf("SNI %q, want %q", got, tc.sni)
			}
		})
	}
}

// TestDialCornerURLForms: docs/client.md "Options": ws://, wss://, and
// http:// and https:// as their WebSocket counterparts. RFC 6455 §4.1:
// the request line carries the resource name (path and query, "/" when
// the path is empty) as it was escaped, and Host the host and port, an
// IPv6 literal in brackets. The server is coder/websocket on loopback.
func TestDialCornerURLForms(t *testing.T) {
	seen := make(chan *http.Request, 1)
	ln4 := dcListen(t, "tcp4")
	dcServe(t, ln4, dcCoder(seen))
	ln6 := dcListen(t, "tcp6")
	dcServe(t, ln6, dcCoder(seen))
	v4, v6 := ln4.Addr().String(), ln6.Addr().String()
	for _, tc := range []struct {
		url, host, uri string
	}{
		{"ws://" + v6 + "/a%2Fb/c%20d?x=%20y&z=%2F#", "", ""}, // a fragment: refused below
		{"ws://" + v6 + "/a%2Fb/c%20d?x=%20y&z=%2F", v6, "/a%2Fb/c%20d?x=%20y&z=%2F"},
		{"http://" + v6 + "?only=query", v6, "/?only=query"},
		{"WS://" + v4 + "/%E2%82%AC/ü?q=%E2%82%AC", v4, "/%E2%82%AC/%C3%BC?q=%E2%82%AC"},
		{"ws://" + v4, v4, "/"},
		{"ws://" + v4 + "/p;a=b?", v4, "/p;a=b?"},
		{"HTTP://" + v4 + "//double//slash", v4, "//double//slash"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := wsclient.Run(testCtx(t), tc.url, echoText, options())
			if tc.uri == "" {
				if err == nil || !strings.Contains(err.Error(), "fragment") {
					t.Fatalf("got %v, want the fragment refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := after(t, seen, "the upgrade request")
			if r.Host != tc.host || r.RequestURI != tc.uri {
				t.Errorf("request %q for host %q, want %q for %q", r.RequestURI, r.Host, tc.uri, tc.host)
			}
		})
	}
}

// TestDialCornerDefaultPorts: without a port, ws:// and http:// dial port
// 80, wss:// and https:// port 443, an http:// proxy port 80; IPv6
// literals keep their brackets in the address NetDial gets. A NetDial
// failure comes back wrapped with the URL (its user information
// redacted) and is not a HandshakeError.
func TestDialCornerDefaultPorts(t *testing.T) {
	for _, tc := range []struct {
		url, proxy, addr string
	}{
		{"ws://[::1]/", "", "[::1]:80"},
		{"wss://[::1]/x", "", "[::1]:443"},
		{"https://Host.Example/", "", "Host.Example:443"},
		{"ws://u:secret@h.example:/", "", "h.example:80"},
		{"wss://h.example:8443/", "", "h.example:8443"},
		{"wss://h.example/", "http://proxy.example", "proxy.example:80"},
		{"ws://h.example/", "http://[::1]", "[::1]:80"},
		{"ws://h.example/", "http://u:p@[::1]:3128", "[::1]:3128"},
	} {
		t.Run(tc.url+" "+tc.proxy, func(t *testing.T) {
			addrs := make(chan string, 1)
			o := options()
			o.NetDial = dcNoDial(addrs)
			if tc.proxy != "" {
				pu, err := url.Parse(tc.proxy)
				if err != nil {
					t.Fatal(err)
				}
				o.Proxy = http.ProxyURL(pu)
			}
			u, resp, err := wsclient.Dial(testCtx(t), tc.url, o)
			if u.Conn != nil || resp != nil || err == nil {
				t.Fatalf("Dial returned %v, %v, %v", u.Conn, resp, err)
			}
			if got := after(t, addrs, "NetDial"); got != tc.addr {
				t.Errorf("NetDial(%q), want %q", got, tc.addr)
			}
			if errors.Is(err, wsclient.ErrHandshake) || !strings.Contains(err.Error(), "not dialing") ||
				!strings.HasPrefix(err.Error(), "wsclient: dial ws") || strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q", err)
			}
		})
	}
}

// TestDialCornerHeaderKeysInAnyCase: Options.Header is an http.Header,
// which may hold keys that are not canonical (net/http sends them as they
// are; gorilla's Dialer copies them). docs/client.md "Options": "extra
// request headers" are sent. Two keys that differ only in case are both
// headers of the request; neither may be dropped. The server is
// gorilla/websocket.
func TestDialCornerHeaderKeysInAnyCase(t *testing.T) {
	ln := dcListen(t, "tcp4")
	seen := make(chan *http.Request, 1)
	dcServe(t, ln, dcGorilla(seen))
	o := options()
	o.Header = http.Header{
		"X-Trace":  {"a"},
		"x-trace":  {"b"},
		"x-single": {"c"},
	}
	if err := wsclient.Run(testCtx(t), "ws://"+ln.Addr().String()+"/", echoText, o); err != nil {
		t.Fatal(err)
	}
	r := after(t, seen, "the upgrade request")
	got := strings.Join(r.Header.Values("X-Trace"), ",")
	if got != "a,b" && got != "b,a" {
		t.Errorf("X-Trace %q at the server, want a and b", got)
	}
	if got := r.Header.Get("X-Single"); got != "c" {
		t.Errorf("X-Single %q", got)
	}
}

// TestDialCornerHeadLimitBoundary: MaxResponseHeaderBytes bounds "the
// status line and the headers together", of the server's answer and of a
// proxy's answer to CONNECT (package doc): a head of exactly that many
// bytes is accepted, with frames right behind it in the same write; one
// byte more fails with ErrResponseHeaderTooLarge, which is not a
// HandshakeError.
func TestDialCornerHeadLimitBoundary(t *testing.T) {
	const limit = wsclient.MaxResponseHeaderBytes
	// pad returns head (ending in CRLF CRLF) grown by a filler header to
	// exactly n bytes.
	pad := func(head string, n int) string {
		const name = "X-Pad: "
		fill := n - len(head) - len(name) - 2
		return strings.TrimSuffix(head, "\r\n") + name + strings.Repeat("p", fill) + "\r\n\r\n"
	}
	hello := string(advFrame(0x81, []byte("hello")))
	for _, tc := range []struct {
		name  string
		proxy bool
		extra int
	}{
		{"server, at the limit", false, 0},
		{"server, one byte over", false, 1},
		{"proxy, at the limit", true, 0},
		{"proxy, one byte over", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				head := pad(switchAnswer(req, ""), limit+tc.extra)
				if len(head) != limit+tc.extra {
					panic("pad")
				}
				io.WriteString(conn, head+hello)
				var r advSrvReport
				advReadClient(br, &r)
				if r.gotClose {
					conn.Write(advClose(1000, ""))
				}
			}
			target := "ws://ws.corner.test/"
			o := options()
			if tc.proxy {
				o.Proxy = http.ProxyURL(advProxy(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
					io.WriteString(conn, pad("HTTP/1.1 200 Connection established\r\n\r\n", limit+tc.extra))
					up, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(conn, switchAnswer(up, "")+hello)
					var r advSrvReport
					advReadClient(br, &r)
					if r.gotClose {
						conn.Write(advClose(1000, ""))
					}
				}))
			} else {
				target = "ws://" + rawServer(t, answer) + "/"
			}
			var got string
			err := wsclient.Run(testCtx(t), target, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				for m := range in.Messages(0) {
					got = m.Text()
					return nil
				}
				return in.Err()
			}, o)
			if tc.extra == 0 {
				if err != nil || got != "hello" {
					t.Fatalf("Run %v, got %q", err, got)
				}
				return
			}
			if !errors.Is(err, wsclient.ErrResponseHeaderTooLarge) || errors.Is(err, wsclient.ErrHandshake) ||
				!strings.HasPrefix(err.Error(), "wsclient: dial "+target+": ") {
				t.Fatalf("got %v, want a wrapped ErrResponseHeaderTooLarge", err)
			}
		})
	}
}

package wsclient_test

// Checks of what the doc comments of package wsclient promise.

import (
	"bufio"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsclient"
)

// gdProxy is a proxy that records each CONNECT request and refuses it
// with 403.
func gdProxy(t *testing.T) (addr string, connects <-chan *http.Request) {
	t.Helper()
	ch := make(chan *http.Request, 4)
	addr = tcpServer(t, func(conn net.Conn) {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		ch <- req
		_, _ = conn.Write([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
	})
	return addr, ch
}

// gdConnect dials through the proxy at proxyURL, which refuses, and
// returns the CONNECT request it got.
func gdConnect(t *testing.T, proxyURL string, connects <-chan *http.Request) *http.Request {
	t.Helper()
	pu, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	o := options()
	o.Proxy = http.ProxyURL(pu)
	_, _, err = wsclient.Dial(testCtx(t), "ws://server.invalid:8080/", o)
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || !he.Proxy || he.StatusCode != http.StatusForbidden {
		t.Fatalf("Dial = %v, want the proxy's refusal", err)
	}
	return after(t, connects, "the CONNECT request")
}

// Options.Proxy: Dial sends Proxy-Authorization (Basic) when the proxy URL
// has user information, either part possibly empty ("http://:secret@proxy",
// "http://@proxy").
func TestGodocProxyAuthorizationWithEmptyUserInformation(t *testing.T) {
	addr, connects := gdProxy(t)
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for userinfo, want := range map[string]string{":secret@": basic(":secret"), "@": basic(":")} {
		c := gdConnect(t, "http://"+userinfo+addr, connects)
		if got := c.Header.Get("Proxy-Authorization"); got != want {
			t.Errorf("proxy URL http://%s…: Proxy-Authorization %q, want %q", userinfo, got, want)
		}
	}
}

// Options.Proxy: with a user name, Proxy-Authorization is Basic with the
// URL's user name and password (empty when there is none); without user
// information there is none. The CONNECT target is the server's host:port.
func TestGodocProxyAuthorizationWithAUserName(t *testing.T) {
	addr, connects := gdProxy(t)
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ userinfo, want string }{
		{"ann:pw@", basic("ann:pw")},
		{"ann@", basic("ann:")},
		{"", ""},
	} {
		c := gdConnect(t, "http://"+tc.userinfo+addr, connects)
		if got := c.Header.Get("Proxy-Authorization"); got != tc.want {
			t.Errorf("proxy URL http://%s…: Proxy-Authorization %q, want %q", tc.userinfo, got, tc.want)
		}
		if c.Method != http.MethodConnect || c.RequestURI != "server.invalid:8080" {
			t.Errorf("%s %s, want CONNECT server.invalid:8080", c.Method, c.RequestURI)
		}
	}
}

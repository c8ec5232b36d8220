package wsclient

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// proxyAddr returns the host:port to dial for an http:// proxy.
func proxyAddr(u *url.URL) (string, error) {
	if u.Scheme != "http" {
		return "", fmt.Errorf("proxy %s: scheme %q is not supported (only http:// proxies)", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("proxy %s has no host", u.Redacted())
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80"), nil
	}
	return u.Host, nil
}

// connectTunnel asks the proxy at the other end of conn for a tunnel to
// target with an HTTP CONNECT request (RFC 9110 §9.3.6) and returns the
// connection to use from then on.
func connectTunnel(conn net.Conn, target string, proxyURL *url.URL) (net.Conn, *http.Response, error) {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: make(http.Header),
	}
	if u := proxyURL.User; u != nil {
		pass, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	if err := req.Write(conn); err != nil {
		return nil, nil, fmt.Errorf("proxy %s: send CONNECT: %w", proxyURL.Redacted(), err)
	}
	resp, br, err := readResponse(conn, req)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy %s: read CONNECT response: %w", proxyURL.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, resp, refusal(resp, true)
	}
	if n := br.Buffered(); n > 0 {
		// The tunnel's first bytes came with the proxy's answer.
		b, _ := br.Peek(n)
		return &prefixConn{Conn: conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)}, nil, nil
	}
	return conn, nil, nil
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite shuts the sending side, as a TCP connection's does, so that
// the closing handshake can wait for the server to close first (RFC 6455
// §7.1.1) through a tunnel as without one.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

package wsclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/colibri-ws/colibri/internal/token"
	"github.com/colibri-ws/colibri/wsconn"
)

// DefaultHandshakeTimeout bounds an opening handshake (dialing, proxy
// tunnel, TLS and the HTTP upgrade) when Options.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 30 * time.Second

// MaxResponseHeaderBytes bounds the head of the server's answer, and of a
// proxy's answer to CONNECT: the status line and the headers together. A
// longer one fails Dial with ErrResponseHeaderTooLarge rather than being
// buffered for the whole handshake timeout. It is the limit colibri's
// server (net/http's DefaultMaxHeaderBytes) puts on requests.
const MaxResponseHeaderBytes = 1 << 20

// Options configures Dial and Run. The zero value, and a nil *Options, mean
// the documented defaults. Options may be shared by many dials.
type Options struct {
	// Header holds extra headers for the handshake request, such as
	// Authorization, Cookie or Origin. A "Host" entry replaces the host
	// sent to the server. The headers of the handshake itself (Upgrade,
	// Connection, Sec-WebSocket-Key, -Version, -Protocol and -Extensions)
	// are set by Dial and replace any given here. Default none.
	Header http.Header

	// Subprotocols are offered to the server in order of preference
	// (Sec-WebSocket-Protocol, RFC 6455 §1.9). The server's choice is
	// Upgraded.Subprotocol and Session.Subprotocol; an answer naming one
	// that was not offered fails the handshake. Each must be a token,
	// offered once (RFC 6455 §4.1): Dial refuses others before dialing.
	// Default none.
	Subprotocols []string

	// Extensions are offered to the server in Sec-WebSocket-Extensions
	// (RFC 6455 §9), in order of preference. The ones it accepts are
	// Upgraded.Extensions and Session.Extensions; an answer accepting an
	// extension that was not offered (names are compared exactly), or one
	// extension twice, fails the handshake. Dial only negotiates: offer
	// only extensions that the connection serving the result implements.
	// For permessage-deflate, which wsconn implements, set
	// Config.Compression; an offer of it here replaces the one Compression
	// makes (to add client_max_window_bits, say; the client then
	// compresses with the window the server answers, or with the one it
	// offered when the answer names none, as RFC 7692 §7.1.2.2 has it;
	// an answer with a larger window than offered fails the handshake).
	// Default none.
	Extensions []wsconn.Extension

	// TLSConfig is used for wss:// URLs. Dial works on a clone: when
	// ServerName is empty it is set to the URL's host name, and NextProtos
	// is always "http/1.1", since the WebSocket handshake needs HTTP/1.1.
	// Default: a config with the system roots.
	TLSConfig *tls.Config

	// HandshakeTimeout bounds the whole opening handshake: dialing, the
	// proxy tunnel, TLS and the HTTP upgrade. It does not bound the
	// connection that follows. Default DefaultHandshakeTimeout (30 s);
	// negative: only the context bounds it.
	HandshakeTimeout time.Duration

	// Proxy returns the URL of the proxy for a request, or nil for none,
	// like http.Transport.Proxy. The request it receives has the scheme
	// "http" for ws:// URLs and "https" for wss:// URLs, so that
	// http.ProxyFromEnvironment picks HTTP_PROXY or HTTPS_PROXY as it does
	// for plain HTTP. Only http:// proxies are supported: Dial asks them for
	// a tunnel with CONNECT (for ws:// and wss:// alike) and sends
	// Proxy-Authorization (Basic) when the proxy URL has user information
	// (user name and password, either of them possibly empty).
	//
	// Default (nil): http.ProxyFromEnvironment, which, like net/http,
	// ignores requests to localhost and loopback addresses and reads the
	// environment only once per process. To use no proxy at all, set a
	// function that returns nil, nil.
	Proxy func(*http.Request) (*url.URL, error)

	// NetDial opens the transport to the server, or to the proxy when
	// there is one; network is "tcp" and addr is host:port. Use it to dial
	// through a custom resolver or an in-memory connection (see
	// wstest.Server.NetDial). Default: a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Config tunes the connection that Run serves: keep-alive pings,
	// frame and message size limits, timeouts, logger. Dial reads only its
	// Compression: when enabled, Dial offers permessage-deflate (RFC 7692)
	// after the Extensions, unless they already offer it, and checks the
	// server's answer. Serve the result with the same Config. Default: the
	// wsconn.Config defaults (no compression).
	Config *wsconn.Config
}

// Dial opens a WebSocket connection to rawURL (ws:// or wss://; http://
// and https:// are taken as their WebSocket counterparts) and performs the
// opening handshake of RFC 6455 §4.1. ctx bounds the handshake only, as
// does Options.HandshakeTimeout.
//
// The result is ready for wsconn.Serve, which owns it from there; its
// Client field is set, so every frame colibri sends is masked with a fresh
// random key and frames from the server must not be masked (RFC 6455 §5.1).
// The *http.Response is the server's 101 answer, with its headers and
// cookies; its Body is empty.
//
// When the server or the proxy answers with anything but a valid switch to
// WebSocket, the error is a *HandshakeError (it matches ErrHandshake) and
// the response is returned as well, its Body reading the first
// MaxErrorBody bytes of the answer. User information in the URL is sent as
// Basic authorization unless Options.Header has an Authorization entry.
// Redirects are not followed: a 3xx answer is a HandshakeError.
func Dial(ctx context.Context, rawURL string, opts *Options) (wsconn.Upgraded, *http.Response, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	req, target, secure, err := newRequest(rawURL, &o)
	if err != nil {
		return wsconn.Upgraded{}, nil, err
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		cause := fmt.Errorf("handshake took longer than %v: %w", o.HandshakeTimeout, context.DeadlineExceeded)
		ctx, cancel = context.WithTimeoutCause(ctx, o.HandshakeTimeout, cause)
		defer cancel()
	}
	d := dialer{opts: &o, req: req.WithContext(ctx), target: target, secure: secure}
	u, resp, err := d.dial(ctx)
	if err != nil {
		if _, ok := errors.AsType[*HandshakeError](err); !ok {
			err = fmt.Errorf("wsclient: dial %s: %w", redacted(req.URL, secure), err)
		}
		return wsconn.Upgraded{}, resp, err
	}
	return u, resp, nil
}

// newRequest builds the handshake request for rawURL. target is the
// host:port to reach; secure reports a wss:// URL.
func newRequest(rawURL string, o *Options) (req *http.Request, target string, secure bool, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The url.Error would repeat the URL, password included.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, "", false, fmt.Errorf("wsclient: invalid URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme, secure = "https", true
	default:
		return nil, "", false, fmt.Errorf("wsclient: URL %q: scheme must be ws or wss", u.Redacted())
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, "", false, fmt.Errorf("wsclient: URL %q has no host", u.Redacted())
	}
	if u.Fragment != "" || strings.Contains(rawURL, "#") {
		// RFC 6455 §3: fragment identifiers are meaningless in WebSocket URIs.
		return nil, "", false, fmt.Errorf("wsclient: URL %q: a WebSocket URL may not have a fragment", u.Redacted())
	}
	target = u.Host
	if u.Port() == "" {
		port := "80"
		if secure {
			port = "443"
		}
		target = net.JoinHostPort(u.Hostname(), port)
	}

	key := make([]byte, 16)
	_, _ = rand.Read(key)
	h := make(http.Header, len(o.Header)+6)
	for k, v := range o.Header {
		ck := http.CanonicalHeaderKey(k) // "x-trace" and "X-Trace" add up
		h[ck] = append(h[ck], v...)
	}
	host := u.Host
	if v := h.Get("Host"); v != "" {
		host = v
	}
	h.Del("Host")
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	h.Set("Sec-WebSocket-Version", "13")
	h.Del("Sec-WebSocket-Protocol")
	if len(o.Subprotocols) > 0 {
		for i, p := range o.Subprotocols {
			// RFC 6455 §4.1: each a token ("a, b" would offer two), none
			// repeated.
			if !token.Valid(p) {
				return nil, "", false, fmt.Errorf("wsclient: subprotocol %q is not a token", p)
			}
			if slices.Contains(o.Subprotocols[:i], p) {
				return nil, "", false, fmt.Errorf("wsclient: subprotocol %q offered twice", p)
			}
		}
		h.Set("Sec-WebSocket-Protocol", strings.Join(o.Subprotocols, ", "))
	}
	h.Del("Sec-WebSocket-Extensions")
	if exts := offers(o); len(exts) > 0 {
		v, err := formatOffers(exts)
		if err != nil {
			return nil, "", false, err
		}
		h.Set("Sec-WebSocket-Extensions", v)
	}
	if u.User != nil && h.Get("Authorization") == "" {
		pass, _ := u.User.Password()
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)))
	}
	u.User = nil
	req = &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       host,
	}
	return req, target, secure, nil
}

// redacted renders u for error messages with its WebSocket scheme.
func redacted(u *url.URL, secure bool) string {
	c := *u
	c.Scheme = "ws"
	if secure {
		c.Scheme = "wss"
	}
	return c.Redacted()
}

// dialer holds the state of one Dial.
type dialer struct {
	opts   *Options
	req    *http.Request
	target string
	secure bool
}

func (d *dialer) dial(ctx context.Context) (wsconn.Upgraded, *http.Response, error) {
	proxyFunc := d.opts.Proxy
	if proxyFunc == nil {
		proxyFunc = http.ProxyFromEnvironment
	}
	proxyURL, err := proxyFunc(d.req)
	if err != nil {
		return wsconn.Upgraded{}, nil, fmt.Errorf("proxy: %w", err)
	}
	addr := d.target
	if proxyURL != nil {
		if addr, err = proxyAddr(proxyURL); err != nil {
			return wsconn.Upgraded{}, nil, err
		}
	}
	netDial := d.opts.NetDial
	if netDial == nil {
		netDial = (&net.Dialer{}).DialContext
	}
	conn, err := netDial(ctx, "tcp", addr)
	if err == nil && conn == nil {
		err = errors.New("wsclient: NetDial returned neither a connection nor an error")
	}
	if err != nil {
		return wsconn.Upgraded{}, nil, ctxErr(ctx, err)
	}
	u, resp, err := d.handshake(ctx, conn, proxyURL)
	if err != nil {
		_ = conn.Close()
		if u.Conn != nil && u.Conn != conn {
			_ = u.Conn.Close()
		}
		return wsconn.Upgraded{}, resp, ctxErr(ctx, err)
	}
	return u, resp, nil
}

// ctxErr reports the context's cause instead of the I/O error it provoked,
// since "i/o timeout" says less than "handshake took longer than 30s".
// Once the deadline has passed, any error is the timeout's doing: a read
// cut short inside a header line surfaces as a malformed header, not as
// os.ErrDeadlineExceeded.
func ctxErr(ctx context.Context, err error) error {
	if _, ok := errors.AsType[*HandshakeError](err); ok {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		// The socket deadline and the context's timer expire together;
		// let the context catch up.
		<-ctx.Done()
	}
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

// handshake runs everything after the transport is open: the proxy
// tunnel, TLS and the HTTP upgrade. On error the returned Upgraded holds
// the outermost connection opened so far, for closing.
func (d *dialer) handshake(ctx context.Context, conn net.Conn, proxyURL *url.URL) (wsconn.Upgraded, *http.Response, error) {
	// Blocking reads and writes end when the context does.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// The raw connection, which conn wraps once the tunnel and TLS are
	// up: a deadline on it ends their reads and writes too.
	raw := conn
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if proxyURL != nil {
		tunnel, resp, err := connectTunnel(conn, d.target, proxyURL)
		if err != nil {
			return wsconn.Upgraded{}, resp, err
		}
		conn = tunnel
	}
	if d.secure {
		tc := tls.Client(conn, tlsConfig(d.opts.TLSConfig, d.target))
		if err := tc.HandshakeContext(ctx); err != nil {
			return wsconn.Upgraded{Conn: tc}, nil, fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}

	if err := d.req.Write(conn); err != nil {
		return wsconn.Upgraded{Conn: conn}, nil, fmt.Errorf("send handshake: %w", err)
	}
	resp, br, err := readResponse(conn, d.req)
	if err != nil {
		return wsconn.Upgraded{Conn: conn}, nil, fmt.Errorf("read handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return wsconn.Upgraded{Conn: conn}, resp, refusal(resp, false)
	}
	resp.Body = http.NoBody
	proto, reason := checkResponse(d.req, resp, d.opts)
	var exts []wsconn.Extension
	var cause error
	if reason == "" {
		exts, reason, cause = checkExtensions(resp.Header, offers(d.opts))
	}
	if reason != "" {
		return wsconn.Upgraded{Conn: conn}, resp, &HandshakeError{
			StatusCode: resp.StatusCode, Status: resp.Status, Header: resp.Header, Reason: reason, Err: cause,
		}
	}
	if !stop() {
		return wsconn.Upgraded{Conn: conn}, nil, context.Cause(ctx)
	}
	_ = conn.SetDeadline(time.Time{})
	u := wsconn.Upgraded{
		Conn:        conn,
		Request:     d.req,
		Subprotocol: proto,
		Extensions:  exts,
		Client:      true,
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		u.Buffered = bytes.Clone(b)
	}
	return u, resp, nil
}

// readResponse reads the answer to req from conn, its head bounded by
// MaxResponseHeaderBytes, and returns the reader that holds what follows
// the head (a body, or the first frames).
func readResponse(conn net.Conn, req *http.Request) (*http.Response, *bufio.Reader, error) {
	lr := &headLimit{r: conn, left: MaxResponseHeaderBytes}
	br := bufio.NewReader(lr)
	resp, err := http.ReadResponse(br, req)
	// RFC 9110 §15.2: interim answers (100 Continue, 103 Early Hints) may
	// come before the final one; their heads count against the same bound.
	for err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil && lr.left <= 0 {
		// What ReadResponse reports is whatever the cut left it with, such
		// as a malformed header line.
		err = fmt.Errorf("%w (over %d bytes)", ErrResponseHeaderTooLarge, MaxResponseHeaderBytes)
	}
	lr.left = -1
	return resp, br, err
}

// headLimit reads from r at most left bytes, while left is not negative.
// It counts what the buffered reader above it reads ahead as well, at most
// one buffer beyond the head.
type headLimit struct {
	r    io.Reader
	left int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	switch {
	case l.left < 0:
		return l.r.Read(p)
	case l.left == 0:
		return 0, ErrResponseHeaderTooLarge
	case int64(len(p)) > l.left:
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// refusal reads up to MaxErrorBody bytes of a refusal's body into a
// HandshakeError and makes resp.Body read them again. When the handshake's
// time runs out before the body has come, the error is the timeout: a
// refusal cut short is no answer to report.
func refusal(resp *http.Response, proxy bool) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("read the body of a %s answer: %w", resp.Status, err)
	}
	return &HandshakeError{
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Header:     resp.Header,
		Body:       body,
		Proxy:      proxy,
	}
}

func tlsConfig(base *tls.Config, target string) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(target)
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

// acceptGUID is the value RFC 6455 §1.3 appends to the key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptFor returns the Sec-WebSocket-Accept value that answers key.
func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// checkResponse validates a 101 answer as RFC 6455 §4.1 asks of a client,
// extensions aside, and returns the negotiated subprotocol or the reason
// the answer is refused.
func checkResponse(req *http.Request, resp *http.Response, o *Options) (proto, reason string) {
	h := resp.Header
	// Upgrade holds protocols, which may carry a version ("h2c/1"); only
	// "websocket" without one names this upgrade.
	if reason := needToken(h, "Upgrade", "websocket", isProtocol); reason != "" {
		return "", reason
	}
	if reason := needToken(h, "Connection", "Upgrade", token.Valid); reason != "" {
		return "", reason
	}
	want := acceptFor(req.Header.Get("Sec-WebSocket-Key"))
	if got := h.Values("Sec-WebSocket-Accept"); len(got) != 1 || strings.TrimSpace(got[0]) != want {
		return "", fmt.Sprintf("Sec-WebSocket-Accept is %q, want %q", strings.Join(got, ", "), want)
	}

	protos, ok := tokenList(h, "Sec-WebSocket-Protocol", token.Valid)
	switch {
	case !ok:
		return "", fmt.Sprintf("malformed Sec-WebSocket-Protocol header %q", headerValue(h, "Sec-WebSocket-Protocol"))
	case len(protos) > 1:
		return "", fmt.Sprintf("server chose several subprotocols %q", protos)
	case len(protos) == 1:
		proto = protos[0]
		if !slices.Contains(o.Subprotocols, proto) {
			return "", fmt.Sprintf("server chose subprotocol %q, which was not offered (offered %q)", proto, o.Subprotocols)
		}
	}
	return proto, ""
}

// needToken returns why header name, a comma-separated list whose
// elements must pass valid, does not hold token (compared
// case-insensitively), or "" when it does. A list with an invalid element
// fails even if it holds token as well: "websocket;v=13" is not websocket,
// and a server that sends it may mean something else by its other values.
func needToken(h http.Header, name, token string, valid func(string) bool) string {
	list, ok := tokenList(h, name, valid)
	switch {
	case !ok:
		return fmt.Sprintf("malformed %s header %q, want %s", name, headerValue(h, name), token)
	case !slices.ContainsFunc(list, func(t string) bool { return strings.EqualFold(t, token) }):
		return fmt.Sprintf("%s header is %q, want %s", name, headerValue(h, name), token)
	}
	return ""
}

// tokenList returns the elements of every value of header name, each a
// comma-separated list (RFC 9110 §5.6.1), or ok false when an element
// fails valid. Empty elements are skipped, as §5.6.1.2 asks of recipients.
func tokenList(h http.Header, name string, valid func(string) bool) (list []string, ok bool) {
	for _, v := range h.Values(name) {
		for elem := range strings.SplitSeq(v, ",") {
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue
			}
			if !valid(elem) {
				return nil, false
			}
			list = append(list, elem)
		}
	}
	return list, true
}

// isProtocol reports whether s is a protocol of the Upgrade header: a
// token, optionally followed by "/" and a version token (RFC 9110 §7.8).
func isProtocol(s string) bool {
	name, version, found := strings.Cut(s, "/")
	return token.Valid(name) && (!found || token.Valid(version))
}

// headerValue returns the values of header name joined as one list, for
// error messages.
func headerValue(h http.Header, name string) string {
	return strings.Join(h.Values(name), ", ")
}

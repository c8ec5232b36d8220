// Package h2test helps tests open WebSockets over HTTP/2 (RFC 8441): a
// self-signed certificate made on the spot, a TLS server that speaks
// HTTP/1.1 and HTTP/2, an HTTP/2 client that counts
// the TLS connections it dials, and a small WebSocket client over an
// extended CONNECT stream. The client frames with gobwas/ws, not with
// wsconn, so that tests check colibri against an independent peer.
//
// Go's own http.Transport cannot send an extended CONNECT in Go 1.26: it
// and http.ClientConn refuse the ":protocol" header as an invalid field
// name before the request reaches their HTTP/2 code. golang.org/x/net/http2's
// Transport sends it, and waits for the server's
// SETTINGS_ENABLE_CONNECT_PROTOCOL first; it is deprecated in favour of
// http.Transport, which is what cannot do this.
package h2test

//lint:file-ignore SA1019 x/net/http2.Transport is the only Go client that sends an extended CONNECT (see the package doc)

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/net/http2"
)

// Server returns a server for h with TLS, HTTP/1.1 and HTTP/2 on and its
// error log discarded, the loopback listener it is to serve on (with
// ServeTLS(ln, "", "")), and a pool that trusts its certificate.
func Server(tb testing.TB, h http.Handler) (*http.Server, net.Listener, *x509.CertPool) {
	tb.Helper()
	cert, pool := Certificate(tb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{
		Handler:   h,
		Protocols: &protos,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	return srv, ln, pool
}

// Certificate makes a self-signed certificate for 127.0.0.1 and localhost,
// valid for an hour, and a pool that trusts it.
func Certificate(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "colibri test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// WritePEM writes cert and its key as PEM files in a temporary directory
// of tb, for servers configured with file names.
func WritePEM(tb testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	tb.Helper()
	dir := tb.TempDir()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: cert.Certificate[0]},
		keyFile:  {Type: "PRIVATE KEY", Bytes: key},
	} {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return certFile, keyFile
}

// Client is an HTTP/2-only client that trusts one pool and counts the TLS
// connections it dials. Its requests and WebSockets to one host share a
// connection while it has room for streams.
type Client struct {
	// Transport is the HTTP/2 transport; HTTP is a client on it.
	Transport *http2.Transport
	HTTP      *http.Client
	dials     atomic.Int32
}

// NewClient returns a Client trusting pool.
func NewClient(pool *x509.CertPool) *Client {
	c := &Client{}
	c.Transport = &http2.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			c.dials.Add(1)
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, network, addr)
		},
	}
	c.HTTP = &http.Client{Transport: c.Transport}
	return c
}

// Dials returns how many TLS connections the client has dialed.
func (c *Client) Dials() int { return int(c.dials.Load()) }

// Close closes the client's idle connections; call it once every Socket
// is closed.
func (c *Client) Close() { c.Transport.CloseIdleConnections() }

// Dial opens a WebSocket on url ("https://host/path") with an extended
// CONNECT carrying header. A refused handshake returns an error and the
// response, whose body is closed.
func (c *Client) Dial(ctx context.Context, url string, header http.Header) (*Socket, *http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, url, pr)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header[":protocol"] = []string{"websocket"}
	if req.Header.Get("Sec-WebSocket-Version") == "" {
		req.Header.Set("Sec-WebSocket-Version", "13")
	}
	resp, err := c.Transport.RoundTrip(req)
	if err != nil {
		pw.Close()
		cancel()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		pw.Close()
		cancel()
		return nil, resp, fmt.Errorf("h2test: handshake answered %d: %s", resp.StatusCode, body)
	}
	return &Socket{Response: resp, w: pw, r: bufio.NewReader(resp.Body), body: resp.Body, cancel: cancel}, resp, nil
}

// Socket is the client end of a WebSocket over an HTTP/2 stream. It is
// used by one goroutine at a time.
type Socket struct {
	// Response is the handshake's 200 response.
	Response *http.Response

	w      *io.PipeWriter
	r      *bufio.Reader
	body   io.ReadCloser
	cancel context.CancelFunc
}

// CloseError is the CLOSE frame a Socket received.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("h2test: closed %d %q", e.Code, e.Reason) }

// WriteFrame sends one frame, masked as a client must; f is not modified.
func (s *Socket) WriteFrame(f ws.Frame) error {
	return ws.WriteFrame(s.w, ws.MaskFrame(f))
}

// WriteText sends one text message.
func (s *Socket) WriteText(text string) error {
	return s.WriteFrame(ws.NewTextFrame([]byte(text)))
}

// WriteRaw writes bytes to the stream as they are.
func (s *Socket) WriteRaw(p []byte) error {
	_, err := s.w.Write(p)
	return err
}

// maxFrame bounds the frames a Socket reads.
const maxFrame = 64 << 20

// ReadFrame reads the next frame from the server, whatever it is.
func (s *Socket) ReadFrame() (ws.Frame, error) {
	h, err := ws.ReadHeader(s.r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > maxFrame {
		return ws.Frame{}, fmt.Errorf("h2test: %d-byte frame", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(s.r, p); err != nil {
		return ws.Frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

// ReadMessage reads the next data message, answering PINGs on the way. A
// CLOSE frame from the server is answered with the same code and returned
// as a *CloseError.
func (s *Socket) ReadMessage() (ws.OpCode, []byte, error) {
	var op ws.OpCode
	var msg []byte
	for {
		f, err := s.ReadFrame()
		if err != nil {
			return 0, nil, err
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			if err := s.WriteFrame(ws.NewPongFrame(f.Payload)); err != nil {
				return 0, nil, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.Payload)
			_ = s.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
			return 0, nil, &CloseError{Code: code, Reason: reason}
		case ws.OpContinuation:
		default:
			op = f.Header.OpCode
		}
		msg = append(msg, f.Payload...)
		if f.Header.Fin {
			return op, msg, nil
		}
	}
}

// Close starts the closing handshake with code and reason, waits for the
// server's CLOSE (skipping data) and ends the stream. It returns the
// server's close frame.
func (s *Socket) Close(code ws.StatusCode, reason string) (*CloseError, error) {
	defer s.CloseNow()
	if err := s.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))); err != nil {
		return nil, err
	}
	for {
		f, err := s.ReadFrame()
		if err != nil {
			return nil, err
		}
		if f.Header.OpCode == ws.OpClose {
			c, r := ws.ParseCloseFrameData(f.Payload)
			return &CloseError{Code: c, Reason: r}, nil
		}
	}
}

// AwaitEnd reads until the server ends the stream and reports how: nil
// for END_STREAM, or the error that ended it.
func (s *Socket) AwaitEnd() error {
	_, err := io.Copy(io.Discard, s.r)
	return err
}

// CloseNow ends the stream from the client's side without a handshake.
func (s *Socket) CloseNow() {
	s.w.Close()
	s.body.Close()
	s.cancel()
}

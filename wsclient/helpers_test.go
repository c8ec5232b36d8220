package wsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
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

// The servers in this file were written by nobody here: gorilla/websocket
// and coder/websocket, driven by a small command language so that one test
// runs against both. A text message is echoed, except:
//
//	ping:P            the server sends a PING and answers "pong:P" once the PONG is back
//	close:CODE:REASON the server starts the closing handshake with CODE and REASON
//	frag:N            the server sends N KiB of "x" as one message in several frames
//
// Binary messages are always echoed. When the client closes, the server
// reports the code and reason it received on closes.

// closeInfo is a close a server received.
type closeInfo struct {
	code   int
	reason string
}

// peer is a third-party echo server under test.
type peer struct {
	name   string
	url    string
	closes chan closeInfo
	srv    *httptest.Server
}

// peers starts one gorilla and one coder server on 127.0.0.1.
func peers(t *testing.T) []*peer {
	return []*peer{gorillaPeer(t, false), coderPeer(t)}
}

// each runs f as a subtest for every peer.
func each(t *testing.T, f func(t *testing.T, p *peer)) {
	for _, p := range peers(t) {
		t.Run(p.name, func(t *testing.T) { f(t, p) })
	}
}

// startPeer serves h with pServer (with TLS when useTLS): at cleanup, the
// upgraded connections httptest no longer tracks are closed and their
// handlers waited for.
func startPeer(t *testing.T, name string, useTLS bool, h func(w http.ResponseWriter, r *http.Request, p *peer)) *peer {
	p := &peer{name: name, closes: make(chan closeInfo, 4)}
	var tlsCfg *tls.Config
	if useTLS {
		tlsCfg = &tls.Config{}
	}
	p.srv = pServer(t, func(w http.ResponseWriter, r *http.Request) { h(w, r, p) }, tlsCfg)
	p.url = wsURL(p.srv)
	return p
}

func gorillaPeer(t *testing.T, useTLS bool) *peer {
	return startPeer(t, "gorilla", useTLS, func(w http.ResponseWriter, r *http.Request, p *peer) {
		// A small write buffer makes gorilla flush a frame per KiB.
		// Compression is taken when the client offers it.
		up := gorilla.Upgrader{WriteBufferSize: 1024, EnableCompression: true}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(17 << 20)
		c.SetPongHandler(func(data string) error {
			return c.WriteMessage(gorilla.TextMessage, []byte("pong:"+data))
		})
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				var ce *gorilla.CloseError
				if errors.As(err, &ce) {
					p.closes <- closeInfo{ce.Code, ce.Text}
				}
				return
			}
			cmd, arg, _ := strings.Cut(string(msg), ":")
			switch {
			case typ == gorilla.TextMessage && cmd == "ping":
				err = c.WriteControl(gorilla.PingMessage, []byte(arg), time.Now().Add(5*time.Second))
			case typ == gorilla.TextMessage && cmd == "close":
				code, reason := parseClose(arg)
				err = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(code, reason))
			case typ == gorilla.TextMessage && cmd == "frag":
				err = writeFragments(arg, func() (io.WriteCloser, error) { return c.NextWriter(gorilla.TextMessage) })
			default:
				err = c.WriteMessage(typ, msg)
			}
			if err != nil {
				return
			}
		}
	})
}

func coderPeer(t *testing.T) *peer {
	return startPeer(t, "coder", false, func(w http.ResponseWriter, r *http.Request, p *peer) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: coder.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(17 << 20)
		ctx := r.Context()
		// coder's Ping waits for a PONG that only a concurrent Read sees,
		// so pings run beside the read loop.
		var pings sync.WaitGroup
		defer pings.Wait()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				var ce coder.CloseError
				if errors.As(err, &ce) {
					p.closes <- closeInfo{int(ce.Code), ce.Reason}
				}
				return
			}
			cmd, arg, _ := strings.Cut(string(msg), ":")
			switch {
			case typ == coder.MessageText && cmd == "ping":
				pings.Go(func() {
					if c.Ping(ctx) == nil {
						_ = c.Write(ctx, coder.MessageText, []byte("pong:"+arg))
					}
				})
			case typ == coder.MessageText && cmd == "close":
				code, reason := parseClose(arg)
				_ = c.Close(coder.StatusCode(code), reason)
				return
			case typ == coder.MessageText && cmd == "frag":
				err = writeFragments(arg, func() (io.WriteCloser, error) { return c.Writer(ctx, coder.MessageText) })
			default:
				err = c.Write(ctx, typ, msg)
			}
			if err != nil {
				return
			}
		}
	})
}

func parseClose(arg string) (int, string) {
	codeText, reason, _ := strings.Cut(arg, ":")
	code, _ := strconv.Atoi(codeText)
	return code, reason
}

// writeFragments writes n KiB of "x" through a message writer, one KiB per
// Write, which both libraries turn into separate frames.
func writeFragments(arg string, open func() (io.WriteCloser, error)) error {
	n, _ := strconv.Atoi(arg)
	w, err := open()
	if err != nil {
		return err
	}
	chunk := strings.Repeat("x", 1024)
	for range n {
		if _, err := io.WriteString(w, chunk); err != nil {
			return err
		}
	}
	return w.Close()
}

// certPool trusts the certificate of an httptest TLS server.
func certPool(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

var quiet = slog.New(slog.DiscardHandler)

// options returns the options most tests use: no proxy, whatever the
// environment says, and a connection that logs nothing.
func options() *wsclient.Options {
	return &wsclient.Options{
		Proxy:  func(*http.Request) (*url.URL, error) { return nil, nil },
		Config: &wsconn.Config{Logger: quiet},
	}
}

// ---- a raw server for handshake tests ----

// rawServer accepts TCP connections on 127.0.0.1 and hands each to f with
// the handshake request already read, so a test can answer with any bytes.
func rawServer(t *testing.T, f func(conn net.Conn, br *bufio.Reader, req *http.Request)) string {
	t.Helper()
	return tcpServer(t, func(conn net.Conn) {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		f(conn, br, req)
	})
}

// tcpServer accepts TCP connections on 127.0.0.1 and serves each with f
// in a goroutine of its own; the test's cleanup closes the listener and
// every connection, and waits for f to return.
func tcpServer(t *testing.T, f func(conn net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				f(conn)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// testCtx returns a context that ends with the test or after ten seconds.
func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// ---- servers and frames for the tests of every file ----

// pServer serves h on 127.0.0.1, with TLS when tlsCfg is not nil (httptest
// adds its certificate), and at cleanup closes the connections that
// handlers hijacked and waits for the handlers.
func pServer(t *testing.T, h http.HandlerFunc, tlsCfg *tls.Config) *httptest.Server {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		h(w, r)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshakes the client fails on purpose
	if tlsCfg != nil {
		srv.TLS = tlsCfg
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

// wsURL is the ws:// or wss:// URL of srv.
func wsURL(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") }

// gorillaEcho is a gorilla/websocket echo handler that accepts
// permessage-deflate when it is offered, for messages up to 1 MiB.
var gorillaEcho = gorillaEchoUpTo(1 << 20)

// gorillaEchoUpTo is gorillaEcho for messages up to limit bytes.
func gorillaEchoUpTo(limit int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		up := gorilla.Upgrader{EnableCompression: true}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(limit)
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

// wireFrame is a frame the client sent, as a raw server read it: the
// header bytes as they were on the wire, the parsed header and the
// unmasked payload.
type wireFrame struct {
	raw []byte
	h   frames.Header
	p   []byte
}

// readWireFrame reads one client frame, keeping its raw header.
func readWireFrame(br *bufio.Reader) (wireFrame, error) {
	var hb [frames.MaxHeaderSize]byte
	if _, err := io.ReadFull(br, hb[:2]); err != nil {
		return wireFrame{}, err
	}
	n := frames.HeaderSize(hb[0], hb[1])
	if _, err := io.ReadFull(br, hb[2:n]); err != nil {
		return wireFrame{}, err
	}
	h, err := frames.ParseHeader(hb[:n])
	if err != nil {
		return wireFrame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(br, p); err != nil {
		return wireFrame{}, err
	}
	if h.Masked {
		frames.Mask(p, h.Mask, 0)
	}
	return wireFrame{raw: bytes.Clone(hb[:n]), h: h, p: p}, nil
}

// pReadFrame reads one frame written by the client and unmasks it.
func pReadFrame(br *bufio.Reader) (frames.Header, []byte, error) {
	f, err := readWireFrame(br)
	return f.h, f.p, err
}

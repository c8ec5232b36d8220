package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// rawtcp is not a WebSocket library: it is the floor under all of them,
// the same echo done over plain TCP with the least framing that still
// carries a message type. Each message is a 4-byte header (the WebSocket
// opcode, then the payload length in 3 bytes, big-endian) and its payload,
// unmasked. A client chooses the endpoint with one byte after connecting
// (rawRouteEcho); that connect is the whole "handshake". There is no
// keep-alive, no close handshake, no UTF-8 check and no limit: whatever a
// WebSocket server spends beyond this is what the protocol and the library
// cost. It serves echo only; the fan-out scenario is not run against it.
//
// The server reads through a 4 KiB bufio.Reader created on a connection's
// first message, so that a small message costs one read system call, as it
// does for the WebSocket servers, and an idle connection holds only its
// goroutine. HTTP requests (the driver's /debug/ endpoints) are told apart
// by their first byte and served by net/http on the same port.

func init() { register(rawTCPServer{}) }

// rawTCP is the floor's name.
const rawTCP = "rawtcp"

// Endpoint selectors: the first byte a raw client sends.
const (
	rawRouteEcho = 0x01
)

// rawHeaderSize is the size of a raw message's header.
const rawHeaderSize = 4

// rawMaxPayload is the largest payload the 3-byte length can carry.
const rawMaxPayload = 1<<24 - 1

type rawTCPServer struct{}

func (rawTCPServer) name() string  { return rawTCP }
func (rawTCPServer) kind() libKind { return floorLib }

func (rawTCPServer) serve(ctx context.Context, ln net.Listener, dbg http.Handler) error {
	httpConns := &connListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: dbg, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpConns) }()

	var wg sync.WaitGroup
	var open sync.Map // net.Conn → struct{}: raw connections, closed on return
	accepted := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			wg.Go(func() {
				var first [1]byte
				if _, err := io.ReadFull(c, first[:]); err != nil {
					c.Close()
					return
				}
				if first[0] != rawRouteEcho {
					// Anything else is an HTTP request: hand the
					// connection, first byte included, to net/http.
					select {
					case httpConns.conns <- &prefixedConn{Conn: c, r: io.MultiReader(bytes.NewReader(first[:]), c)}:
					case <-httpConns.done:
						c.Close()
					}
					return
				}
				open.Store(c, struct{}{})
				defer open.Delete(c)
				defer c.Close()
				_ = rawEcho(c)
			})
		}
	}()
	var err error
	select {
	case err = <-accepted:
	case <-ctx.Done():
	}
	ln.Close()
	if err == nil {
		<-accepted
	}
	close(httpConns.done)
	_ = srv.Close()
	<-served
	open.Range(func(k, _ any) bool {
		k.(net.Conn).Close()
		return true
	})
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// rawEcho writes every message read from c back to it, header and
// payload in one write.
func rawEcho(c net.Conn) error {
	// Wait for the first message without a buffer, as an idle WebSocket
	// connection in the leanest servers does.
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return err
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(first[:]), c), 4096)
	var buf []byte
	for {
		h, err := br.Peek(rawHeaderSize)
		if err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(h) & rawMaxPayload)
		if cap(buf) < rawHeaderSize+n {
			buf = make([]byte, rawHeaderSize+n)
		}
		buf = buf[:rawHeaderSize+n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
}

// rawHeader returns the header of a raw message.
func rawHeader(op byte, n int) [rawHeaderSize]byte {
	var h [rawHeaderSize]byte
	binary.BigEndian.PutUint32(h[:], uint32(op)<<24|uint32(n))
	return h
}

// parseRawHeader splits a raw message header into opcode and length.
func parseRawHeader(h []byte) (op byte, n int) {
	v := binary.BigEndian.Uint32(h)
	return byte(v >> 24), int(v & rawMaxPayload)
}

// connListener is a net.Listener fed with connections accepted elsewhere.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error   { return nil }
func (l *connListener) Addr() net.Addr { return l.addr }

// prefixedConn is a connection whose first bytes were already read: reads
// come from r, which replays them before the rest.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// The load client is the same for every server: a gobwas/ws handshake,
// then raw frame I/O on the TCP connection. Each message the client sends
// is a frame built and masked once, ahead of the measurement, so sending
// costs one write system call and no client CPU beyond it; the server
// still unmasks every frame it reads. Reads go through a bufio.Reader and
// parse only the frame header, so the client does as little as it can and
// is the same for every library.

// dialTimeout bounds one handshake.
const dialTimeout = 10 * time.Second

// errServerClosed reports a close frame from the server.
var errServerClosed = errors.New("server sent a close frame")

// clientConn is the client's end of one WebSocket connection. It is used by
// one goroutine at a time.
type clientConn struct {
	raw     bool // the rawtcp floor's protocol, not WebSocket
	nc      net.Conn
	br      *bufio.Reader // created on first read: idle connections hold none
	bufSize int
	ctl     [125]byte // payload of a control frame
}

// dial opens a WebSocket connection to path on addr, or with raw a
// connection speaking the rawtcp floor's protocol. bufSize is the size of
// the read buffer it allocates on first read.
func dial(ctx context.Context, addr string, raw bool, path string, bufSize int) (*clientConn, error) {
	if raw {
		return dialRaw(ctx, addr, path, bufSize)
	}
	d := ws.Dialer{Timeout: dialTimeout}
	nc, br, _, err := d.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	// br is non-nil only when the server wrote right after the handshake;
	// it already wraps nc, so keep reading through it.
	return &clientConn{nc: nc, br: br, bufSize: bufSize}, nil
}

// dialRaw opens a rawtcp connection to the endpoint named by path.
func dialRaw(ctx context.Context, addr, path string, bufSize int) (*clientConn, error) {
	if path != "/echo" {
		return nil, fmt.Errorf("%s serves /echo only, not %s", rawTCP, path)
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	if _, err := nc.Write([]byte{rawRouteEcho}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	return &clientConn{raw: true, nc: nc, bufSize: bufSize}, nil
}

// frame returns a complete message of type op carrying payload in c's
// protocol, ready to be written as it is any number of times.
func (c *clientConn) frame(op ws.OpCode, payload []byte) []byte {
	if c.raw {
		h := rawHeader(byte(op), len(payload))
		return append(h[:], payload...)
	}
	return wsFrame(op, payload)
}

// wsFrame returns a complete masked client frame carrying payload, ready
// to be written as it is any number of times.
func wsFrame(op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var b bytes.Buffer
	b.Grow(ws.HeaderSize(h) + len(payload))
	_ = ws.WriteHeader(&b, h) // a bytes.Buffer does not fail
	start := b.Len()
	b.Write(payload)
	out := b.Bytes()
	ws.Cipher(out[start:], h.Mask, 0)
	return out
}

// write sends a frame built by frame.
func (c *clientConn) write(f []byte) error {
	_, err := c.nc.Write(f)
	return err
}

// readMessage reads the next data message. It copies up to len(dst) bytes
// of the payload into dst and discards the rest, answers pings, skips
// pongs, and returns the message's opcode and full length. A close frame
// from the server ends it with errServerClosed.
func (c *clientConn) readMessage(dst []byte) (op ws.OpCode, n int, err error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, c.bufSize)
	}
	if c.raw {
		return c.readRaw(dst)
	}
	for {
		fin, fop, length, err := c.readHeader()
		if err != nil {
			return 0, 0, err
		}
		if fop.IsControl() {
			if err := c.control(fop, length); err != nil {
				return 0, 0, err
			}
			continue
		}
		switch {
		case op == 0 && fop == ws.OpContinuation:
			return 0, 0, errors.New("continuation frame with no message to continue")
		case op != 0 && fop != ws.OpContinuation:
			return 0, 0, fmt.Errorf("new %v frame inside a fragmented message", fop)
		case op == 0:
			op = fop
		}
		if err := c.payload(dst, n, length); err != nil {
			return 0, 0, err
		}
		n += length
		if fin {
			return op, n, nil
		}
	}
}

// readRaw reads the next rawtcp message.
func (c *clientConn) readRaw(dst []byte) (ws.OpCode, int, error) {
	h, err := c.br.Peek(rawHeaderSize)
	if err != nil {
		return 0, 0, err
	}
	op, n := parseRawHeader(h)
	if _, err := c.br.Discard(rawHeaderSize); err != nil {
		return 0, 0, err
	}
	if err := c.payload(dst, 0, n); err != nil {
		return 0, 0, err
	}
	return ws.OpCode(op), n, nil
}

// payload reads length payload bytes, copying those that fall within dst
// at offset off and discarding the rest.
func (c *clientConn) payload(dst []byte, off, length int) error {
	if off < len(dst) {
		k := min(length, len(dst)-off)
		if _, err := io.ReadFull(c.br, dst[off:off+k]); err != nil {
			return err
		}
		length -= k
	}
	_, err := c.br.Discard(length)
	return err
}

// readHeader parses a server frame header from the read buffer.
func (c *clientConn) readHeader() (fin bool, op ws.OpCode, length int, err error) {
	b, err := c.br.Peek(2)
	if err != nil {
		return false, 0, 0, err
	}
	fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return false, 0, 0, errors.New("frame with reserved bits set (compression is meant to be off)")
	}
	op = ws.OpCode(b[0] & 0x0f)
	if b[1]&0x80 != 0 {
		return false, 0, 0, errors.New("masked frame from the server")
	}
	size := 2
	switch b[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if b, err = c.br.Peek(size); err != nil {
		return false, 0, 0, err
	}
	switch size {
	case 2:
		length = int(b[1] & 0x7f)
	case 4:
		length = int(binary.BigEndian.Uint16(b[2:]))
	default:
		l := binary.BigEndian.Uint64(b[2:])
		if l > 1<<30 {
			return false, 0, 0, fmt.Errorf("frame of %d bytes", l)
		}
		length = int(l)
	}
	_, err = c.br.Discard(size)
	return fin, op, length, err
}

// control handles a control frame whose header has been read.
func (c *clientConn) control(op ws.OpCode, length int) error {
	if length > len(c.ctl) {
		return fmt.Errorf("%v frame of %d bytes", op, length)
	}
	p := c.ctl[:length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return err
	}
	switch op {
	case ws.OpPing:
		return c.write(wsFrame(ws.OpPong, p))
	case ws.OpClose:
		if len(p) >= 2 {
			return fmt.Errorf("%w: %d %q", errServerClosed, binary.BigEndian.Uint16(p), p[2:])
		}
		return errServerClosed
	}
	return nil
}

// close sends a normal close frame and closes the TCP connection without
// waiting for the server's reply: the next scenario runs against a new
// server process, and nothing is measured here.
func (c *clientConn) close() {
	if c.raw {
		_ = c.nc.Close()
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write(wsFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	_ = c.nc.Close()
}

// dialMany opens n connections to path with a few dialers in parallel. On
// error it closes what it opened.
func dialMany(ctx context.Context, addr string, raw bool, path string, n, parallel, bufSize int) ([]*clientConn, error) {
	conns := make([]*clientConn, n)
	var (
		next int
		mu   sync.Mutex
		errs = make([]error, parallel)
		wg   sync.WaitGroup
	)
	for w := range parallel {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dial(ctx, addr, raw, path, bufSize)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					mu.Lock()
					next = n // stop the other dialers
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// closeAll closes every connection in conns (nil entries are skipped),
// a few at a time in parallel.
func closeAll(conns []*clientConn) {
	const parallel = 8
	var wg sync.WaitGroup
	for w := range parallel {
		wg.Go(func() {
			for i := w; i < len(conns); i += parallel {
				if conns[i] != nil {
					conns[i].close()
				}
			}
		})
	}
	wg.Wait()
}

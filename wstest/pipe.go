package wstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// pipeBuffer is how many bytes each direction of an in-memory connection
// holds before a writer waits for the reader, roughly what a loopback
// socket buffers. Unlike net.Pipe, whose writes wait for a matching read,
// this lets two peers write at the same time, as they may over TCP.
const pipeBuffer = 1 << 20

// stream is one direction of an in-memory connection.
type stream struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	wclosed bool          // the writing end closed or shut down: EOF once drained
	rclosed bool          // the reading end closed: writes fail
	readers int           // reads blocked waiting for bytes
	changed chan struct{} // closed and replaced whenever the state changes
}

// idleReader reports whether the reading end has read everything and is
// blocked waiting for more, or is closed.
func (s *stream) idleReader() (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rclosed || (s.readers > 0 && s.buf.Len() == 0), s.changed
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

// wake tells waiters the state changed; the caller holds mu.
func (s *stream) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// deadline is a read or write deadline whose expiry can be waited on.
type deadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	expired chan struct{} // closed once the deadline has passed
}

func newDeadline() *deadline { return &deadline{expired: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.expired // the timer fired; wait until it has closed the channel
	}
	d.timer = nil
	select {
	case <-d.expired:
		d.expired = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.expired)
		return
	}
	ch := d.expired
	d.timer = time.AfterFunc(wait, func() { close(ch) })
}

func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}

// memAddr is the address of an in-memory endpoint. It has the host:port
// form of a TCP address, so code that splits r.RemoteAddr keeps working.
type memAddr string

func (memAddr) Network() string  { return "memory" }
func (a memAddr) String() string { return string(a) }

// memConn is one end of an in-memory connection: a net.Conn with
// deadlines and half-close (CloseWrite), without any socket.
type memConn struct {
	in, out       *stream
	local, remote memAddr
	rd, wd        *deadline
	closeOnce     sync.Once
	closed        chan struct{}
}

var _ net.Conn = (*memConn)(nil)

// newMemConns returns the client and server ends of a new in-memory
// connection; server is the address the client dialed, port the client's.
func newMemConns(server memAddr, port uint32) (client, srv *memConn) {
	a, b := newStream(), newStream()
	clientAddr := memAddr(fmt.Sprintf("127.0.0.1:%d", 40000+port%20000))
	client = &memConn{in: a, out: b, local: clientAddr, remote: server,
		rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	srv = &memConn{in: b, out: a, local: server, remote: clientAddr,
		rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	return client, srv
}

func (c *memConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "memory", Source: c.local, Addr: c.remote, Err: err}
}

// Read waits for bytes from the peer, until the read deadline passes or
// the connection closes; after the peer's Close or CloseWrite and the
// bytes it wrote before, it returns io.EOF.
func (c *memConn) Read(p []byte) (int, error) {
	s := c.in
	for {
		select {
		case <-c.closed:
			return 0, c.opError("read", net.ErrClosed)
		case <-c.rd.done():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		s.mu.Lock()
		if s.buf.Len() > 0 {
			n, _ := s.buf.Read(p)
			s.wake()
			s.mu.Unlock()
			return n, nil
		}
		if s.wclosed {
			s.mu.Unlock()
			return 0, io.EOF
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		s.readers++
		s.wake()
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-c.rd.done():
		case <-c.closed:
		}
		s.mu.Lock()
		s.readers--
		s.mu.Unlock()
	}
}

// Write waits for room in the peer's buffer, until the write deadline
// passes or either end closes.
func (c *memConn) Write(p []byte) (int, error) {
	s := c.out
	n := 0
	for {
		select {
		case <-c.closed:
			return n, c.opError("write", net.ErrClosed)
		case <-c.wd.done():
			return n, c.opError("write", os.ErrDeadlineExceeded)
		default:
		}
		s.mu.Lock()
		switch {
		case s.wclosed:
			s.mu.Unlock()
			return n, c.opError("write", net.ErrClosed)
		case s.rclosed:
			s.mu.Unlock()
			return n, c.opError("write", io.ErrClosedPipe)
		}
		if space := pipeBuffer - s.buf.Len(); space > 0 {
			k := min(space, len(p)-n)
			s.buf.Write(p[n : n+k])
			n += k
			s.wake()
		}
		if n == len(p) {
			s.mu.Unlock()
			return n, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-c.wd.done():
		case <-c.closed:
		}
	}
}

// Close closes both directions: the peer reads what was already written,
// then EOF, and its writes fail.
func (c *memConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		c.in.mu.Lock()
		c.in.rclosed = true
		c.in.buf = bytes.Buffer{}
		c.in.wake()
		c.in.mu.Unlock()
		c.shutWrite()
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

// CloseWrite shuts down the sending direction, as TCP's half-close does:
// the peer reads EOF after the bytes already written.
func (c *memConn) CloseWrite() error {
	select {
	case <-c.closed:
		return c.opError("close", net.ErrClosed)
	default:
	}
	c.shutWrite()
	return nil
}

func (c *memConn) shutWrite() {
	c.out.mu.Lock()
	c.out.wclosed = true
	c.out.wake()
	c.out.mu.Unlock()
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

// memListener hands the server ends of in-memory connections to
// http.Server.Serve.
type memListener struct {
	addr  memAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	ports atomic.Uint32 // numbers the clients' ports, as a kernel would
}

func newMemListener(addr memAddr) *memListener {
	return &memListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "memory", Addr: l.addr, Err: net.ErrClosed}
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// dial connects a new in-memory connection to the listener.
func (l *memListener) dial(ctx context.Context) (net.Conn, error) {
	client, srv := newMemConns(l.addr, l.ports.Add(1))
	select {
	case l.conns <- srv:
		return client, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: "memory", Addr: l.addr, Err: net.ErrClosed}
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: "memory", Addr: l.addr, Err: context.Cause(ctx)}
	}
}

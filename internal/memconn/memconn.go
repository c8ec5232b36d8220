// Package memconn is an in-memory net.Conn for colibri's tests: unlike
// net.Pipe, each direction buffers without limit and can be half-closed.
package memconn

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Pipe returns the two ends of an in-memory connection for tests that
// need what net.Pipe lacks: each direction buffers without limit (writes
// never wait for the reader), and CloseWrite ends one direction while the
// other keeps working, as a TCP half-close does. Deadlines work as on a
// socket and fail with os.ErrDeadlineExceeded. maxRead, when positive,
// caps what the second end (the server's) gets per Read, so that frames
// arrive in pieces.
func Pipe(maxRead int) (client, server *Conn) {
	a, b := newMemStream(), newMemStream()
	client = &Conn{in: b, out: a, name: "client"}
	server = &Conn{in: a, out: b, name: "server", maxRead: maxRead}
	return client, server
}

// memStream is one direction of a Pipe.
type memStream struct {
	mu      sync.Mutex
	buf     []byte
	eof     bool          // the writing end shut it: EOF once drained
	gone    bool          // the reading end closed: writes fail
	changed chan struct{} // closed and replaced on every change
}

func newMemStream() *memStream { return &memStream{changed: make(chan struct{})} }

// wake tells waiting readers that something changed; the caller holds mu.
func (s *memStream) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *memStream) poke() {
	s.mu.Lock()
	s.wake()
	s.mu.Unlock()
}

// Conn is one end of a Pipe.
type Conn struct {
	in, out *memStream
	name    string
	maxRead int
	// Tag is what a test wants to find from the connection, such as in
	// an http.Server's ConnContext.
	Tag any

	mu        sync.Mutex
	closed    bool
	readDL    time.Time
	writeDL   time.Time
	readTimer *time.Timer
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// Read reads what the peer wrote, waiting for it until the read deadline.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		closed, dl := c.closed, c.readDL
		c.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		s := c.in
		s.mu.Lock()
		if len(s.buf) > 0 {
			q := p
			if c.maxRead > 0 && len(q) > c.maxRead {
				q = q[:c.maxRead]
			}
			n := copy(q, s.buf)
			s.buf = s.buf[n:]
			s.mu.Unlock()
			return n, nil
		}
		if s.eof {
			s.mu.Unlock()
			return 0, io.EOF
		}
		if !dl.IsZero() && !time.Now().Before(dl) {
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		wait := s.changed
		s.mu.Unlock()
		<-wait
	}
}

// Write adds p to what the peer reads; it never waits for the reader.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	closed, dl := c.closed, c.writeDL
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if !dl.IsZero() && !time.Now().Before(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	s := c.out
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.eof {
		return 0, io.ErrClosedPipe
	}
	s.buf = append(s.buf, p...)
	s.wake()
	return len(p), nil
}

// CloseWrite shuts the sending direction: the peer reads EOF once it has
// read what was sent.
func (c *Conn) CloseWrite() error {
	c.out.mu.Lock()
	c.out.eof = true
	c.out.wake()
	c.out.mu.Unlock()
	return nil
}

// Close ends both directions.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	if c.readTimer != nil {
		c.readTimer.Stop()
		c.readTimer = nil
	}
	c.mu.Unlock()
	c.in.mu.Lock()
	c.in.gone = true
	c.in.wake()
	c.in.mu.Unlock()
	return c.CloseWrite()
}

// SetReadDeadline bounds Read, including one that is waiting.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.readDL = t
	if c.readTimer != nil {
		c.readTimer.Stop()
		c.readTimer = nil
	}
	if !t.IsZero() {
		if d := time.Until(t); d > 0 {
			c.readTimer = time.AfterFunc(d, c.in.poke)
		}
	}
	// A reader waiting now re-reads the deadline.
	c.in.poke()
	return nil
}

// SetWriteDeadline bounds Write.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDL = t
	return nil
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// LocalAddr names this end.
func (c *Conn) LocalAddr() net.Addr { return memAddr(c.name) }

// RemoteAddr names the other end.
func (c *Conn) RemoteAddr() net.Addr { return memAddr("peer of " + c.name) }

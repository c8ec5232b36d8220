package wsconn

import (
	"io"
	"sync/atomic"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
)

const (
	// idleReadSize is the per-connection array a connection reads into
	// while it holds no pooled buffer: a frame header, a control frame or
	// a small message fits, so an idle connection holds no read buffer.
	idleReadSize = 64
	// streamReadSize is the pooled buffer borrowed while bytes keep coming.
	streamReadSize = 4096
)

// netReader is a buffered reader that gives its buffer back to the pool
// whenever it has been drained, so that a connection waiting for the peer
// holds only the small idle array.
type netReader struct {
	src  io.Reader
	pool *[]byte // borrowed buffer, nil while idle
	buf  []byte  // idle[:] or *pool
	r, w int
	idle [idleReadSize]byte
	// waiting is set while a read from src is under way, whatever the
	// reader wants (a header, a payload, the rest of a control frame):
	// the keep-alive timer gives up on a silent peer only then.
	waiting atomic.Bool
}

func (b *netReader) init(src io.Reader, buffered []byte) {
	b.src = src
	b.buf = b.idle[:]
	if len(buffered) > len(b.idle) {
		b.pool = bufpool.Get(max(len(buffered), streamReadSize))
		b.buf = *b.pool
	}
	b.w = copy(b.buf, buffered)
}

func (b *netReader) buffered() int { return b.w - b.r }

// fill reads at least once more from src, making room for at least need
// unread bytes.
func (b *netReader) fill(need int) error {
	if b.r == b.w {
		b.r, b.w = 0, 0
		b.giveBack()
	}
	if len(b.buf)-b.r < need || b.w == len(b.buf) {
		if need > len(b.buf) || (b.pool == nil && b.w == len(b.buf)) {
			// Bytes are flowing faster than the buffer holds: borrow a
			// bigger one.
			p := bufpool.Get(max(need, streamReadSize))
			b.w = copy(*p, b.buf[b.r:b.w])
			b.r = 0
			b.giveBack()
			b.pool, b.buf = p, *p
		} else {
			b.w = copy(b.buf, b.buf[b.r:b.w])
			b.r = 0
		}
	}
	// Marked here rather than in a helper: a call frame more on the
	// path where an idle connection waits would outgrow its 2 KiB stack.
	b.waiting.Store(true)
	n, err := b.src.Read(b.buf[b.w:])
	b.waiting.Store(false)
	b.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// giveBack returns the borrowed buffer, if any; nothing unread may be in
// it.
func (b *netReader) giveBack() {
	if b.pool != nil {
		bufpool.Put(b.pool)
		b.pool, b.buf = nil, b.idle[:]
	}
}

// wait blocks until src has bytes. It is fill called from the top of a
// loop, where a connection waits for its peer, rather than from deep in
// frame parsing. An error is dropped: the read that follows meets it
// again if it lasts (a closed or broken transport), and not if it was a
// read deadline since moved on purpose.
func (b *netReader) wait() {
	if b.r == b.w {
		_ = b.fill(1)
	}
}

// peekAt returns n unread bytes from off on, without consuming them.
func (b *netReader) peekAt(off, n int) ([]byte, error) {
	for b.w-b.r < off+n {
		if err := b.fill(off + n); err != nil {
			return nil, err
		}
	}
	return b.buf[b.r+off : b.r+off+n], nil
}

func (b *netReader) discard(n int) { b.r += n }

// cut removes n unread bytes from off on, keeping the ones before them.
func (b *netReader) cut(off, n int) {
	copy(b.buf[b.r+n:], b.buf[b.r:b.r+off])
	b.r += n
}

// truncate drops the unread bytes from off on.
func (b *netReader) truncate(off int) { b.w = b.r + off }

// read copies buffered bytes into p, or reads from src straight into p when
// nothing is buffered (large payloads skip the copy).
func (b *netReader) read(p []byte) (int, error) {
	if b.r < b.w {
		n := copy(p, b.buf[b.r:b.w])
		b.r += n
		return n, nil
	}
	if len(p) >= len(b.idle) {
		b.r, b.w = 0, 0
		b.giveBack()
		b.waiting.Store(true)
		n, err := b.src.Read(p)
		b.waiting.Store(false)
		if n > 0 {
			return n, nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}
	if err := b.fill(1); err != nil {
		return 0, err
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// release gives the borrowed buffer back; unread bytes are lost, so it is
// only called once the connection is finished with reading.
func (b *netReader) release() {
	b.giveBack()
	b.r, b.w = 0, 0
}

// peekHeaderAt returns the complete frame header at off, unconsumed.
func (b *netReader) peekHeaderAt(off int) ([]byte, error) {
	hb, err := b.peekAt(off, 2)
	if err != nil {
		return nil, err
	}
	return b.peekAt(off, frames.HeaderSize(hb[0], hb[1]))
}

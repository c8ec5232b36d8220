package wsconn

import (
	"errors"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/messages"
)

// The background reader reads the socket while nobody else does: while no
// loop ranges over the Inbound, and while a loop body has been busy for a
// while (see connTimer). It runs in a goroutine of the connection's, which
// the connection waits for before it closes, and ends when a loop or the
// closing handshake wants the socket back, at its bound, or when reading
// ends.
//
// It answers PINGs, sees PONGs and takes the peer's CLOSE. Data frames it
// keeps in the read buffer for the loop, up to ReadAhead bytes; control
// frames found behind them are handled and cut out of the buffer, so that
// the loop later sees only data. When the kept data reaches the bound it
// stops: from there the peer feels TCP backpressure until a loop reads. A
// header that breaks the protocol fails the connection at once.

// startBackground starts the background reader unless it runs already, a
// loop reads itself, or the connection is past reading.
func (c *Conn) startBackground() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.bgRunning || c.st.readEnded || c.st.draining || c.ctx.Err() != nil {
		return
	}
	if c.st.looping && !c.inBody.Load() {
		return // the loop reads
	}
	c.st.bgRunning = true
	c.bg.Add(1)
	go c.background()
}

func (c *Conn) background() {
	defer c.bg.Done()
	if c.readMu.TryLock() {
		c.readAhead()
		c.readMu.Unlock()
	}
	c.mu.Lock()
	c.st.bgRunning = false
	c.mu.Unlock()
}

// readAhead reads until a loop or the closing handshake wants the socket,
// the data kept reaches ReadAhead, or reading ends.
func (c *Conn) readAhead() {
	if c.remaining+maxControlFrame > ReadAhead && !c.discardAbandoned() {
		return
	}
	// off is where the next unread frame header starts in the read
	// buffer: after the rest of the frame a loop is reading, and after
	// the data frames kept so far.
	off := c.remaining
	for off+maxControlFrame <= ReadAhead {
		if c.ctx.Err() != nil {
			return
		}
		hb, err := c.rd.peekHeaderAt(int(off))
		if err != nil {
			_ = c.readError(err)
			return
		}
		var h frames.Header
		if off == 0 {
			// At a frame boundary: a violation is the peer's now.
			if h, err = c.checkHeader(hb); err != nil {
				return
			}
		} else if h, err = c.parseHeader(hb); err != nil {
			// The peer broke the protocol here, behind data kept for the
			// loop: fail now (a busy body watching its context learns it
			// at once), unless the data kept holds a violation of its own,
			// which came first. The header and what follows are dropped;
			// the data before it stays for a running loop to yield, as
			// data kept before the peer's CLOSE does.
			if !c.judgeKept(off) {
				c.cutAt(int(off), err)
			}
			return
		} else {
			c.heardFrame(h)
		}
		if h.Op.IsControl() {
			if h.Op == frames.OpClose && off > c.remaining && c.judgeKept(off) {
				return // a violation before the CLOSE decides the code
			}
			if c.controlAt(int(off), len(hb), h) != nil {
				return
			}
			continue
		}
		// Compared before adding: a peer's length may be up to 2^63-1,
		// and the sum would overflow.
		if h.Length > ReadAhead-off-int64(len(hb)) {
			return
		}
		end := off + int64(len(hb)) + h.Length
		_, err = c.rd.peekAt(0, int(end))
		if err != nil {
			_ = c.readError(err)
			return
		}
		off = end
	}
}

// discardAbandoned reads the rest of a frame that a Readers body left when
// it broke out, too long to keep, through the assembler as the next loop
// would (its UTF-8 is checked), so that the background reader waits on the
// socket, where keep-alive and the idle timeout see the peer. It reports
// whether reading ahead may go on. The rest of a compressed message is
// left to the next loop, which inflates it.
func (c *Conn) discardAbandoned() bool {
	r := c.in.unfinished
	c.mu.Lock()
	looping := c.st.looping
	c.mu.Unlock()
	if r == nil || r.ir != nil || looping {
		return false
	}
	// The reader's own frameReader reads no further than the frame while
	// c.remaining > 0, and fails the connection for a violation.
	var scratch [512]byte
	for c.remaining > 0 {
		if c.ctx.Err() != nil {
			return false
		}
		if _, err := r.frames.Read(scratch[:]); err != nil {
			return false
		}
	}
	return true
}

// maxControlFrame is the largest control frame on the wire.
const maxControlFrame = frames.MaxHeaderSize + frames.MaxControlPayload

// judgeKept checks the data frames kept in the read buffer before the
// peer's CLOSE, up to end, as the loop would when it reached them: their
// place in the sequence of messages, the message limit of the loop that is
// running (none while no loop runs) and UTF-8, with a copy of the loop's
// assembler. A violation among them comes before the
// CLOSE and decides the code (RFC 6455 §7.1.7): judgeKept fails the
// connection with it and reports true. What it cannot judge here it leaves
// to the loop, never refusing what the loop would accept: a frame under
// way (the rest of one a Readers body left when it broke out or
// panicked), and the text of a compressed message or of one begun before.
// The caller holds readMu.
func (c *Conn) judgeKept(end int64) bool {
	if c.remaining != 0 {
		return false
	}
	a := c.asm // a copy: the loop's own state is not touched
	// The running loop's limits; a loop that ended left none (the next
	// one brings its own).
	c.mu.Lock()
	limit, frameCap := c.st.limit, c.st.frameLimit
	if !c.st.looping {
		limit, frameCap = 0, 0
	}
	c.mu.Unlock()
	lenient := a.Active() // begun before: it may be compressed
	var scratch *[]byte
	defer func() {
		if scratch != nil {
			bufpool.Put(scratch)
		}
	}()
	for off := 0; int64(off) < end; {
		hb, err := c.rd.peekHeaderAt(off)
		if err != nil {
			return false
		}
		h, err := frames.ParseHeader(hb)
		if err != nil || h.Length > end {
			return false
		}
		if h.Op != frames.OpContinuation {
			lenient = h.Rsv&frames.Rsv1 != 0
		}
		a.Limit, a.SkipUTF8 = limit, c.asm.SkipUTF8 || lenient
		maxFrame := frameCap
		if lenient {
			a.Limit, maxFrame = compressedLimit(limit), compressedLimit(frameCap)
		}
		if maxFrame > 0 && h.Length > maxFrame {
			return c.judged(off, messages.ErrTooLarge)
		}
		if err := a.Begin(h.Op, h.Fin, h.Length); err != nil {
			return c.judged(off, err)
		}
		p, err := c.rd.peekAt(off+len(hb), int(h.Length))
		if err != nil {
			return false
		}
		scratch = bufpool.Grow(scratch, len(p))
		q := append((*scratch)[:0], p...)
		if h.Masked {
			frames.Mask(q, h.Mask, 0)
		}
		if err := a.Chunk(q); err != nil {
			return c.judged(off, err)
		}
		if _, _, err := a.End(); err != nil {
			return c.judged(off, err)
		}
		off += len(hb) + int(h.Length)
	}
	return false
}

// judged fails the connection for err, found in the kept frame at off,
// when it is a violation, and reports whether it was; any other error
// means judgeKept could not tell.
func (c *Conn) judged(off int, err error) bool {
	if _, ok := errors.AsType[*frames.Violation](err); !ok {
		return false
	}
	c.cutAt(off, err)
	return true
}

// cutAt fails the connection for the violation err, found at off in the
// read buffer, and drops the buffer from there: a running loop still
// yields the data kept before it (see keptBeforeClose).
func (c *Conn) cutAt(off int, err error) {
	c.rd.truncate(off)
	c.mu.Lock()
	c.st.cutAtViolation = true
	c.mu.Unlock()
	_ = c.violation(err)
}

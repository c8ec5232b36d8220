package wsconn

import "github.com/colibri-ws/colibri/frames"

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
// the loop later sees only data. When the kept data reaches the bound, or
// a frame it cannot judge yet, it stops: from there the peer feels TCP
// backpressure until a loop reads.

// startBackground starts the background reader unless it runs already, a
// loop reads itself, or the connection is past reading.
func (c *Conn) startBackground() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.bgRunning || c.st.readEnded || c.st.draining || c.ctx.Err() != nil {
		return
	}
	if c.st.looping && c.body.Load()&1 == 0 {
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
		} else if h, err = frames.ParseHeader(hb); err != nil || h.Check(!c.client, c.allowedRsv) != nil {
			return // the loop will judge it when it gets there
		} else {
			c.heardFrame(h)
		}
		if h.Op.IsControl() {
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

// maxControlFrame is the largest control frame on the wire.
const maxControlFrame = frames.MaxHeaderSize + frames.MaxControlPayload

package wsconn

import (
	"context"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/messages"
)

// Inbound is the receiving side of a connection. Its iterators are
// Scanner-style: they yield values until the connection's inbound side
// ends, and Err then says why (nil when the peer closed cleanly). Leaving a
// loop early does not close the connection; ranging again continues where
// the last loop stopped.
//
// One goroutine at a time may range over an Inbound; a second concurrent
// loop ends at once with ErrBusyReading. Payloads yielded by the iterators
// are borrowed: they are valid until the loop body returns and are reused
// afterwards, as with bufio.Scanner.Bytes. Clone what you keep.
//
// PING, PONG and CLOSE frames are handled by colibri whether or not
// anybody ranges: while no loop is running, a background task reads the
// connection and answers them. Data frames wait until a loop asks for
// them, which pushes back on a peer that sends faster than the handler
// reads.
type Inbound struct {
	c     *Conn
	errMu sync.Mutex
	err   error
	mr    messageReader
}

// Err returns why the last loop ended: nil after a clean close by the peer
// (codes 1000, 1001 and 1005) or when the loop body broke out; a
// *CloseError for any other close code or for a protocol violation found by
// colibri (1002, 1007, 1009; its Err is a *frames.Violation); the cause of
// the handler's context (ErrShutdown, for example) when the connection is
// closing; ErrBusyReading for a second concurrent loop.
func (in *Inbound) Err() error {
	in.errMu.Lock()
	defer in.errMu.Unlock()
	return in.err
}

func (in *Inbound) setErr(err error) {
	in.errMu.Lock()
	in.err = err
	in.errMu.Unlock()
}

// Frames yields data frames as they arrive: text, binary and continuation
// frames, each with its FIN bit. Fragment sequencing and UTF-8 in text are
// checked across frames. A frame larger than Config.MaxFrameSize closes the
// connection with 1009.
func (in *Inbound) Frames() iter.Seq[frames.Frame] {
	return func(yield func(frames.Frame) bool) {
		c := in.c
		ok, err := c.acquire()
		in.setErr(err)
		if !ok {
			return
		}
		defer c.release()
		c.asm.Limit = 0
		for {
			c.awaitFrame()
			h, err := c.nextFrame(c.frameLimit())
			if err != nil {
				in.setErr(err)
				return
			}
			var buf *[]byte
			if h.Rsv&frames.Rsv1 != 0 {
				// A compressed message arrives whole: its fragment
				// boundaries mean nothing once inflated.
				buf, err = c.readCompressed(nil, h, c.set.maxMessage)
				h.Fin, h.Rsv = true, 0
			} else {
				buf, err = c.readMessagePayload(nil, h.Length)
				if err == nil {
					_, _, err = c.asm.End()
					err = c.checkAssembly(err)
				}
			}
			if err != nil {
				bufpool.Put(buf)
				in.setErr(c.loopErr(err))
				return
			}
			var p []byte
			if buf != nil {
				p = *buf
			}
			c.receivedFrame(h.Op, len(p), h.Fin)
			if h.Fin {
				c.stats.MessagesIn.Add(1)
			}
			more := yield(frames.Frame{Op: h.Op, Fin: h.Fin, Rsv: h.Rsv, Payload: p})
			bufpool.Put(buf)
			if !more {
				return
			}
		}
	}
}

// Messages yields whole messages, assembled from their fragments. A message
// larger than maxSize bytes (Config.MaxMessageSize when maxSize <= 0)
// closes the connection with 1009 before the excess is read; text that is
// not valid UTF-8 closes it with 1007 as soon as the first bad fragment
// arrives. If a Frames loop left a fragmented message half-read, the next
// Messages loop yields the rest of it.
func (in *Inbound) Messages(maxSize int64) iter.Seq[messages.Message] {
	return func(yield func(messages.Message) bool) {
		c := in.c
		ok, err := c.acquire()
		in.setErr(err)
		if !ok {
			return
		}
		defer c.release()
		if maxSize <= 0 {
			maxSize = c.set.maxMessage
		}
		c.asm.Limit = maxSize
		var buf *[]byte
		defer func() { bufpool.Put(buf) }()
		for {
			c.awaitFrame()
			h, err := c.nextFrame(0)
			if err != nil {
				in.setErr(err)
				return
			}
			var kind messages.Kind
			if h.Rsv&frames.Rsv1 != 0 {
				kind = messages.Kind(h.Op)
				buf, err = c.readCompressed(buf, h, maxSize)
				if err != nil {
					in.setErr(c.loopErr(err))
					return
				}
			} else {
				buf, err = c.readMessagePayload(buf, h.Length)
				if err != nil {
					in.setErr(c.loopErr(err))
					return
				}
				var done bool
				kind, done, err = c.asm.End()
				if err = c.checkAssembly(err); err != nil {
					in.setErr(c.loopErr(err))
					return
				}
				if !done {
					continue
				}
			}
			c.stats.MessagesIn.Add(1)
			var p []byte
			if buf != nil {
				p = *buf
			}
			c.received(kind, int64(len(p)))
			more := yield(messages.Message{Kind: kind, Payload: p})
			// Give the buffer back before waiting for the next message, so
			// that an idle connection holds none.
			bufpool.Put(buf)
			buf = nil
			if !more {
				return
			}
		}
	}
}

// Readers yields each message as an io.Reader, for payloads too large to
// hold in memory. The reader streams the message's frames as they arrive,
// checking UTF-8 as it goes; it is valid until the loop body returns, and
// what the body leaves unread is discarded. No size limit applies beyond
// what the body chooses to read (wrap it with io.LimitReader).
func (in *Inbound) Readers() iter.Seq2[messages.Kind, io.Reader] {
	return func(yield func(messages.Kind, io.Reader) bool) {
		c := in.c
		ok, err := c.acquire()
		in.setErr(err)
		if !ok {
			return
		}
		defer c.release()
		c.asm.Limit = 0
		r := &in.mr
		for {
			c.awaitFrame()
			h, err := c.nextFrame(0)
			if err != nil {
				in.setErr(err)
				return
			}
			kind := messages.Kind(h.Op)
			if h.Op == frames.OpContinuation {
				kind = c.asm.Kind()
			}
			*r = messageReader{c: c, fin: h.Fin, live: true}
			var body io.Reader = r
			var ir *inflatingReader
			if h.Rsv&frames.Rsv1 != 0 {
				ir = c.newInflatingReader(r, kind)
				body = ir
			}
			more := yield(kind, body)
			// Discard what the body left unread; sequencing and UTF-8
			// are still checked.
			_, err = io.Copy(io.Discard, body)
			if ir != nil {
				ir.close()
			}
			r.live = false
			if err != nil {
				in.setErr(c.loopErr(err))
				return
			}
			c.stats.MessagesIn.Add(1)
			c.received(kind, c.asm.Size())
			if !more {
				return
			}
		}
	}
}

// messageReader reads one message's payload across its frames.
type messageReader struct {
	c    *Conn
	fin  bool // the current frame is the last of the message
	live bool // the loop body that received it is running
	raw  bool // compressed bytes: counted, not checked as UTF-8
	done bool
	err  error
}

func (r *messageReader) Read(p []byte) (int, error) {
	if !r.live {
		return 0, ErrClosed
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.done {
		return 0, io.EOF
	}
	c := r.c
	for c.remaining == 0 {
		if _, done, err := c.asm.End(); err != nil || done {
			if r.err = c.checkAssembly(err); r.err != nil {
				return 0, r.err
			}
			r.done = true
			return 0, io.EOF
		}
		h, err := c.nextFrame(0)
		if err != nil {
			r.err = err
			return 0, r.err
		}
		r.fin = h.Fin
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.readPayload(p)
	if err == nil {
		if r.raw {
			skip := c.asm.SkipUTF8
			c.asm.SkipUTF8 = true
			err = c.checkAssembly(c.asm.Chunk(p[:n]))
			c.asm.SkipUTF8 = skip
		} else {
			err = c.checkAssembly(c.asm.Chunk(p[:n]))
		}
	}
	if err != nil {
		r.err = c.loopErr(err)
		return n, r.err
	}
	return n, nil
}

// ---- the read token ----

// acquire makes the calling loop the connection's reader, waiting for the
// background reader to step aside: it does so when a data frame arrives.
// ok is false when the loop must end at once, with err as its Err.
func (c *Conn) acquire() (ok bool, err error) {
	if !c.ranging.CompareAndSwap(false, true) {
		return false, ErrBusyReading
	}
	if c.readTok.take() {
		return true, nil
	}
	// The background reader holds the socket. If it is waiting for bytes
	// at a frame boundary, a past read deadline wakes it without losing
	// anything: it steps aside and what it peeked stays buffered.
	c.rmu.Lock()
	c.handover = true
	if c.bgWaiting && !c.closing {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	c.rmu.Unlock()
	defer func() {
		c.rmu.Lock()
		c.handover = false
		c.rmu.Unlock()
	}()
	for !c.readTok.take() {
		select {
		case <-c.readTok.given():
		case <-c.rdone.wait():
			c.ranging.Store(false)
			_, err := c.readEnded()
			return false, err
		}
	}
	return true, nil
}

// release ends a loop's hold on the reading side and, unless data is
// already waiting, lets the background reader service control frames.
func (c *Conn) release() {
	c.readTok.give()
	c.ranging.Store(false)
	c.startBackground()
}

// bgDelay is how long a new connection's handler has to start ranging
// before the background reader takes the socket. Most handlers range at
// once, and then no reader goroutine is started only to hand the socket
// back; control frames that arrive meanwhile wait in the socket.
const bgDelay = 20 * time.Millisecond

// bgSlack is how late a start may be, so that one wake-up of the queue's
// goroutine serves every connection that came within it.
const bgSlack = 10 * time.Millisecond

// deferBackground starts the background reader after bgDelay unless a loop
// is reading by then. The delays are all the same, so one queue in arrival
// order serves every connection of the process, drained by one goroutine
// while it is not empty: no timer, and no goroutine, per connection.
func (c *Conn) deferBackground() {
	bgStarts.add(c, time.Now().Add(bgDelay))
}

var bgStarts bgQueue

type bgQueue struct {
	mu      sync.Mutex
	q       []bgStart
	head    int
	running bool
}

type bgStart struct {
	c   *Conn
	due time.Time
}

func (b *bgQueue) add(c *Conn, due time.Time) {
	b.mu.Lock()
	b.q = append(b.q, bgStart{c, due})
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.drain()
	}
}

// drain starts each queued connection's background reader when it is due,
// and returns once the queue is empty.
func (b *bgQueue) drain() {
	for {
		b.mu.Lock()
		if b.head == len(b.q) {
			b.q, b.head, b.running = b.q[:0], 0, false
			if cap(b.q) > 1024 {
				b.q = nil // a burst is over: let its array go
			}
			b.mu.Unlock()
			return
		}
		next := b.q[b.head]
		if wait := time.Until(next.due); wait > 0 {
			b.mu.Unlock()
			time.Sleep(wait + bgSlack)
			continue
		}
		b.q[b.head] = bgStart{}
		b.head++
		if b.head >= 64 && 2*b.head >= len(b.q) {
			// Under a steady stream of connections the queue never
			// empties: move what is left to the front.
			n := copy(b.q, b.q[b.head:])
			clear(b.q[n:])
			b.q, b.head = b.q[:n], 0
		}
		b.mu.Unlock()
		next.c.startBackground()
	}
}

func (c *Conn) startBackground() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.bgRunning || c.rended || c.closing || c.ranging.Load() {
		return
	}
	if !c.readTok.take() {
		return
	}
	c.bgRunning = true
	// The reader counts as waiting from now on, before its goroutine runs,
	// so that a pong timeout cannot slip through its start-up.
	c.keepAlive.waiting(c, true)
	c.bg.Add(1)
	go c.background()
}

// background reads while no loop does: it answers control frames and stops
// at the first data frame, which waits for a loop. While the connection is
// closing it discards data instead, looking for the peer's CLOSE.
func (c *Conn) background() {
	defer func() {
		c.rmu.Lock()
		c.bgRunning = false
		c.rmu.Unlock()
		c.readTok.give()
		c.bg.Done()
	}()
	for {
		h, err := c.peekData(true)
		if err != nil {
			return
		}
		c.rmu.Lock()
		closing := c.closing && !c.handover
		c.rmu.Unlock()
		if !closing || c.ranging.Load() {
			return
		}
		c.consumeHeader(h)
		if c.skipPayload(h.Length) != nil {
			return
		}
	}
}

// ---- frames ----

var (
	errHandover    = errors.New("wsconn: reading handed to a loop")
	errReadEnded   = errors.New("wsconn: inbound ended")
	errInterrupted = errors.New("wsconn: read interrupted")
)

// awaitFrame waits for the peer's next bytes when none are buffered at a
// frame boundary. Loops call it before nextFrame so that a connection waits
// for its peer from a shallow call: the goroutine of an idle connection
// then fits in the runtime's smallest stack (2 KiB), which the deeper
// frame-parsing calls would overflow. Whatever the wait meets (bytes, an
// error, a deadline) is what nextFrame then finds.
func (c *Conn) awaitFrame() {
	if c.rd.buffered() > 0 || c.remaining > 0 || c.rendedFlag.Load() || c.closingFlag.Load() {
		return
	}
	c.keepAlive.waiting(c, true)
	c.rd.wait()
	c.keepAlive.waiting(c, false)
}

// nextFrame returns the header of the next data frame for a loop, checked
// against limit (0: none) and the fragment sequence; its error is the one
// the loop reports.
func (c *Conn) nextFrame(limit int64) (frames.Header, error) {
	h, err := c.nextData()
	if err != nil {
		return h, c.loopErr(err)
	}
	if limit > 0 && h.Length > limit {
		return h, c.violation(messages.ErrTooLarge)
	}
	if err := c.asm.Begin(h.Op, h.Fin, h.Length); err != nil {
		return h, c.violation(err)
	}
	return h, nil
}

// nextData returns the header of the next data frame, consumed, after
// servicing the control frames before it.
func (c *Conn) nextData() (frames.Header, error) {
	h, err := c.peekData(false)
	if err != nil {
		return h, err
	}
	if c.closingNow() {
		return h, errInterrupted
	}
	c.consumeHeader(h)
	return h, nil
}

func (c *Conn) closingNow() bool {
	if !c.closingFlag.Load() {
		return false
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.closing && !c.draining
}

// peekData services control frames until a data frame header is next,
// and returns that header without consuming it. The background reader
// (bg) gives way, with errHandover, to a loop that wants the socket.
func (c *Conn) peekData(bg bool) (frames.Header, error) {
	for {
		if c.remaining > 0 {
			// The rest of a frame that a loop abandoned.
			if err := c.skipPayload(c.remaining); err != nil {
				return frames.Header{}, err
			}
		}
		if c.rendedFlag.Load() {
			return frames.Header{}, errReadEnded
		}
		waiting := c.rd.buffered() < frames.MaxHeaderSize
		if bg && !c.bgWait(true) {
			return frames.Header{}, errHandover
		}
		if waiting {
			c.keepAlive.waiting(c, true)
		}
		hb, err := c.rd.peekHeader()
		if waiting {
			c.keepAlive.waiting(c, false)
		}
		if bg && !c.bgWait(false) {
			return frames.Header{}, errHandover
		}
		if err != nil {
			return frames.Header{}, c.readError(err)
		}
		h, err := frames.ParseHeader(hb)
		if err == nil {
			err = h.Check(!c.client, c.allowedRsv)
		}
		if err == nil && h.Rsv&frames.Rsv1 != 0 && h.Op == frames.OpContinuation {
			// RFC 7692 §6: only a message's first frame says it is compressed.
			err = frames.ErrReservedBits
		}
		if err != nil {
			return h, c.violation(err)
		}
		c.hdrLen = len(hb)
		c.keepAlive.heard(c)
		if !h.Op.IsControl() {
			if c.set.maxFrame > 0 && h.Length > c.set.maxFrame {
				return h, c.violation(messages.ErrTooLarge)
			}
			c.keepAlive.heardData(c)
			return h, nil
		}
		if err := c.control(h); err != nil {
			return h, err
		}
	}
}

func (c *Conn) consumeHeader(h frames.Header) {
	c.rd.discard(c.hdrLen)
	c.hdr, c.remaining, c.maskPos = h, h.Length, 0
	c.stats.BytesIn.Add(h.Length)
}

// readPayload reads up to len(p) bytes of the current frame's payload,
// unmasked.
func (c *Conn) readPayload(p []byte) (int, error) {
	if int64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.rd.read(p)
	if n > 0 {
		if c.hdr.Masked {
			c.maskPos = frames.Mask(p[:n], c.hdr.Mask, c.maskPos)
		}
		c.remaining -= int64(n)
	}
	if err != nil {
		return n, c.readError(err)
	}
	return n, nil
}

// skipPayload discards n bytes of the current frame's payload.
func (c *Conn) skipPayload(n int64) error {
	var scratch [512]byte
	for n > 0 {
		k, err := c.readPayload(scratch[:min(n, int64(len(scratch)))])
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

// payloadStep is how far a message buffer may grow ahead of the bytes
// that arrived (or its own size, when that is more).
const payloadStep = 16 << 10

// readMessagePayload appends n payload bytes of the current frame to buf,
// checking each piece with the assembler. The buffer grows at most
// payloadStep ahead of the bytes that arrived, so a peer that announces a
// large frame and stalls costs little, while a frame of up to payloadStep
// is read in one piece.
func (c *Conn) readMessagePayload(buf *[]byte, n int64) (*[]byte, error) {
	if buf == nil {
		buf = bufpool.Grow(nil, int(min(n, payloadStep)))
	}
	for n > 0 {
		b := *buf
		if len(b) == cap(b) {
			buf = bufpool.Grow(buf, len(b)+int(min(n, int64(max(len(b), payloadStep)))))
			b = *buf
		}
		space := b[len(b):cap(b)]
		if int64(len(space)) > n {
			space = space[:n]
		}
		k, err := c.readPayload(space)
		*buf = b[:len(b)+k]
		if err == nil {
			err = c.checkAssembly(c.asm.Chunk(space[:k]))
		}
		if err != nil {
			return buf, err
		}
		n -= int64(k)
	}
	return buf, nil
}

// checkAssembly turns an assembler error into a violation.
func (c *Conn) checkAssembly(err error) error {
	if err == nil {
		return nil
	}
	return c.violation(err)
}

// control handles the control frame whose header peekData just parsed.
// Its payload (at most 125 bytes) is unmasked in the read buffer, so a
// control frame costs no copy and no buffer of its own.
func (c *Conn) control(h frames.Header) error {
	n := c.hdrLen + int(h.Length)
	b, err := c.rd.peek(n)
	if err != nil {
		return c.readError(err)
	}
	p := b[c.hdrLen:n]
	if h.Masked {
		frames.Mask(p, h.Mask, 0)
	}
	defer c.rd.discard(n)
	c.stats.BytesIn.Add(h.Length)
	switch h.Op {
	case frames.OpPing:
		c.queueControl(ctrlPong, p)
	case frames.OpPong:
		c.keepAlive.pong(c, p)
	case frames.OpClose:
		code, reason, err := frames.ParseClose(p)
		if err != nil {
			return c.violation(err)
		}
		c.rmu.Lock()
		c.peerClosed, c.peerCode, c.peerReason = true, code, reason
		c.watch.peerFirst = !c.closeSent.Load()
		c.rmu.Unlock()
		var rerr error
		switch code {
		case frames.CloseNormal, frames.CloseGoingAway, frames.CloseNoStatus:
		default:
			rerr = &CloseError{Code: code, Reason: reason}
		}
		if c.debugOn() {
			c.logger().Debug("peer closed", slog.Int("code", int(code)), slog.String("reason", reason))
		}
		c.endRead(rerr)
		c.stop(&CloseError{Code: code, Reason: reason, Err: ErrClosed, byColibri: true})
		return errReadEnded
	}
	return nil
}

// violation closes the connection for a protocol violation found in the
// peer's frames and returns the error loops report.
func (c *Conn) violation(err error) error {
	v, ok := errors.AsType[*frames.Violation](err)
	if !ok {
		return err
	}
	if ended, rerr := c.readEnded(); ended {
		return rerr
	}
	ce := &CloseError{Code: v.Code, Reason: v.Reason, Err: v, byColibri: true}
	if c.debugOn() {
		c.logger().Debug("protocol violation", slog.Int("code", int(v.Code)), slog.String("reason", v.Reason))
	}
	c.protocolError(v)
	c.fail(ce)
	return ce
}

// readError classifies a failed socket read.
func (c *Conn) readError(err error) error {
	if ended, _ := c.readEnded(); ended {
		return errReadEnded
	}
	c.rmu.Lock()
	interrupted := c.closing && !c.draining
	c.rmu.Unlock()
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && interrupted {
		return errInterrupted
	}
	ce := &CloseError{Code: frames.CloseAbnormal, Err: err, byColibri: true}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		ce.Reason = "connection closed without a close frame"
	}
	c.endRead(ce)
	c.stop(ce)
	return errReadEnded
}

// loopErr turns the error that stopped a read into what Err reports.
func (c *Conn) loopErr(err error) error {
	if ended, rerr := c.readEnded(); ended {
		return rerr
	}
	if err == errInterrupted || err == errReadEnded {
		return contextCause(c)
	}
	return err
}

// contextCause is what loops report once the handler's context ended.
func contextCause(c *Conn) error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	return ErrClosed
}

// bgWait marks the background reader as waiting on the socket (on) or done
// waiting, and reports false when a loop asked for the socket; the read
// deadline that woke it is cleared unless the connection is closing.
func (c *Conn) bgWait(on bool) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.bgWaiting = on && !c.handover
	if !c.handover {
		return true
	}
	if !on && !c.closing {
		var d time.Time // none, unless our CLOSE went out
		if c.readBound != 0 {
			d = time.Unix(0, c.readBound)
		}
		_ = c.nc.SetReadDeadline(d)
	}
	return false
}

// frameLimit is the largest frame a Frames loop accepts.
func (c *Conn) frameLimit() int64 {
	if c.set.maxFrame > 0 {
		return c.set.maxFrame
	}
	return c.set.maxMessage
}

// boundReads gives reads CloseTimeout to end once our CLOSE is out: the
// peer's answer ends inbound loops, and silence must not block them.
func (c *Conn) boundReads() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closing || c.draining || c.readBound != 0 {
		return
	}
	d := time.Now().Add(c.set.closeTimeout)
	c.readBound = d.UnixNano()
	_ = c.nc.SetReadDeadline(d)
}

// errBadDeflate is a compressed message that does not inflate.
var errBadDeflate = &frames.Violation{Code: frames.CloseInvalidPayload, Reason: "invalid compressed data"}

// readCompressed inflates the compressed message whose first header is h
// into buf, up to limit bytes (0: none), checking UTF-8 of text once
// inflated. The compressed bytes are counted against the assembler's limit
// too, and are read frame by frame as the decompressor asks for them.
func (c *Conn) readCompressed(buf *[]byte, h frames.Header, limit int64) (*[]byte, error) {
	if buf == nil {
		buf = bufpool.Get(0)
	}
	start := len(*buf)
	src := &c.deflate.raw
	*src = messageReader{c: c, fin: h.Fin, live: true, raw: true}
	buf, err := c.deflate.inflateTo(buf, src, limit)
	switch {
	case err == errInflateLimit:
		return buf, c.violation(messages.ErrTooLarge)
	case err != nil && src.err != nil:
		return buf, src.err
	case err != nil:
		return buf, c.violation(errBadDeflate)
	}
	// Whatever the decompressor left unread of the message is discarded,
	// and the message's last frame is checked.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return buf, err
	}
	if src.err != nil {
		return buf, src.err
	}
	if h.Op == frames.OpText && c.set.checkUTF8 && !utf8.Valid((*buf)[start:]) {
		return buf, c.violation(messages.ErrInvalidUTF8)
	}
	return buf, nil
}

// inflatingReader streams an inflated message to a Readers loop body.
type inflatingReader struct {
	c    *Conn
	src  *messageReader
	in   *inflater
	text bool
	utf8 messages.UTF8
	err  error
}

func (c *Conn) newInflatingReader(src *messageReader, kind messages.Kind) *inflatingReader {
	src.raw = true
	var dict []byte
	if !c.deflate.params.peerNoTakeover {
		dict = c.deflate.inDict
	}
	return &inflatingReader{c: c, src: src, in: getInflater(src, dict), text: kind == messages.Text && c.set.checkUTF8}
}

func (r *inflatingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.in == nil {
		return 0, ErrClosed
	}
	n, err := r.in.fr.Read(p)
	if n > 0 {
		if !r.c.deflate.params.peerNoTakeover {
			keepWindow(&r.c.deflate.inDict, p[:n])
		}
		if r.text && !r.utf8.Write(p[:n]) {
			r.err = r.c.violation(messages.ErrInvalidUTF8)
			return n, r.err
		}
	}
	switch {
	case err == io.EOF:
		if r.text && !r.utf8.Complete() {
			r.err = r.c.violation(messages.ErrInvalidUTF8)
			return n, r.err
		}
		// Drain what the decompressor did not need; check the last frame.
		if _, err := io.Copy(io.Discard, r.src); err != nil {
			r.err = err
			return n, err
		}
		r.err = io.EOF
	case err != nil && r.src.err != nil:
		r.err = r.src.err
	case err != nil:
		r.err = r.c.violation(errBadDeflate)
	}
	return n, r.err
}

func (r *inflatingReader) close() {
	if r.in != nil {
		putInflater(r.in)
		r.in = nil
	}
}

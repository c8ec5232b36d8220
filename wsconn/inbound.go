package wsconn

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/messages"
)

// Inbound is the receiving side of a connection. Its iterators are
// Scanner-style: they yield values until the connection's inbound side
// ends, and Err then says why (nil when the peer closed cleanly). Leaving a
// loop early does not close the connection; ranging again continues where
// the last loop stopped. Once the handler's context has ended, a new loop
// yields nothing (a running one, or one begun before it ended, still
// yields what was kept before the peer's CLOSE; see below).
//
// One goroutine at a time may range over an Inbound; a second concurrent
// loop ends at once with ErrBusyReading. Payloads yielded by the iterators
// are borrowed: they are valid until the loop body returns and are reused
// afterwards, as with bufio.Scanner.Bytes. Clone what you keep.
//
// PING, PONG and CLOSE frames are handled by colibri whether or not
// anybody reads: the goroutine that ranges reads the socket itself while
// it waits for the next message, and whenever nobody has been reading for
// 20 ms (no loop runs, or a loop body has been busy that long) a
// background task reads instead. It answers PINGs, sees PONGs, and takes
// the peer's CLOSE, which cancels the handler's context at once; the data
// frames it meets it keeps for the loop, up to 64 KiB of them (ReadAhead),
// and a running loop yields them, in order, even after the CLOSE or a
// frame header that broke the protocol (which fails the connection at
// once).
// Beyond that bound it stops reading, and the peer feels TCP backpressure
// until the loop catches up; control frames behind the kept data then
// wait too.
type Inbound struct {
	c     *Conn
	errMu sync.Mutex
	err   error
	// unfinished is the message a Readers loop body was reading when it
	// panicked or broke out: the next loop discards its rest before it
	// reads on.
	unfinished *messageReader
}

// ReadAhead is how many bytes of data frames colibri reads and keeps for a
// loop while nobody else reads, in order to reach the control frames
// behind them (see Inbound).
const ReadAhead = 64 << 10

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
// frames, each with its FIN bit; a compressed message (permessage-deflate)
// is yielded once it is whole, inflated, as one final frame without RSV1. Fragment sequencing and UTF-8 in text are
// checked across frames. A frame larger than Config.MaxFrameSize, when
// set, closes the connection with 1009; without it, so does an
// uncompressed frame larger than Config.MaxMessageSize, and a compressed
// message whose inflated size exceeds Config.MaxMessageSize or whose
// compressed bytes exceed twice that plus 1 KiB (docs/compression.md says
// why).
func (in *Inbound) Frames() iter.Seq[frames.Frame] {
	return func(yield func(frames.Frame) bool) {
		c := in.c
		frameLimit := c.frameLimit()
		if !c.startLoop(in, 0, frameLimit) {
			return
		}
		defer c.endLoop()
		c.asm.Limit = 0
		for {
			c.awaitFrame()
			h, err := c.nextFrame(frameLimit)
			if err != nil {
				in.setErr(c.loopErr(err))
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
			if h.Fin {
				c.stats.messagesIn.Add(1)
			}
			c.inFrame.add(c, h.Op, len(p), h.Fin)
			c.bodyBegins()
			more := yield(frames.Frame{Op: h.Op, Fin: h.Fin, Rsv: h.Rsv, Payload: p})
			c.bodyEnds()
			bufpool.Put(buf)
			if !more {
				in.setErr(nil) // the body broke out
				return
			}
		}
	}
}

// Messages yields whole messages, assembled from their fragments. A message
// larger than maxSize bytes (Config.MaxMessageSize when maxSize <= 0)
// closes the connection with 1009 before the excess is read; text that is
// not valid UTF-8 closes it with 1007 as soon as the first bad fragment
// arrives (for a compressed message, once it is whole and inflated). If a Frames loop left a fragmented message half-read, the next
// Messages loop yields the rest of it.
func (in *Inbound) Messages(maxSize int64) iter.Seq[messages.Message] {
	return func(yield func(messages.Message) bool) {
		c := in.c
		if maxSize <= 0 {
			maxSize = c.set.maxMessage
		}
		if !c.startLoop(in, maxSize, 0) {
			return
		}
		defer c.endLoop()
		c.asm.Limit = maxSize
		var buf *[]byte
		defer func() { bufpool.Put(buf) }()
		for {
			c.awaitFrame()
			h, err := c.nextFrame(0)
			if err != nil {
				in.setErr(c.loopErr(err))
				return
			}
			var kind messages.Kind
			if h.Rsv&frames.Rsv1 != 0 {
				kind = messages.Kind(h.Op)
				buf, err = c.readCompressed(buf, h, maxSize)
			} else {
				buf, err = c.readMessagePayload(buf, h.Length)
				var done bool
				if err == nil {
					kind, done, err = c.asm.End()
					err = c.checkAssembly(err)
				}
				if err == nil && !done {
					continue
				}
			}
			if err != nil {
				in.setErr(c.loopErr(err))
				return
			}
			var p []byte
			if buf != nil {
				p = *buf
			}
			c.received(kind, int64(len(p)))
			c.bodyBegins()
			more := yield(messages.Message{Kind: kind, Payload: p})
			c.bodyEnds()
			// Give the buffer back before waiting for the next message, so
			// that an idle connection holds none.
			bufpool.Put(buf)
			buf = nil
			if !more {
				in.setErr(nil) // the body broke out
				return
			}
		}
	}
}

// Readers yields each message as an io.Reader, for payloads too large to
// hold in memory. The reader streams the message's frames as they arrive,
// checking UTF-8 as it goes; it is valid until the loop body returns, and
// what the body leaves unread is discarded before the next message (when
// the body breaks out, by the next loop, if one comes: the loop ends at
// once, however long the message). No limit applies per message
// beyond what the body chooses to read (wrap it with io.LimitReader);
// Config.MaxFrameSize, when set, caps each frame.
func (in *Inbound) Readers() iter.Seq2[messages.Kind, io.Reader] {
	return func(yield func(messages.Kind, io.Reader) bool) {
		c := in.c
		if !c.startLoop(in, 0, 0) {
			return
		}
		defer c.endLoop()
		// A body that panics or breaks out leaves a reader behind that
		// reads no more, and its message's rest for the next loop to
		// discard: a handler that stops reading returns at once, however
		// long the peer's message.
		defer func() {
			if r := in.unfinished; r != nil {
				r.over.Store(true)
			}
		}()
		c.asm.Limit = 0
		for {
			c.awaitFrame()
			h, err := c.nextFrame(0)
			if err != nil {
				in.setErr(c.loopErr(err))
				return
			}
			kind := messages.Kind(h.Op)
			if h.Op == frames.OpContinuation {
				kind = c.asm.Kind()
			}
			r := c.newMessageReader(kind, h.Rsv&frames.Rsv1 != 0)
			in.unfinished = r
			c.bodyBegins()
			more := yield(kind, r)
			r.over.Store(true)
			c.bodyEnds()
			// A body that broke out leaves the rest for the next loop,
			// unless it read to the end, or to the error that ended it:
			// counted, or reported, now.
			if more || r.ended {
				in.unfinished = nil
				if err := r.finish(); err != nil {
					in.setErr(c.loopErr(err))
					return
				}
			}
			if !more {
				in.setErr(nil) // the body broke out
				return
			}
		}
	}
}

// messageReader is the io.Reader a Readers loop body gets, one per
// message: it streams the message while holding the reading side, and
// fails once the body is over, even if kept into a later body.
type messageReader struct {
	c      *Conn
	kind   messages.Kind
	frames frameReader
	src    io.Reader        // frames, or inflating them
	ir     *inflatingReader // when the message is compressed
	over   atomic.Bool      // the body returned or panicked
	ended  bool             // src returned an error or io.EOF, which it keeps returning
}

func (c *Conn) newMessageReader(kind messages.Kind, compressed bool) *messageReader {
	r := &messageReader{c: c, kind: kind, frames: frameReader{c: c}}
	r.src = &r.frames
	if compressed {
		r.ir = c.newInflatingReader(&r.frames, kind)
		r.src = r.ir
	}
	return r
}

func (r *messageReader) Read(p []byte) (int, error) {
	if r.over.Load() {
		return 0, ErrClosed
	}
	c := r.c
	c.bodySeq.Add(1) // reading: the body is not stuck
	c.takeRead()
	defer c.readMu.Unlock()
	if r.over.Load() {
		// The body ended while this call waited for the reading side.
		return 0, ErrClosed
	}
	n, err := r.src.Read(p)
	// Progress again once the read is over, and a tick to look: a
	// background reader started while this read held the socket found it
	// taken, and the timer starts another only for a body that moved
	// since.
	c.bodySeq.Add(1)
	if c.inBody.Load() {
		c.timer.watchBody(c)
	}
	if errors.Is(err, errInterrupted) {
		// The body ended, or the connection is closing, while this
		// read waited on the socket (another goroutine's): it fails,
		// and the message's rest is left to whoever reads next.
		if e := c.loopErr(err); e != nil && !r.over.Load() {
			// The connection is closing: that ends the message.
			r.frames.err, r.ended = e, true
			if r.ir != nil {
				r.ir.err = e
			}
			return n, e
		}
		return n, ErrClosed
	}
	if err != nil {
		r.ended = true
	}
	return n, err
}

// finish discards what the body left unread, still checking sequencing
// and UTF-8, and counts the message; the caller holds the reading side.
func (r *messageReader) finish() error {
	r.over.Store(true)
	_, err := io.Copy(io.Discard, r.src)
	if r.ir != nil && errors.Is(err, errInterrupted) {
		// Its inflater was cut off mid-read by another goroutine's
		// interrupted Read: the rest goes raw, unchecked. The peer's
		// compression context is lost with it.
		if _, err = io.Copy(io.Discard, &r.frames); err == nil && !r.c.deflate.params.peerNoTakeover {
			err = &CloseError{Code: frames.CloseInternalError, Reason: "compressed message abandoned mid-read", byColibri: true}
			r.c.fail(err.(*CloseError))
		}
	}
	if r.ir != nil {
		r.ir.close()
	}
	if err != nil {
		return err
	}
	r.c.received(r.kind, r.c.asm.Size())
	return nil
}

// received counts a whole message read and tells the observer.
func (c *Conn) received(kind messages.Kind, size int64) {
	c.stats.messagesIn.Add(1)
	if c.obs != nil {
		c.observe(func() { c.obs.Received(kind, size) })
	}
}

// ---- who reads ----

// startLoop makes the calling loop the connection's reader, with its limits
// per message and per frame (0: none), which the background reader judges
// kept data by (judgeKept) from the moment the loop is running. It reports
// false, with in's Err set, when the loop must end at once.
func (c *Conn) startLoop(in *Inbound, limit, frameLimit int64) bool {
	c.mu.Lock()
	if c.st.looping {
		c.mu.Unlock()
		in.setErr(ErrBusyReading)
		return false
	}
	c.st.looping, c.st.limit, c.st.frameLimit = true, limit, frameLimit
	late := c.ctx.Err() != nil
	c.mu.Unlock()
	c.takeRead()
	// A loop begun after the context ended yields nothing. One that
	// claimed the Inbound before, and waited for the background reader to
	// step aside while it took the peer's CLOSE, is running: it yields
	// what was kept before the CLOSE, as it would had it read the CLOSE.
	if err := c.endOfLoop(); late || (err != nil || c.ctx.Err() != nil) && !c.keptBeforeClose() {
		in.setErr(err)
		c.endLoop()
		return false
	}
	if r := in.unfinished; r != nil {
		in.unfinished = nil
		if err := r.finish(); err != nil {
			in.setErr(c.loopErr(err))
			c.endLoop()
			return false
		}
	}
	in.setErr(nil)
	return true
}

// endLoop gives the reading side up at the end of a loop. If no loop
// follows within 20 ms, the background reader takes over. A loop ends
// inside its body only when the body panics (or calls runtime.Goexit):
// the body had let the reading side go, so there is nothing to give up.
func (c *Conn) endLoop() {
	if !c.inBody.Swap(false) { // else the body is over, without readMu
		c.readMu.Unlock()
	}
	c.mu.Lock()
	c.st.looping = false
	c.mu.Unlock()
	c.timer.soon(c)
}

// takeRead takes the reading side, asking the background reader to step
// aside if it has it.
func (c *Conn) takeRead() {
	if c.readMu.TryLock() {
		return
	}
	c.mu.Lock()
	c.st.handover = true
	c.applyReadDeadline()
	c.mu.Unlock()
	c.readMu.Lock()
	c.mu.Lock()
	c.st.handover = false
	c.applyReadDeadline()
	c.mu.Unlock()
}

// bodyBegins lets the reading side go while a loop body runs, so that the
// background reader may serve control frames if the body takes long, and
// makes sure the timer looks.
func (c *Conn) bodyBegins() {
	c.readMu.Unlock()
	c.bodySeq.Add(1)
	c.inBody.Store(true)
	c.timer.watchBody(c)
}

// bodyEnds takes the reading side back after a loop body.
func (c *Conn) bodyEnds() {
	c.inBody.Store(false)
	c.takeRead()
}

// awaitFrame waits for the peer's next bytes when none are buffered. Loops
// call it before nextFrame so that a connection waits for its peer from a
// shallow call: the goroutine of an idle connection then fits in the
// runtime's smallest stack (2 KiB), which the deeper frame parsing would
// overflow. Whatever the wait meets (bytes, an error, a deadline) is what
// nextFrame then finds.
func (c *Conn) awaitFrame() {
	if c.rd.buffered() == 0 && c.remaining == 0 && c.ctx.Err() == nil {
		c.rd.wait()
	}
}

// nextFrame returns the header of the next data frame for a loop, checked
// against limit (0: none) and the fragment sequence. Its errors go through
// loopErr.
func (c *Conn) nextFrame(limit int64) (frames.Header, error) {
	if c.stopped() {
		return frames.Header{}, errStop
	}
	h, err := c.nextData()
	if err != nil {
		return h, err
	}
	if c.stopped() {
		return h, errStop
	}
	if h.Rsv&frames.Rsv1 != 0 {
		limit = compressedLimit(limit)
	}
	if limit > 0 && h.Length > limit {
		return h, c.violation(messages.ErrTooLarge)
	}
	if err := c.beginData(h); err != nil {
		return h, c.violation(err)
	}
	return h, nil
}

// beginData checks h's place in its message, and the message's size so
// far, with the assembler. The frames of a compressed message carry
// compressed bytes, bounded by compressedLimit of the loop's limit
// (readCompressed keeps that bound for the message's later frames).
func (c *Conn) beginData(h frames.Header) error {
	if h.Rsv&frames.Rsv1 == 0 {
		return c.asm.Begin(h.Op, h.Fin, h.Length)
	}
	limit := c.asm.Limit
	c.asm.Limit = compressedLimit(limit)
	err := c.asm.Begin(h.Op, h.Fin, h.Length)
	c.asm.Limit = limit
	return err
}

// stopped reports whether a loop must end because the handler's context
// ended. After the peer's CLOSE (or a bad frame header the background
// reader met) a loop first reads the data frames the peer sent before
// it, which the background reader kept in the read buffer: whether the
// CLOSE was met by the loop or by the background reader, the loop sees
// every message that came before it.
func (c *Conn) stopped() bool {
	return c.ctx.Err() != nil && !c.keptBeforeClose()
}

// keptBeforeClose reports whether the peer's input has ended at a known
// place, its CLOSE or a violation the background reader found behind
// kept data, and data sent before it is still in the read buffer (the
// buffer ends there: see controlAt and readAhead). The caller holds
// readMu.
func (c *Conn) keptBeforeClose() bool {
	if c.rd.buffered() == 0 && c.remaining == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.peerClosed || c.st.cutAtViolation
}

// errStop ends a loop because the handler's context ended.
var errStop = errors.New("wsconn: context ended")

// loopErr turns the error that stopped a read into what Err reports.
func (c *Conn) loopErr(err error) error {
	switch err {
	case errInterrupted, errReadEnded, errStop:
		return c.endOfLoop()
	}
	if ended, rerr := c.loopOutcome(); ended {
		return rerr
	}
	return err
}

// endOfLoop is what Err reports for a loop that ends because the inbound
// side ended (the read error, nil after a clean close) or the handler's
// context did (its cause).
func (c *Conn) endOfLoop() error {
	if ended, err := c.loopOutcome(); ended {
		return err
	}
	cause := context.Cause(c.ctx)
	if colibriMade(cause) && c.closedBy() == SideLocal {
		// The handler returned, or out.Close was answered: loops end
		// cleanly, as they do when the peer's answer reaches them first.
		return nil
	}
	return cause
}

// frameLimit is the largest frame a Frames loop accepts.
func (c *Conn) frameLimit() int64 {
	if c.set.maxFrame > 0 {
		return c.set.maxFrame
	}
	return c.set.maxMessage
}

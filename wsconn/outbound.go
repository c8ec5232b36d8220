package wsconn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/klauspost/compress/flate"
	"io"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/messages"
)

// Outbound is the sending side of a connection. It is safe for concurrent
// use: whole messages from different goroutines never interleave, and PING,
// PONG and CLOSE frames go out between the fragments of a long message
// rather than behind it.
//
// The context of a write bounds only the wait for the writer, not the
// write itself, which Config.WriteTimeout bounds. After the connection
// started closing, writes return an error matching ErrClosed.
type Outbound struct {
	c *Conn
}

// smallWrite is the payload size up to which header and payload are copied
// into one buffer for a single write; larger payloads go out with writev.
const smallWrite = 2048

// WriteOption adjusts one write.
type WriteOption uint8

// Uncompressed sends the message as it is even when permessage-deflate is
// on: for payloads that are already compressed (images, archives).
const Uncompressed WriteOption = 1

func uncompressed(opts []WriteOption) bool {
	for _, o := range opts {
		if o == Uncompressed {
			return true
		}
	}
	return false
}

// WriteText sends s as one text message, fragmented at
// Config.FragmentSize.
func (o *Outbound) WriteText(ctx context.Context, s string, opts ...WriteOption) error {
	return o.c.writeMessage(ctx, frames.OpText, unsafe.Slice(unsafe.StringData(s), len(s)), uncompressed(opts))
}

// WriteBinary sends p as one binary message, fragmented at
// Config.FragmentSize. p is not retained after WriteBinary returns.
func (o *Outbound) WriteBinary(ctx context.Context, p []byte, opts ...WriteOption) error {
	return o.c.writeMessage(ctx, frames.OpBinary, p, uncompressed(opts))
}

// WriteMessage sends m, fragmented at Config.FragmentSize.
func (o *Outbound) WriteMessage(ctx context.Context, m messages.Message, opts ...WriteOption) error {
	return o.c.writeMessage(ctx, m.Kind.Opcode(), m.Payload, uncompressed(opts))
}

// ErrFrameSequence is returned by WriteFrame for a frame that does not fit
// the message being sent: a continuation with no message open, a CLOSE
// frame (use Close), or reserved bits without a negotiated extension.
var ErrFrameSequence = errors.New("wsconn: frame does not fit the message being sent")

// WriteFrame sends one frame as given. Data frames with FIN unset open a
// fragmented message: other writers wait until its final continuation
// frame, which must come from the same goroutine. PING and PONG frames may
// be sent at any time. Use Close to send a CLOSE frame.
func (o *Outbound) WriteFrame(ctx context.Context, f frames.Frame) error {
	c := o.c
	switch {
	case f.Op == frames.OpClose || f.Op.IsReserved() || f.Rsv != 0:
		return ErrFrameSequence
	case f.Op.IsControl():
		if len(f.Payload) > frames.MaxControlPayload || !f.Fin {
			return frames.ErrControlTooLong
		}
		return c.writeControlNow(ctx, f.Op, f.Payload)
	}
	if f.Op == frames.OpContinuation {
		if !c.fragOpen {
			return ErrFrameSequence
		}
	} else if err := c.lockMsg(ctx); err != nil {
		return err
	}
	c.fragOpen = !f.Fin
	err := c.writeFrame(f.Op, f.Fin, 0, f.Payload)
	if err != nil {
		c.fragOpen = false
	}
	c.sentFrame(f.Op, len(f.Payload), !c.fragOpen)
	if !c.fragOpen {
		c.stats.MessagesOut.Add(1)
		c.unlockMsg()
	}
	return err
}

// Writer returns a writer for one message of the given kind, sent as a
// frame per Config.FragmentSize bytes written and a final frame on Close.
// With permessage-deflate the message is compressed as it streams, unless
// opts say Uncompressed. Other writers wait until Close; PING and PONG
// frames still go out in between. The writer is not safe for concurrent
// use.
func (o *Outbound) Writer(ctx context.Context, kind messages.Kind, opts ...WriteOption) (io.WriteCloser, error) {
	c := o.c
	if err := c.lockMsg(ctx); err != nil {
		return nil, err
	}
	w := &messageWriter{c: c, op: kind.Opcode(), kind: kind, buf: bufpool.Get(0)}
	if d := c.deflate; d != nil && !uncompressed(opts) {
		w.d, w.rsv = d, frames.Rsv1
		d.out.reset()
		w.fw = d.compressor()
	}
	return w, nil
}

type messageWriter struct {
	c      *Conn
	op     frames.Opcode
	kind   messages.Kind
	size   int64 // payload bytes written, before compression
	rsv    byte
	buf    *[]byte
	d      *deflateState // compressing into d.out, when set
	fw     *flate.Writer
	closed bool
	err    error
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	w.size += int64(len(p))
	if w.d != nil {
		return w.writeCompressed(p)
	}
	size := w.c.set.fragment
	n := len(p)
	for len(p) > 0 {
		b := *w.buf
		if len(b) == 0 && len(p) >= size {
			// A whole fragment straight from p, without copying.
			if w.err = w.flush(p[:size], false); w.err != nil {
				return n - len(p), w.err
			}
			p = p[size:]
			continue
		}
		k := min(size-len(b), len(p))
		w.buf = bufpool.Grow(w.buf, len(b)+k)
		*w.buf = append(*w.buf, p[:k]...)
		p = p[k:]
		if len(*w.buf) == size {
			if w.err = w.flush(*w.buf, false); w.err != nil {
				return n - len(p), w.err
			}
			*w.buf = (*w.buf)[:0]
		}
	}
	return n, nil
}

// writeCompressed feeds the compressor and sends whole fragments of its
// output, always holding back the last four bytes: they may be the empty
// block that Close removes.
func (w *messageWriter) writeCompressed(p []byte) (int, error) {
	n, _ := w.fw.Write(p)
	size := w.c.set.fragment
	out := &w.d.out
	for len(out.unsent()) >= size+4 {
		frag := out.unsent()[:size]
		out.sent += size
		if w.err = w.flush(frag, false); w.err != nil {
			return n, w.err
		}
	}
	return n, nil
}

func (w *messageWriter) flush(p []byte, fin bool) error {
	err := w.c.writeFrame(w.op, fin, w.rsv, p)
	w.op, w.rsv = frames.OpContinuation, 0
	return err
}

// Close sends the final frame and lets other writers go.
func (w *messageWriter) Close() error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	err := w.err
	if err == nil {
		if w.d != nil {
			_ = w.fw.Flush()
			rest := w.d.out.unsent()
			err = w.flush(rest[:len(rest)-4], true)
		} else {
			err = w.flush(*w.buf, true)
		}
		w.c.stats.MessagesOut.Add(1)
		w.c.sent(w.kind, w.size)
	}
	if w.d != nil {
		if w.d.params.ownNoTakeover {
			putCompressor(w.d.level, w.fw)
		}
		w.d.release()
	}
	bufpool.Put(w.buf)
	w.buf = nil
	w.c.unlockMsg()
	return err
}

// Ping sends a PING frame with payload (at most 125 bytes). The answer is
// handled by colibri; any frame from the peer counts as a sign of life.
func (o *Outbound) Ping(ctx context.Context, payload []byte) error {
	if len(payload) > frames.MaxControlPayload {
		return frames.ErrControlTooLong
	}
	return o.c.writeControlNow(ctx, frames.OpPing, payload)
}

// Close starts the closing handshake now: the CLOSE frame goes out after
// the message being written, later writes fail with ErrClosed, and inbound
// loops end cleanly when the peer's CLOSE arrives. The handler should then
// return; what it returns no longer changes the code. Returning a
// *CloseError from the handler is the shorter way to the same end.
func (o *Outbound) Close(code frames.CloseCode, reason string) error {
	if _, err := frames.AppendClose(nil, code, reason); err != nil {
		return err
	}
	c := o.c
	if c.closeSent.Load() {
		return ErrClosed
	}
	c.sendClose(code, reason)
	return nil
}

// ---- message and socket locks ----

func (c *Conn) lockMsg(ctx context.Context) error {
	for !c.msgLock.take() {
		select {
		case <-c.msgLock.given():
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-c.wdone.wait():
			return ErrClosed
		}
	}
	return nil
}

// tryLockMsg takes the message lock if it is free.
func (c *Conn) tryLockMsg() bool { return c.msgLock.take() }

func (c *Conn) unlockMsg() { c.msgLock.give() }

// unlockSock releases the socket lock, first sending control frames that
// were queued while it was held.
func (c *Conn) unlockSock() {
	for {
		c.sockMu.Unlock()
		if c.ctrlPending.Load() == 0 || !c.sockMu.TryLock() {
			return
		}
		c.flushControl()
	}
}

// writeMessage sends p as one message, compressed when permessage-deflate
// is on and p is large enough, and fragmented.
func (c *Conn) writeMessage(ctx context.Context, op frames.Opcode, p []byte, plain bool) error {
	if err := c.lockMsg(ctx); err != nil {
		return err
	}
	defer c.unlockMsg()
	msgKind, msgLen := messages.Kind(op), int64(len(p))
	var rsv byte
	if d := c.deflate; d != nil && !plain && len(p) >= d.threshold {
		p, rsv = d.compress(p), frames.Rsv1
		defer d.release()
	}
	size := c.set.fragment
	for {
		n := min(len(p), size)
		fin := n == len(p)
		if err := c.writeFrame(op, fin, rsv, p[:n]); err != nil {
			return err
		}
		if fin {
			c.stats.MessagesOut.Add(1)
			c.sent(msgKind, msgLen)
			return nil
		}
		p, op, rsv = p[n:], frames.OpContinuation, 0
	}
}

// writeFrame sends one data frame; the caller holds the message lock.
func (c *Conn) writeFrame(op frames.Opcode, fin bool, rsv byte, p []byte) error {
	if c.closeSent.Load() {
		return ErrClosed
	}
	c.sockMu.Lock()
	defer c.unlockSock()
	if c.ctrlPending.Load() != 0 {
		c.flushControl()
	}
	if c.closeSent.Load() {
		return ErrClosed
	}
	return c.writeLocked(frames.Header{Op: op, Fin: fin, Rsv: rsv, Length: int64(len(p))}, p)
}

// writeLocked writes one frame; the caller holds the socket lock.
func (c *Conn) writeLocked(h frames.Header, p []byte) error {
	if c.wbroken {
		return ErrClosed
	}
	if c.client {
		h.Masked = true
		_, _ = rand.Read(h.Mask[:])
	}
	hn := frames.PutHeader(c.whdr[:], h)
	c.setWriteDeadline()
	var err error
	switch {
	case c.client:
		err = c.writeMasked(c.whdr[:hn], p, h.Mask)
	case len(p) <= smallWrite:
		b := bufpool.Get(hn + len(p))
		copy(*b, c.whdr[:hn])
		copy((*b)[hn:], p)
		_, err = c.nc.Write(*b)
		bufpool.Put(b)
	default:
		iv := iovecPool.Get().(*iovecs)
		iv.v[0], iv.v[1] = c.whdr[:hn], p
		err = iv.write(c.nc, 2)
		iovecPool.Put(iv)
	}
	if err != nil {
		return c.writeFailed(err)
	}
	c.stats.BytesOut.Add(int64(len(p)))
	return nil
}

// writeMasked copies and masks the payload in pooled chunks; the caller's
// bytes are never modified.
func (c *Conn) writeMasked(hdr, p []byte, key [4]byte) error {
	const chunk = 32 << 10
	b := bufpool.Get(min(len(hdr)+len(p), chunk))
	defer bufpool.Put(b)
	out := append((*b)[:0], hdr...)
	pos := 0
	for {
		k := min(len(p), cap(out)-len(out))
		start := len(out)
		out = append(out, p[:k]...)
		pos = frames.Mask(out[start:], key, pos)
		if _, err := c.nc.Write(out); err != nil {
			return err
		}
		p = p[k:]
		if len(p) == 0 {
			return nil
		}
		out = out[:0]
	}
}

// writeFailed marks the stream unusable: a partly written frame cannot be
// followed by anything, not even a CLOSE.
func (c *Conn) writeFailed(err error) error {
	c.wbroken = true
	c.closeWrites()
	cause := err
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		cause = ErrWriteTimeout
	}
	c.stop(&CloseError{Code: frames.CloseAbnormal, Reason: "write failed", Err: cause, byColibri: true})
	// Matches ErrClosed, so that a handler returning it is not taken for
	// a failure of its own: the peer went away.
	return fmt.Errorf("%w: write: %w", ErrClosed, cause)
}

// closeWrites wakes writers waiting for the message lock: nothing more
// can be sent.
func (c *Conn) closeWrites() {
	c.wdone.fire()
}

// ---- control frames ----

// queueControl stores a control frame to be sent ahead of data, without
// waiting: if the socket is busy, its holder sends the frame when it lets
// go. A newer PONG replaces an unsent one (RFC 6455 §5.5.3).
func (c *Conn) queueControl(kind uint32, p []byte) {
	c.ctrlMu.Lock()
	if c.ctrl == nil {
		c.ctrl = controlPool.Get().(*controlFrames)
	}
	switch kind {
	case ctrlPong:
		c.ctrl.pongLen = copy(c.ctrl.pong[:], p)
	case ctrlPing:
		copy(c.ctrl.ping[:], p)
	case ctrlClose:
		c.ctrl.closeLen = copy(c.ctrl.close[:], p)
	}
	c.ctrlPending.Or(kind)
	c.ctrlMu.Unlock()
	if c.sockMu.TryLock() {
		c.flushControl()
		c.unlockSock()
	}
}

// writeControlNow sends a PING or PONG the caller asked for and waits
// until it is written.
func (c *Conn) writeControlNow(ctx context.Context, op frames.Opcode, p []byte) error {
	if c.closeSent.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	c.sockMu.Lock()
	defer c.unlockSock()
	if c.closeSent.Load() {
		return ErrClosed
	}
	return c.writeLocked(frames.Header{Op: op, Fin: true, Length: int64(len(p))}, p)
}

// flushControl writes queued control frames; the caller holds the socket
// lock. CLOSE goes last, and nothing is sent after it.
func (c *Conn) flushControl() {
	c.ctrlMu.Lock()
	pending := c.ctrlPending.Swap(0)
	send := func(op frames.Opcode, p []byte) {
		if c.closeOut || c.wbroken {
			return
		}
		if op == frames.OpPing {
			c.keepAlive.pingLeft(c)
		}
		_ = c.writeLocked(frames.Header{Op: op, Fin: true, Length: int64(len(p))}, p)
		if op == frames.OpClose && !c.wbroken {
			c.closeOut = true
		}
	}
	if f := c.ctrl; f != nil {
		if pending&ctrlPong != 0 {
			send(frames.OpPong, f.pong[:f.pongLen])
		}
		if pending&ctrlPing != 0 {
			send(frames.OpPing, f.ping[:])
		}
		if pending&ctrlClose != 0 {
			send(frames.OpClose, f.close[:f.closeLen])
		}
		c.ctrl = nil
		controlPool.Put(f)
	}
	c.ctrlMu.Unlock()
}

// controlFrames holds the payloads of queued control frames from the
// moment they are queued until the socket's holder writes them; pooled,
// so that a connection holds none in between.
type controlFrames struct {
	pongLen, closeLen int
	pong, close       [frames.MaxControlPayload]byte
	ping              [8]byte
}

var controlPool = sync.Pool{New: func() any { return new(controlFrames) }}

// queueClose sends a CLOSE frame ahead of any queued data; later data
// writes fail with ErrClosed.
func (c *Conn) queueClose(code frames.CloseCode, reason string) {
	if c.closeSent.Swap(true) {
		return
	}
	c.closeWrites()
	var body [frames.MaxControlPayload]byte
	p, err := frames.AppendClose(body[:0], code, truncateReason(reason))
	if err != nil {
		p, _ = frames.AppendClose(body[:0], frames.CloseInternalError, "")
	}
	c.queueControl(ctrlClose, p)
	c.boundReads()
}

// sendClose sends the CLOSE frame that ends the connection after the
// message being written, waiting at most the write timeout for it.
func (c *Conn) sendClose(code frames.CloseCode, reason string) {
	if c.closeSent.Load() {
		return
	}
	wait := c.set.writeTimeout
	if wait <= 0 {
		wait = c.set.closeTimeout
	}
	locked := c.tryLockMsg()
	if !locked {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		locked = c.lockMsg(ctx) == nil
		cancel()
	}
	c.queueClose(code, reason)
	// Make sure it left even if another goroutine held the socket.
	c.sockMu.Lock()
	if c.ctrlPending.Load() != 0 {
		c.flushControl()
	}
	c.unlockSock()
	if locked {
		c.unlockMsg()
	}
}

// truncateReason cuts a close reason to what fits in a CLOSE frame,
// keeping whole UTF-8 sequences.
func truncateReason(s string) string {
	if len(s) <= frames.MaxCloseReason {
		return s
	}
	s = s[:frames.MaxCloseReason]
	for i := len(s) - 1; i >= 0 && i >= len(s)-3; i-- {
		if s[i] < 0x80 || s[i] >= 0xC0 {
			// s[i] starts a sequence (or is ASCII): keep it only if complete.
			if s[i] >= 0xC0 && !completeRune(s[i:]) {
				return s[:i]
			}
			return s
		}
	}
	return s
}

func completeRune(s string) bool {
	n := 0
	switch b := s[0]; {
	case b >= 0xF0:
		n = 4
	case b >= 0xE0:
		n = 3
	default:
		n = 2
	}
	return len(s) >= n
}

// setWriteDeadline bounds the next write by WriteTimeout. Moving a
// deadline costs a timer update in the runtime, so it is moved only when
// it has come within nine tenths of the timeout: each write then gets
// between 0.9 and 1 times WriteTimeout. The caller holds the socket lock.
func (c *Conn) setWriteDeadline() {
	wt := c.set.writeTimeout
	if wt <= 0 {
		return
	}
	now := time.Now()
	if c.wdeadline-now.UnixNano() > int64(wt-wt/10) {
		return
	}
	d := now.Add(wt)
	c.wdeadline = d.UnixNano()
	_ = c.nc.SetWriteDeadline(d)
}

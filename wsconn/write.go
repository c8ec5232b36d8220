package wsconn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/messages"
)

// writer is the socket's writing state, under Conn.sockMu.
type writer struct {
	open     *messageWriter
	deadline time.Time // the write deadline last set
	hdr      [frames.MaxHeaderSize]byte
	closeOut bool // our CLOSE frame is on the wire: nothing may follow it
	broken   bool // a write failed or the transport is torn down: nothing more may be written
}

// smallWrite is the payload size up to which header and payload are copied
// into one buffer for a single write; larger payloads go out with writev.
const smallWrite = 2048

// ---- the message lock ----

// lockMsg takes the message lock for a new message, waiting at most until
// ctx ends; it refuses once the connection is closing.
func (c *Conn) lockMsg(ctx context.Context) error {
	select {
	case c.msgLock <- struct{}{}:
	default:
		select {
		case c.msgLock <- struct{}{}:
		case <-ctx.Done():
			if c.closingStarted() {
				return c.closedErr()
			}
			return context.Cause(ctx)
		case <-c.ctx.Done():
			return c.closedErr()
		}
	}
	if c.closingStarted() {
		c.unlockMsg()
		return c.closedErr()
	}
	return nil
}

// unlockMsg lets the message lock go, first sending the CLOSE frame that
// waits for it, if any.
func (c *Conn) unlockMsg() {
	<-c.msgLock
	c.sendPendingClose()
}

// closingStarted reports whether closing has begun.
func (c *Conn) closingStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.closing
}

// sendPendingClose sends the CLOSE frame that closing decided on if it
// still waits and the message lock is free; otherwise the lock's holder
// sends it as it lets go (unlockMsg).
func (c *Conn) sendPendingClose() {
	c.mu.Lock()
	pending := c.st.closing && !c.st.queued && !c.st.noFrame
	c.mu.Unlock()
	if !pending {
		return
	}
	select {
	case c.msgLock <- struct{}{}:
	default:
		return
	}
	c.queueClose()
	<-c.msgLock
}

// queueClose queues the CLOSE frame that closing decided on, ahead of any
// data; it goes out as soon as the socket is free. It records the CLOSE
// as queued only once it is in the control queue, so that flushClose,
// which trusts the record, never closes the transport before it: two
// callers may queue it both, into the queue's one CLOSE slot, and only
// one CLOSE goes out.
func (c *Conn) queueClose() {
	c.mu.Lock()
	if c.st.queued || c.st.noFrame {
		c.mu.Unlock()
		return
	}
	code, reason := c.st.code, c.st.reason
	c.mu.Unlock()
	var body [frames.MaxControlPayload]byte
	p, err := frames.AppendClose(body[:0], code, reason)
	if err != nil {
		p, _ = frames.AppendClose(body[:0], frames.CloseInternalError, "")
	}
	c.queueControl(ctrlClose, p)
	c.mu.Lock()
	c.st.queued = true
	c.mu.Unlock()
}

// ---- writing data ----

// writeMessage sends p as one message, compressed when permessage-deflate
// is on and p is large enough, and fragmented.
func (c *Conn) writeMessage(ctx context.Context, op frames.Opcode, p []byte, plain bool) error {
	if err := c.lockMsg(ctx); err != nil {
		return err
	}
	defer c.unlockMsg()
	kind, size := messages.Kind(op), int64(len(p))
	var rsv byte
	if d := c.deflate; d != nil && !plain && len(p) >= d.threshold {
		p, rsv = d.compress(p), frames.Rsv1
		defer d.release()
	}
	fragment := c.set.fragment
	for {
		n := min(len(p), fragment)
		fin := n == len(p)
		if err := c.writeData(frames.Header{Op: op, Fin: fin, Rsv: rsv, Length: int64(n)}, p[:n]); err != nil {
			return err
		}
		if fin {
			c.sentMessage(kind, size)
			return nil
		}
		p, op, rsv = p[n:], frames.OpContinuation, 0
	}
}

// sentMessage counts a whole message sent and tells the observer.
func (c *Conn) sentMessage(kind messages.Kind, size int64) {
	c.stats.messagesOut.Add(1)
	if c.obs != nil {
		c.observe(func() { c.obs.Sent(kind, size) })
	}
}

// writeData sends one data frame; the caller holds the message lock.
func (c *Conn) writeData(h frames.Header, p []byte) error {
	c.sockMu.Lock()
	defer c.unlockSock()
	return c.writeLocked(h, p)
}

// writeLocked sends one data frame after any queued control frames; the
// caller holds the socket lock.
func (c *Conn) writeLocked(h frames.Header, p []byte) error {
	c.flushControl()
	if c.w.closeOut || c.w.broken {
		return c.closedErr()
	}
	if err := c.writeFrame(h, p); err != nil {
		return err
	}
	if !h.Op.IsControl() {
		c.stats.bytesOut.Add(int64(len(p)))
	}
	return nil
}

// writeFrame writes one frame to the socket; the caller holds the socket
// lock.
func (c *Conn) writeFrame(h frames.Header, p []byte) error {
	if c.client {
		h.Masked = true
		_, _ = rand.Read(h.Mask[:])
	}
	hn := frames.PutHeader(c.w.hdr[:], h)
	c.setWriteDeadline()
	var err error
	switch {
	case c.client:
		err = c.writeMasked(c.w.hdr[:hn], p, h.Mask)
	case len(p) <= smallWrite:
		b := bufpool.Get(hn + len(p))
		copy(*b, c.w.hdr[:hn])
		copy((*b)[hn:], p)
		_, err = c.nc.Write(*b)
		bufpool.Put(b)
	default:
		iv := iovecPool.Get().(*iovecs)
		iv.v[0], iv.v[1] = c.w.hdr[:hn], p
		_, err = iv.write(c.nc, 2)
		clear(iv.v[:2])
		iovecPool.Put(iv)
	}
	if err != nil {
		return c.writeFailed(err)
	}
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

// writeFailed marks the stream unusable, since a partly written frame
// cannot be followed by anything, not even a CLOSE, and ends the
// connection. It returns what every write returns from now on (ErrClosed
// wrapping the cause closing began with, which is this failure unless
// closing began first: the peer's CLOSE often breaks a write under way),
// and this failure too. The caller holds the socket lock.
func (c *Conn) writeFailed(err error) error {
	c.w.broken = true
	cause, by := err, SidePeer
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		cause, by = ErrWriteTimeout, SideLocal
	}
	c.transportFailed(&CloseError{Code: frames.CloseAbnormal, Reason: "write failed", Err: cause, byColibri: true}, by)
	closed := c.closedErr()
	if errors.Is(closed, cause) {
		return closed
	}
	return fmt.Errorf("%w; write: %w", closed, cause)
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
	if c.w.deadline.Sub(now) > wt-wt/10 {
		return
	}
	c.w.deadline = now.Add(wt)
	_ = c.nc.SetWriteDeadline(c.w.deadline)
}

// unlockSock releases the socket lock, then sends the control frames
// queued while it was held, taking the lock again if it is free. None is
// missed: a frame's queueControl sets pending before its TryLock fails,
// which comes before this Unlock, which comes before the Load here.
func (c *Conn) unlockSock() {
	for {
		c.sockMu.Unlock()
		if c.ctrl.pending.Load() == 0 || !c.sockMu.TryLock() {
			return
		}
		c.flushControl()
	}
}

// ---- control frames ----

// Kinds of queued control frames.
const (
	ctrlPong uint32 = 1 << iota
	ctrlPing
	ctrlClose
)

// controlQueue holds control frames from the moment they are queued,
// without waiting for the socket, until the socket's holder writes them
// ahead of its next data frame or as it lets go. A newer PONG replaces an
// unsent one (RFC 6455 §5.5.3).
type controlQueue struct {
	pending atomic.Uint32 // kinds queued, readable without mu
	mu      sync.Mutex
	f       *controlFrames // nil while none is queued
}

// controlFrames holds the payloads of queued control frames; pooled, so
// that a connection holds none in between.
type controlFrames struct {
	pongLen, closeLen int
	pong, close       [frames.MaxControlPayload]byte
	ping              [8]byte
}

var controlPool = sync.Pool{New: func() any { return new(controlFrames) }}

// queueControl queues a control frame and sends it at once if the socket
// is free.
func (c *Conn) queueControl(kind uint32, p []byte) {
	q := &c.ctrl
	q.mu.Lock()
	if q.f == nil {
		q.f = controlPool.Get().(*controlFrames)
	}
	switch kind {
	case ctrlPong:
		q.f.pongLen = copy(q.f.pong[:], p)
	case ctrlPing:
		copy(q.f.ping[:], p)
	case ctrlClose:
		q.f.closeLen = copy(q.f.close[:], p)
	}
	q.pending.Or(kind)
	q.mu.Unlock()
	if c.sockMu.TryLock() {
		c.flushControl()
		c.unlockSock()
	}
}

// flushControl writes the queued control frames, CLOSE last; nothing goes
// out after CLOSE. The caller holds the socket lock.
func (c *Conn) flushControl() {
	q := &c.ctrl
	if q.pending.Load() == 0 {
		return
	}
	q.mu.Lock()
	kinds, f := q.pending.Swap(0), q.f
	q.f = nil
	q.mu.Unlock()
	if f == nil {
		return
	}
	defer controlPool.Put(f)
	send := func(op frames.Opcode, p []byte) bool {
		if c.w.closeOut || c.w.broken {
			return false
		}
		return c.writeFrame(frames.Header{Op: op, Fin: true, Length: int64(len(p))}, p) == nil
	}
	if kinds&ctrlPong != 0 {
		send(frames.OpPong, f.pong[:f.pongLen])
	}
	if kinds&ctrlPing != 0 {
		// The pong timeout and the round trip count from here; the
		// answer may be read before the write returns.
		c.timer.pingLeft(c)
		send(frames.OpPing, f.ping[:])
	}
	if kinds&ctrlClose != 0 && send(frames.OpClose, f.close[:f.closeLen]) {
		c.w.closeOut = true
		c.mu.Lock()
		c.st.closeDeadline = time.Now().Add(c.set.closeTimeout)
		c.applyReadDeadline()
		c.mu.Unlock()
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

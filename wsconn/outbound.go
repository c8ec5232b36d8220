package wsconn

import (
	"context"
	"io"
	"unsafe"

	"github.com/klauspost/compress/flate"

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
// write itself, which Config.WriteTimeout bounds. Once the connection has
// started closing (for whatever reason: the peer's CLOSE, a shutdown, a
// failed task, a broken transport, out.Close), every write returns an
// error matching ErrClosed that also wraps the cause (a *CloseError with
// the close code, ErrShutdown, ...); only a Writer opened before may
// finish its message, which the CLOSE frame then follows, until the
// handler returns: that abandons the Writer, and the CLOSE goes out
// between its fragments. A message of
// neither kind (see ErrInvalidKind) is refused first, closing or not. A write that returned nil was handed
// to the socket; it is delivered before colibri's CLOSE frame.
type Outbound struct {
	c *Conn
}

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

// WriteMessage sends m, fragmented at Config.FragmentSize. A Kind other
// than KindText and KindBinary gives ErrInvalidKind.
func (o *Outbound) WriteMessage(ctx context.Context, m messages.Message, opts ...WriteOption) error {
	if !dataKind(m.Kind) {
		return ErrInvalidKind
	}
	return o.c.writeMessage(ctx, m.Kind.Opcode(), m.Payload, uncompressed(opts))
}

// dataKind reports whether k is a kind of data message.
func dataKind(k messages.Kind) bool { return k == messages.KindText || k == messages.KindBinary }

// Writer returns a writer that owns one outgoing message of the given kind
// until its Close: each Config.FragmentSize bytes written go out as a
// frame, and Close sends the final one. Other messages wait until then
// (a write from the goroutine that holds the Writer would wait for its
// context); PING and PONG frames still go out in between. With
// permessage-deflate the message is compressed as it streams, unless opts
// say Uncompressed.
//
// A Writer left open when the handler returns is abandoned: the message
// ends unfinished, the closing handshake goes ahead at once, and the
// Writer's later calls return ErrClosed. The Writer itself is not safe for
// concurrent use. A kind other than KindText and KindBinary gives
// ErrInvalidKind.
func (o *Outbound) Writer(ctx context.Context, kind messages.Kind, opts ...WriteOption) (io.WriteCloser, error) {
	c := o.c
	if !dataKind(kind) {
		return nil, ErrInvalidKind
	}
	if err := c.lockMsg(ctx); err != nil {
		return nil, err
	}
	w := &messageWriter{c: c, op: kind.Opcode(), kind: kind, buf: bufpool.Get(0)}
	if d := c.deflate; d != nil && !uncompressed(opts) {
		w.d, w.rsv = d, frames.Rsv1
		d.out.reset()
		w.fw = d.compressor()
	}
	c.sockMu.Lock()
	// Looked at again under the socket lock, which abandonWriter takes
	// too: a handler that returned since lockMsg has abandoned the open
	// Writer already, and would not see this one (closing begins in the
	// same step as its return).
	if c.closingStarted() {
		c.unlockSock()
		w.free()
		c.unlockMsg()
		return nil, c.closedErr()
	}
	c.w.open = w
	c.unlockSock()
	return w, nil
}

// messageWriter is the Writer of one message. It owns the message lock
// while it is the connection's open Writer (c.w.open, under the socket
// lock): from Outbound.Writer until Close, or until the handler returns and
// the connection abandons it, letting the lock go on its behalf.
type messageWriter struct {
	c    *Conn
	op   frames.Opcode
	kind messages.Kind
	size int64 // payload bytes written, before compression
	rsv  byte
	buf  *[]byte
	d    *deflateState // compressing into d.out, when set
	fw   *flate.Writer
	err  error
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.buf == nil {
		return 0, ErrClosed
	}
	if w.err == nil && !w.owned() {
		w.err = w.c.closedErr()
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
			if w.err = w.flush(p[:size]); w.err != nil {
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
			if w.err = w.flush(*w.buf); w.err != nil {
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
		if w.err = w.flush(frag); w.err != nil {
			return n, w.err
		}
	}
	out.compact()
	return n, nil
}

// owned reports whether the Writer still owns its message.
func (w *messageWriter) owned() bool {
	w.c.sockMu.Lock()
	defer w.c.unlockSock()
	return w.c.w.open == w
}

// flush sends p as the message's next frame, unless the connection
// abandoned the Writer.
func (w *messageWriter) flush(p []byte) error {
	c := w.c
	c.sockMu.Lock()
	defer c.unlockSock()
	if c.w.open != w {
		return c.closedErr()
	}
	err := c.writeLocked(frames.Header{Op: w.op, Rsv: w.rsv, Length: int64(len(p))}, p)
	w.op, w.rsv = frames.OpContinuation, 0
	return err
}

// Close sends the final frame and lets other writers go.
func (w *messageWriter) Close() error {
	if w.buf == nil {
		return ErrClosed // closed before
	}
	c := w.c
	final := *w.buf
	if w.d != nil {
		_ = w.fw.Flush()
		rest := w.d.out.unsent()
		final = rest[:len(rest)-4]
		// The compressor holds input back until a block fills, so the
		// flush may bring more than a fragment: FragmentSize still holds.
		for size := c.set.fragment; len(final) > size && w.err == nil; final = final[size:] {
			w.err = w.flush(final[:size])
		}
	}
	c.sockMu.Lock()
	owned := c.w.open == w
	err := w.err
	if !owned {
		err = c.closedErr()
	} else if err == nil {
		err = c.writeLocked(frames.Header{Op: w.op, Fin: true, Rsv: w.rsv, Length: int64(len(final))}, final)
	}
	if owned {
		c.w.open = nil
	}
	c.unlockSock()
	if owned && err == nil {
		c.sentMessage(w.kind, w.size)
	}
	w.free()
	if owned {
		c.unlockMsg()
	}
	return err
}

func (w *messageWriter) free() {
	if w.d != nil {
		if w.d.params.ownNoTakeover {
			putCompressor(w.d.level, w.fw)
		}
		w.d.release()
	}
	bufpool.Put(w.buf)
	w.buf = nil
}

// abandonWriter ends the open Writer, if any, when the handler returns:
// its message stays unfinished, and its later calls fail. It reports
// whether there was one, whose message lock the caller now holds and
// lets go, so that the closing handshake need not wait for it.
func (c *Conn) abandonWriter() bool {
	c.sockMu.Lock()
	open := c.w.open != nil
	c.w.open = nil
	c.unlockSock()
	return open
}

// Ping sends a PING frame with payload (at most 125 bytes). The answer is
// handled by colibri; any frame from the peer counts as a sign of life.
// A PING waits for no message, only for the frame being written (bounded
// by Config.WriteTimeout), so ctx has no wait to bound: a ctx that has
// already ended returns its cause, and nothing is sent.
func (o *Outbound) Ping(ctx context.Context, payload []byte) error {
	if len(payload) > frames.MaxControlPayload {
		return frames.ErrControlTooLong
	}
	c := o.c
	// As for every write, closing decides the error: the handler's context
	// ends because closing began.
	if err := ctx.Err(); err != nil && !c.closingStarted() {
		return context.Cause(ctx)
	}
	if c.closingStarted() {
		return c.closedErr()
	}
	c.sockMu.Lock()
	defer c.unlockSock()
	return c.writeLocked(frames.Header{Op: frames.OpPing, Fin: true, Length: int64(len(payload))}, payload)
}

// Close starts the closing handshake now with code and reason: the CLOSE
// frame goes out after the message being written, later writes fail with
// ErrClosed (an open Writer may finish its message), and inbound loops end cleanly when the peer's CLOSE arrives
// (reads wait at most Config.CloseTimeout for it). The handler should then
// return; what it returns no longer changes the code. Returning a
// *CloseError from the handler is the shorter way to the same end. Close
// returns ErrClosed when the connection is closing already, and frames'
// error (matching frames.ErrInvalidCloseCode, ErrCloseReasonTooLong or
// ErrInvalidCloseReason) for a code or reason that may not be sent;
// CloseNoStatus with an empty reason sends a CLOSE without a payload.
func (o *Outbound) Close(code CloseCode, reason string) error {
	if _, err := frames.AppendClose(nil, code, reason); err != nil {
		return err
	}
	if !o.c.beginClose(SideLocal, code, reason, nil, afterMessage) {
		return o.c.closedErr()
	}
	return nil
}

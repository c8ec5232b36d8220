package wsconn

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Prepared is a message framed once so that it can be sent to many
// connections without encoding it again: every server connection writes
// the same bytes. It is immutable and safe for concurrent use.
type Prepared struct {
	msg      messages.Message
	frame    []byte       // header and payload of one unmasked final frame
	deflated compressOnce // the compressed frame, made on first need
}

// Prepare frames m for sending with WritePrepared. The payload is copied,
// so the caller may reuse it. A Kind other than KindText and KindBinary
// makes the writes of the result fail with ErrInvalidKind.
func Prepare(m messages.Message) *Prepared {
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], frames.Header{Op: m.Kind.Opcode(), Fin: true, Length: int64(len(m.Payload))})
	frame := make([]byte, n+len(m.Payload))
	copy(frame, hb[:n])
	copy(frame[n:], m.Payload)
	return &Prepared{msg: messages.Message{Kind: m.Kind, Payload: frame[n:]}, frame: frame}
}

// Message returns the prepared message. Its payload must not be modified.
func (p *Prepared) Message() messages.Message { return p.msg }

// Len returns the size of the prepared message's frame, header and
// payload, as a server sends it without compression (a compressed or a
// client's masked frame differs).
func (p *Prepared) Len() int { return len(p.frame) }

// WritePrepared sends a prepared message as one frame, whatever its size,
// made once and shared by every connection. Where the connection cannot
// share it it is encoded afresh and written like WriteMessage, fragmented
// at Config.FragmentSize: on the client side, where every frame needs its
// own mask, where this side compresses with its own context, and where it
// compresses at another level than the one the shared compressed frame
// was made at.
func (o *Outbound) WritePrepared(ctx context.Context, p *Prepared) error {
	if !dataKind(p.msg.Kind) {
		return ErrInvalidKind
	}
	_, err := o.c.writeBatch(ctx, []*Prepared{p})
	return err
}

// compressed returns the message as one compressed frame at level, made
// once; nil when it was already made at another level.
func (p *Prepared) compressed(level int) []byte {
	p.deflated.once.Do(func() {
		var out bytes.Buffer
		fw := getCompressor(level, &out)
		_, _ = fw.Write(p.msg.Payload)
		_ = fw.Flush()
		putCompressor(level, fw)
		body := out.Bytes()
		body = body[:len(body)-4]
		var hb [frames.MaxHeaderSize]byte
		n := frames.PutHeader(hb[:], frames.Header{Op: p.msg.Kind.Opcode(), Fin: true, Rsv: frames.Rsv1, Length: int64(len(body))})
		p.deflated.level = level
		p.deflated.frame = append(hb[:n:n], body...)
	})
	if p.deflated.level != level {
		return nil
	}
	return p.deflated.frame
}

// maxBatch bounds how many prepared frames one WritePreparedBatch call puts
// in a single writev.
const maxBatch = 64

// WritePreparedBatch sends several prepared messages in order, with as few
// system calls as possible: on the server side, without per-connection
// compression, their shared frames go out in one writev per 64 messages. Otherwise it writes them one by one, as WritePrepared does.
// Control frames queued meanwhile go out before the batch.
//
// Like io.Writer, it returns n, the number of messages handed to the
// socket whole (ps[:n]; the peer may still not read them), and err
// explains why not all. ps[n] may have gone out in part: a write that
// fails partway ends the connection. With more than 64 messages it
// writes several batches, so an error can come after earlier batches
// were delivered; n counts them.
func (o *Outbound) WritePreparedBatch(ctx context.Context, ps []*Prepared) (int, error) {
	c := o.c
	for _, p := range ps {
		if !dataKind(p.msg.Kind) {
			return 0, ErrInvalidKind // before any is sent
		}
	}
	sent := 0
	for sent < len(ps) {
		n, err := c.writeBatch(ctx, ps[sent:sent+min(len(ps)-sent, maxBatch)])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// iovecs is the scratch of one writev: the slices to write, and the
// net.Buffers that walks a copy of them (walking empties the slices it
// has written, and v must still say what was sent); pooled, because the
// write keeps a reference that would move them to the heap.
type iovecs struct {
	v    [maxBatch][]byte
	walk [maxBatch][]byte
	bufs net.Buffers
}

var iovecPool = sync.Pool{New: func() any { return new(iovecs) }}

// write writes v[:n] to w with one writev where w supports it and returns
// the bytes written. v is left as it was: clear it before putting iv back.
func (iv *iovecs) write(w io.Writer, n int) (int64, error) {
	iv.bufs = iv.walk[:n:n]
	copy(iv.bufs, iv.v[:n])
	written, err := iv.bufs.WriteTo(w)
	iv.bufs = nil
	clear(iv.walk[:n])
	return written, err
}

// writeBatch writes ps, at most maxBatch, and returns how many went out
// whole, as WritePreparedBatch does.
func (c *Conn) writeBatch(ctx context.Context, ps []*Prepared) (int, error) {
	iv := iovecPool.Get().(*iovecs)
	defer func() {
		clear(iv.v[:])
		iovecPool.Put(iv)
	}()
	bufs := &iv.v
	for i, p := range ps {
		bufs[i] = c.sharedFrame(p)
		if bufs[i] == nil {
			// This connection encodes for itself: no shared bytes.
			for i, p := range ps {
				if err := c.writeMessage(ctx, p.msg.Kind.Opcode(), p.msg.Payload, false); err != nil {
					return i, err
				}
			}
			return len(ps), nil
		}
	}
	if err := c.lockMsg(ctx); err != nil {
		return 0, err
	}
	defer c.unlockMsg()
	c.sockMu.Lock()
	defer c.unlockSock()
	c.flushControl()
	if c.w.closeOut || c.w.broken {
		return 0, c.closedErr()
	}
	c.setWriteDeadline()
	written, err := iv.write(c.nc, len(ps))
	n := len(ps)
	if err != nil {
		n = wholeFrames(bufs[:len(ps)], written)
	}
	for i, p := range ps[:n] {
		// As on the wire: the compressed payload, when it is compressed.
		frame := bufs[i]
		c.stats.bytesOut.Add(int64(len(frame) - frames.HeaderSize(frame[0], frame[1])))
		c.sentMessage(p.msg.Kind, int64(len(p.msg.Payload)))
	}
	if err != nil {
		return n, c.writeFailed(err)
	}
	return n, nil
}

// wholeFrames returns how many of fs fit whole in their first written
// bytes.
func wholeFrames(fs [][]byte, written int64) int {
	for i, f := range fs {
		if written < int64(len(f)) {
			return i
		}
		written -= int64(len(f))
	}
	return len(fs)
}

// sharedFrame returns the bytes every server connection can send for p as
// they are, or nil when this connection must encode p itself.
func (c *Conn) sharedFrame(p *Prepared) []byte {
	if c.client {
		return nil
	}
	if d := c.deflate; d != nil && len(p.msg.Payload) >= d.threshold {
		if !d.params.ownNoTakeover {
			return nil
		}
		return p.compressed(d.level)
	}
	return p.frame
}

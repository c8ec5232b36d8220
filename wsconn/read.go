package wsconn

import (
	"errors"
	"io"
	"math"
	"net"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/messages"
)

// Reading frames. Everything here runs with c.readMu held: by a loop, by
// the background reader, or by the closing handshake.

var (
	errReadEnded   = errors.New("wsconn: inbound ended")
	errInterrupted = errors.New("wsconn: read interrupted")
)

// nextData returns the header of the next data frame, consumed, after
// servicing the control frames before it.
func (c *Conn) nextData() (frames.Header, error) {
	for {
		if c.remaining > 0 {
			// The rest of a frame that a loop abandoned.
			if err := c.skipPayload(c.remaining); err != nil {
				return frames.Header{}, err
			}
		}
		if c.stopped() {
			// Reading ends with the context only once the peer is done.
			if ended, _ := c.readState(); ended {
				return frames.Header{}, errReadEnded
			}
		}
		hb, err := c.rd.peekHeaderAt(0)
		if err != nil {
			return frames.Header{}, c.readError(err)
		}
		h, err := c.checkHeader(hb)
		if err != nil {
			return h, err
		}
		if h.Op.IsControl() {
			if err := c.controlAt(0, len(hb), h); err != nil {
				return h, err
			}
			continue
		}
		c.rd.discard(len(hb))
		c.hdr, c.remaining, c.maskPos = h, h.Length, 0
		return h, nil
	}
}

// checkHeader parses and checks the frame header hb at a frame boundary;
// a violation fails the connection.
func (c *Conn) checkHeader(hb []byte) (frames.Header, error) {
	h, err := c.parseHeader(hb)
	if err != nil {
		return h, c.violation(err)
	}
	c.heardFrame(h)
	return h, nil
}

// parseHeader parses the frame header hb and checks what a header alone
// shows: a violation it returns, without failing the connection.
func (c *Conn) parseHeader(hb []byte) (frames.Header, error) {
	h, err := frames.ParseHeader(hb)
	if err == nil {
		err = h.Check(!c.client, c.allowedRsv)
	}
	if err == nil && h.Rsv&frames.Rsv1 != 0 && h.Op == frames.OpContinuation {
		// RFC 7692 §6: only a message's first frame says it is compressed.
		err = frames.ErrReservedBits
	}
	if err == nil && !h.Op.IsControl() && c.set.maxFrame > 0 && h.Length > c.set.maxFrame {
		err = messages.ErrTooLarge
	}
	return h, err
}

// heardFrame tells the timer that a frame arrived. Each flag is written
// once between two ticks, so a frame costs two loads.
func (c *Conn) heardFrame(h frames.Header) {
	if !c.heard.Load() {
		c.heard.Store(true)
	}
	if !h.Op.IsControl() && !c.heardData.Load() {
		c.heardData.Store(true)
	}
}

// controlAt handles the control frame at off in the read buffer, whose
// header h is hn bytes long, and removes it. Its payload (at most 125 bytes) is unmasked in
// place, so a control frame costs no copy and no buffer of its own.
func (c *Conn) controlAt(off, hn int, h frames.Header) error {
	n := hn + int(h.Length)
	b, err := c.rd.peekAt(off, n)
	if err != nil {
		return c.readError(err)
	}
	p := b[hn:n]
	if h.Masked {
		frames.Mask(p, h.Mask, 0)
	}
	switch h.Op {
	case frames.OpPing:
		c.queueControl(ctrlPong, p)
	case frames.OpPong:
		c.timer.pong(c, p)
	case frames.OpClose:
		code, reason, err := frames.ParseClose(p)
		if err != nil {
			return c.violation(err)
		}
		// Nothing may follow the peer's CLOSE (RFC 6455 §5.5.1): what did
		// is dropped, so that a loop reads only the data kept before it.
		c.rd.truncate(off)
		c.peerClosing(code, reason)
		return errReadEnded
	}
	c.rd.cut(off, n)
	return nil
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
		// Counted as read, not as announced: a refused or cut frame
		// counts only what arrived.
		c.stats.bytesIn.Add(int64(n))
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

// payloadStep is the most a message buffer starts with, and the least it
// grows by.
const payloadStep = 16 << 10

// readMessagePayload appends n payload bytes of the current frame to buf,
// checking each piece with the assembler. The buffer grows only when full,
// by its own size or payloadStep, whichever is more (and the pool rounds
// sizes up to a power of two): it holds at most about twice the bytes that
// arrived, plus payloadStep, so a peer that announces a large frame and
// stalls costs little, while a frame of up to payloadStep is read in one
// piece and a large one in few copies.
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

// violation fails the connection for a protocol violation found in the
// peer's frames and returns the error loops report.
func (c *Conn) violation(err error) error {
	v, ok := errors.AsType[*frames.Violation](err)
	if !ok {
		return err
	}
	if ended, rerr := c.readState(); ended {
		return rerr
	}
	ce := &CloseError{Code: v.Code, Reason: v.Reason, Err: v, byColibri: true}
	if c.debugOn() {
		c.logger().Debug("protocol violation", "code", int(v.Code), "reason", v.Reason)
	}
	if c.obs != nil {
		c.observe(func() { c.obs.ProtocolError(v) })
	}
	c.fail(ce)
	return ce
}

// readError classifies a failed socket read: a wake-up on purpose
// (errInterrupted), or the end of the transport.
func (c *Conn) readError(err error) error {
	if ended, _ := c.readState(); ended {
		return errReadEnded
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && c.interrupted() {
		return errInterrupted
	}
	ce := &CloseError{Code: frames.CloseAbnormal, Err: err, byColibri: true}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The peer stopped sending without a CLOSE frame. It may still
		// read (a half-close), so it gets ours.
		ce.Reason = "connection closed without a close frame"
		c.endRead(ce)
		c.beginClose(SidePeer, frames.CloseNormal, "", ce, closeNow)
		return errReadEnded
	}
	ce.Reason = "read failed"
	if errors.Is(err, net.ErrClosed) {
		ce.Reason = "connection closed"
	}
	c.transportFailed(ce, SidePeer)
	return errReadEnded
}

// compressedLimit is the most compressed bytes a message may take for a
// limit on its inflated size (0: none): twice the limit plus
// deflateAllowance, because deflate makes data that does not compress
// slightly larger and adds block headers even to the shortest message,
// so that every message within the limit fits however its sender
// compressed it.
func compressedLimit(limit int64) int64 {
	if limit <= 0 || limit > (math.MaxInt64-deflateAllowance)/2 {
		return limit
	}
	return 2*limit + deflateAllowance
}

// deflateAllowance is the compressed bytes allowed beyond twice a limit:
// more than the headers of a deflate block of any kind.
const deflateAllowance = 1 << 10

// badDeflate is the violation of a compressed message that does not
// inflate: a value of its own each time, since users receive it.
func badDeflate() error {
	return &frames.Violation{Code: frames.CloseInvalidPayload, Reason: "invalid compressed data"}
}

// readCompressed inflates the compressed message whose first header is h
// into buf, up to limit bytes (0: none), checking UTF-8 of text once
// inflated. The compressed bytes are bounded too, by compressedLimit of
// limit through the assembler, so that a message inflating to little
// cannot stream forever; they are read frame by frame as the decompressor
// asks for them.
func (c *Conn) readCompressed(buf *[]byte, h frames.Header, limit int64) (*[]byte, error) {
	defer func(loopLimit int64) { c.asm.Limit = loopLimit }(c.asm.Limit)
	c.asm.Limit = compressedLimit(limit)
	if buf == nil {
		buf = bufpool.Get(0)
	}
	start := len(*buf)
	src := &c.deflate.raw
	*src = frameReader{c: c, raw: true}
	buf, err := c.deflate.inflateTo(buf, src, limit)
	switch {
	case err == errInflateLimit:
		return buf, c.violation(messages.ErrTooLarge)
	case err != nil && src.err != nil:
		return buf, src.err
	case err != nil:
		return buf, c.violation(badDeflate())
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

// frameReader reads the payload of the message being read, across its
// frames, checking sequencing and (unless raw) UTF-8 with the assembler.
type frameReader struct {
	c       *Conn
	raw     bool // compressed bytes: counted, not checked as UTF-8
	done    bool
	between bool // a frame ended and the next is not begun: a read was interrupted there
	err     error
}

func (r *frameReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.done {
		return 0, io.EOF
	}
	// An interrupted read (errInterrupted: the loop or the closing
	// handshake took the socket back while another goroutine read) is
	// not the reader's end: it leaves the frame state as it was, and a
	// later read, the next loop discarding the rest, goes on from there.
	c := r.c
	for c.remaining == 0 {
		if !r.between {
			if _, done, err := c.asm.End(); err != nil || done {
				if r.err = c.checkAssembly(err); r.err != nil {
					return 0, r.err
				}
				r.done = true
				return 0, io.EOF
			}
			r.between = true
		}
		if _, err := c.nextFrame(0); err != nil {
			if err == errInterrupted {
				return 0, err
			}
			r.err = r.fail(err)
			return 0, r.err
		}
		r.between = false
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.readPayload(p)
	if n > 0 {
		skip := c.asm.SkipUTF8
		c.asm.SkipUTF8 = skip || r.raw
		cerr := c.checkAssembly(c.asm.Chunk(p[:n]))
		c.asm.SkipUTF8 = skip
		if cerr != nil {
			r.err = r.fail(cerr)
			return n, r.err
		}
	}
	if err == errInterrupted {
		return n, err
	}
	if err != nil {
		r.err = r.fail(err)
		return n, r.err
	}
	return n, nil
}

// fail turns the error that stopped a read into what Read reports: the
// loop's error, or io.ErrUnexpectedEOF when the message was cut short by
// a clean end.
func (r *frameReader) fail(err error) error {
	if err = r.c.loopErr(err); err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// inflatingReader streams an inflated message to a Readers loop body.
type inflatingReader struct {
	c    *Conn
	src  *frameReader
	in   *inflater
	text bool
	utf8 messages.UTF8
	err  error
}

func (c *Conn) newInflatingReader(src *frameReader, kind messages.Kind) *inflatingReader {
	src.raw = true
	var dict []byte
	if !c.deflate.params.peerNoTakeover {
		dict = c.deflate.inDict
	}
	return &inflatingReader{c: c, src: src, in: getInflater(src, dict), text: kind == messages.KindText && c.set.checkUTF8}
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
	case errors.Is(err, errInterrupted):
		// The inflater cannot resume after its source failed: the rest
		// of the message is discarded raw (see messageReader.finish).
		r.err = errInterrupted
	case err != nil && r.src.err != nil:
		r.err = r.src.err
	case err != nil:
		r.err = r.c.violation(badDeflate())
	}
	return n, r.err
}

func (r *inflatingReader) close() {
	if r.in != nil {
		putInflater(r.in)
		r.in = nil
	}
}

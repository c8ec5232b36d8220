package wsconn

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/colibri-ws/colibri/internal/bufpool"
)

// Compression configures permessage-deflate (RFC 7692). The handshake
// (handshake.Accept, wsclient) negotiates it: there the zero value turns it
// off and Enabled turns it on with the documented defaults. Serve and
// Start use what the handshake negotiated (Upgraded.Extensions) and take
// only Level, Threshold and ContextTakeover from here. With
// context takeover off (the default), compressors and decompressors are
// pooled and an idle compressed connection holds none, and a prepared
// message is compressed once for every server connection that receives it
// at the same Level and window; the others compress it themselves.
type Compression struct {
	// Enabled offers (client) or accepts (server) permessage-deflate.
	Enabled bool

	// Level is the compress/flate level, 1 (fastest) to 9 (smallest).
	// Default 1: chat and JSON traffic shrinks several times even so. A
	// peer that limits this side's window below 15 bits (RFC 7692
	// §7.1.2) gets a windowed compressor instead, which has no levels.
	Level int

	// Threshold is the payload size, in bytes, under which messages written
	// whole are sent uncompressed: tiny messages grow when compressed.
	// Outbound.Writer compresses whatever the size (unless given
	// Uncompressed), since it cannot know the size in advance. Default 256.
	Threshold int

	// ContextTakeover keeps each direction's LZ77 window across messages,
	// which compresses a stream of similar messages better at the cost of
	// about 800 KiB of compressor and decompressor state per connection
	// (measured at the default level 1) for its whole life. Default false:
	// both sides reset their context after every message.
	ContextTakeover bool
}

const (
	defaultLevel     = flate.BestSpeed
	defaultThreshold = 256
	deflateName      = "permessage-deflate"
	windowBits       = 15 // the largest window, 32 KiB, and compress/flate's
	minWindowBits    = 8  // the smallest window RFC 7692 §7.1.2 allows
)

// deflateParams are the parameters a negotiation settled on, seen from
// this side: whether we and the peer keep context between messages, and
// the window our compressor may use (RFC 7692 §7.1.2), in bits. Our
// decompressor keeps the full window, which inflates any smaller one.
type deflateParams struct {
	ownNoTakeover  bool
	peerNoTakeover bool
	ownWindow      int // 8 to 15; 0 means 15
}

// windowValue returns the window size in bits that v, the value of a
// *_max_window_bits parameter, names: 8 to 15 written as plain digits
// (RFC 7692 §7.1.2.1), or 0 when v is not a valid value.
func windowValue(v string) int {
	if len(v) == 0 || len(v) > 2 || v[0] == '0' || strings.Trim(v, "0123456789") != "" {
		return 0 // not plain digits: Atoi would take "+9"
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minWindowBits || n > windowBits {
		return 0
	}
	return n
}

// errDeflateParams is returned by Serve and Start when the negotiated
// permessage-deflate extension has parameters this side cannot honour.
// wsclient refuses such an answer during the handshake, so it does not
// get this far.
var errDeflateParams = errors.New("wsconn: unusable permessage-deflate parameters")

// deflateFrom reads the negotiated permessage-deflate parameters, if any,
// from exts; client tells which side of the connection we are. A window
// limit for our side (client_max_window_bits for a client,
// server_max_window_bits for a server) becomes the compressor's window.
func deflateFrom(exts []Extension, client bool) (*deflateParams, error) {
	for _, e := range exts {
		if e.Name != deflateName {
			continue
		}
		var serverNo, clientNo bool
		serverWindow, clientWindow := windowBits, windowBits
		for _, p := range e.Params {
			switch p.Name {
			case "server_no_context_takeover":
				serverNo = true
			case "client_no_context_takeover":
				clientNo = true
			case "server_max_window_bits":
				if serverWindow = windowValue(p.Value); serverWindow == 0 {
					return nil, errDeflateParams
				}
			case "client_max_window_bits":
				if clientWindow = windowValue(p.Value); clientWindow == 0 {
					return nil, errDeflateParams
				}
			default:
				return nil, errDeflateParams
			}
		}
		if client {
			return &deflateParams{ownNoTakeover: clientNo, peerNoTakeover: serverNo, ownWindow: clientWindow}, nil
		}
		return &deflateParams{ownNoTakeover: serverNo, peerNoTakeover: clientNo, ownWindow: serverWindow}, nil
	}
	return nil, nil
}

// deflateTail ends a message's compressed data for the decompressor: the
// empty stored block the sender removed (RFC 7692 §7.2.2), then a final
// empty stored block so that the reader sees the end of the stream.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// A compressor's kind, which the level field of deflateState holds and
// which keys its pool, is its flate level (1 to 9) when it may use the whole
// 32 KiB window. A compressor limited to a smaller window is klauspost's
// windowed encoder, which has no levels (it compresses about as level 5
// does); its kind is windowedKind(bits), past the levels.
func windowedKind(bits int) int { return flate.BestCompression + 1 + bits - minWindowBits }

// compressorKind returns the kind for a level and a window in bits.
func compressorKind(level, bits int) int {
	if bits >= minWindowBits && bits < windowBits {
		return windowedKind(bits)
	}
	return level
}

// newCompressor returns a compressor of the given kind writing to w.
func newCompressor(kind int, w io.Writer) *flate.Writer {
	if kind > flate.BestCompression {
		bits := kind - flate.BestCompression - 1 + minWindowBits
		fw, _ := flate.NewWriterWindow(w, 1<<bits)
		return fw
	}
	fw, _ := flate.NewWriter(w, kind)
	return fw
}

// compressor pools, one per kind; used when our side has no context
// takeover.
var compressors [flate.BestCompression + 1 + windowBits - minWindowBits]sync.Pool

func getCompressor(level int, w io.Writer) *flate.Writer {
	if v := compressors[level].Get(); v != nil {
		fw := v.(*flate.Writer)
		fw.Reset(w)
		return fw
	}
	return newCompressor(level, w)
}

func putCompressor(level int, fw *flate.Writer) {
	fw.Reset(io.Discard)
	compressors[level].Put(fw)
}

var decompressors sync.Pool // of *inflater

// inflater is a pooled decompressor with the buffered reader that feeds
// it, so that a message costs no allocation. It reads a message's
// compressed bytes from src and then deflateTail.
type inflater struct {
	src  io.Reader
	tail int // bytes of deflateTail already read
	br   *bufio.Reader
	fr   io.ReadCloser
}

func (in *inflater) Read(p []byte) (int, error) {
	if in.src != nil {
		n, err := in.src.Read(p)
		if err == io.EOF {
			in.src = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	if in.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(p, deflateTail[in.tail:])
	in.tail += n
	return n, nil
}

func getInflater(src io.Reader, dict []byte) *inflater {
	in, _ := decompressors.Get().(*inflater)
	if in == nil {
		in = &inflater{}
		in.br = bufio.NewReaderSize(in, 4096)
	}
	in.src, in.tail = src, 0
	in.br.Reset(in)
	if in.fr == nil {
		in.fr = flate.NewReaderDict(in.br, dict)
	} else {
		_ = in.fr.(flate.Resetter).Reset(in.br, dict)
	}
	return in
}

func putInflater(in *inflater) {
	in.src = nil
	decompressors.Put(in)
}

// keepWindow appends p to the sliding dictionary, keeping the last 32 KiB.
func keepWindow(dict *[]byte, p []byte) {
	const window = 1 << windowBits
	if len(p) >= window {
		*dict = append((*dict)[:0], p[len(p)-window:]...)
		return
	}
	if over := len(*dict) + len(p) - window; over > 0 {
		*dict = append((*dict)[:0], (*dict)[over:]...)
	}
	*dict = append(*dict, p...)
}

// deflateState is a connection's compression state.
type deflateState struct {
	params    deflateParams
	level     int // the compressor's kind: a flate level, or windowedKind
	threshold int
	// With context takeover on our side, one compressor for the life of
	// the connection; with it on the peer's side, the window of what the
	// peer sent.
	fw     *flate.Writer
	out    sink // the compressor's output for one message
	inDict []byte
	raw    frameReader // compressed bytes of the message being inflated
}

// sink collects compressor output in a pooled buffer, given back after
// each message so that an idle connection holds none.
type sink struct {
	b    *[]byte
	sent int // bytes already sent as frames (streaming)
}

func (s *sink) Write(p []byte) (int, error) {
	s.b = bufpool.Grow(s.b, len(s.bytes())+len(p))
	*s.b = append(*s.b, p...)
	return len(p), nil
}

func (s *sink) bytes() []byte {
	if s.b == nil {
		return nil
	}
	return *s.b
}

// unsent returns the output not yet sent.
func (s *sink) unsent() []byte { return s.bytes()[s.sent:] }

// compact moves the unsent output to the front, so that a streamed
// message holds only what is yet to go out, not all it has sent.
func (s *sink) compact() {
	if s.sent == 0 {
		return
	}
	*s.b = (*s.b)[:copy(*s.b, s.unsent())]
	s.sent = 0
}

func (s *sink) reset() {
	bufpool.Put(s.b)
	s.b, s.sent = nil, 0
}

func newDeflateState(p *deflateParams, c Compression) *deflateState {
	level := c.Level
	if level < flate.BestSpeed || level > flate.BestCompression {
		level = defaultLevel
	}
	threshold := c.Threshold
	if threshold <= 0 {
		threshold = defaultThreshold
	}
	params := *p
	// Without ContextTakeover this side resets its context whatever the
	// answer said: a client that offered client_no_context_takeover has
	// promised it (RFC 7692 §7.1.1.2), and a reset is always safe, since
	// the peer's decompressor reads either way.
	params.ownNoTakeover = params.ownNoTakeover || !c.ContextTakeover
	return &deflateState{params: params, level: compressorKind(level, p.ownWindow), threshold: threshold}
}

// compress returns the compressed form of p, without the trailing empty
// block (RFC 7692 §7.2.1). The result is valid until release.
func (d *deflateState) compress(p []byte) []byte {
	d.out.reset()
	fw := d.compressor()
	_, _ = fw.Write(p)
	_ = fw.Flush()
	if d.params.ownNoTakeover {
		putCompressor(d.level, fw)
	}
	b := d.out.bytes()
	// Flush ends with the empty stored block 00 00 ff ff.
	return b[:len(b)-4]
}

// compressor returns the compressor for one message, writing into d.out:
// a pooled one when our side resets its context, else the connection's.
func (d *deflateState) compressor() *flate.Writer {
	if d.params.ownNoTakeover {
		return getCompressor(d.level, &d.out)
	}
	if d.fw == nil {
		d.fw = newCompressor(d.level, &d.out)
	}
	return d.fw
}

// release gives back the message's output buffer.
func (d *deflateState) release() { d.out.reset() }

// compressOnce is a prepared message's compressed frame, shared by every
// connection whose side resets its context after each message.
type compressOnce struct {
	once  sync.Once
	level int
	frame []byte
}

// inflateTo decompresses a message from src, appending to buf, failing
// with errInflateLimit past limit bytes (0: no limit) without buffering
// them. It returns the grown buffer.
func (d *deflateState) inflateTo(buf *[]byte, src io.Reader, limit int64) (*[]byte, error) {
	var dict []byte
	if !d.params.peerNoTakeover {
		dict = d.inDict
	}
	in := getInflater(src, dict)
	defer putInflater(in)
	start := len(*buf)
	produced := func() int64 { return int64(len(*buf) - start) }
	for {
		if limit > 0 && produced() == limit {
			// At the limit: the message may still end here.
			var one [1]byte
			n, err := in.fr.Read(one[:])
			if n > 0 {
				return buf, errInflateLimit
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return buf, err
			}
			continue
		}
		b := *buf
		if len(b) == cap(b) {
			grow := int64(max(len(b), 4096))
			if limit > 0 {
				grow = min(grow, limit-produced())
			}
			buf = bufpool.Grow(buf, len(b)+int(grow))
			b = *buf
		}
		space := b[len(b):cap(b)]
		if limit > 0 && int64(len(space)) > limit-produced() {
			space = space[:limit-produced()]
		}
		n, err := in.fr.Read(space)
		*buf = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	if !d.params.peerNoTakeover {
		keepWindow(&d.inDict, (*buf)[start:])
	}
	return buf, nil
}

var errInflateLimit = errors.New("wsconn: inflated message over the limit")

package wsconn

import (
	"bufio"
	"errors"
	"github.com/klauspost/compress/flate"
	"io"
	"strconv"
	"sync"

	"github.com/gobwas/httphead"

	"github.com/colibri-ws/colibri/internal/bufpool"
)

// Compression configures permessage-deflate (RFC 7692). The zero value
// turns it off; Enabled turns it on with the documented defaults. With
// context takeover off (the default), compressors and decompressors are
// pooled and an idle compressed connection holds none, and a prepared
// message is compressed once for every connection that receives it.
type Compression struct {
	// Enabled offers (client) or accepts (server) permessage-deflate.
	Enabled bool

	// Level is the compress/flate level, 1 (fastest) to 9 (smallest).
	// Default 1: chat and JSON traffic shrinks several times even so.
	Level int

	// Threshold is the payload size, in bytes, under which messages are
	// sent uncompressed: tiny messages grow when compressed. Default 256.
	Threshold int

	// ContextTakeover keeps each direction's LZ77 window across messages,
	// which compresses a stream of similar messages better at the cost of
	// about 1.2 MiB (level 1: about 50 KiB) of compressor state and a 32 KiB
	// window per connection for its whole life. Default false: both sides
	// reset their context after every message.
	ContextTakeover bool
}

const (
	defaultLevel     = flate.BestSpeed
	defaultThreshold = 256
	deflateName      = "permessage-deflate"
	windowBits       = 15 // compress/flate always uses a 32 KiB window
)

// deflateParams are the parameters a negotiation settled on, seen from
// this side: whether we and the peer keep context between messages.
type deflateParams struct {
	ownNoTakeover  bool
	peerNoTakeover bool
}

// NegotiateCompression picks the first of a client's permessage-deflate
// offers that this server can honour (RFC 7692 §5, §7.1) and returns the
// response option, or ok false when it declines them all. Offers that ask
// for a window smaller than 32 KiB for the server's compressor, that repeat
// a parameter, carry an unknown one or a bad value are declined rather than
// failing the handshake.
func (c Compression) NegotiateCompression(offers []httphead.Option) (resp httphead.Option, ok bool) {
	if !c.Enabled {
		return resp, false
	}
	for _, offer := range offers {
		if string(offer.Name) != deflateName {
			continue
		}
		var seen [4]bool
		serverNoTakeover, valid := false, true
		offer.Parameters.ForEach(func(k, v []byte) bool {
			i := -1
			switch string(k) {
			case "server_no_context_takeover":
				i, valid = 0, len(v) == 0
				serverNoTakeover = true
			case "client_no_context_takeover":
				i, valid = 1, len(v) == 0
			case "server_max_window_bits":
				// compress/flate cannot use a smaller window.
				n, err := strconv.Atoi(string(v))
				i, valid = 2, err == nil && n == windowBits
			case "client_max_window_bits":
				// A hint that the client could use a smaller window; our
				// decompressor handles any, so the response leaves it out.
				n, err := strconv.Atoi(string(v))
				i, valid = 3, len(v) == 0 || (err == nil && n >= 8 && n <= 15)
			default:
				valid = false
			}
			if valid && seen[i] {
				valid = false
			}
			if valid {
				seen[i] = true
			}
			return valid
		})
		if !valid {
			continue
		}
		resp = httphead.Option{Name: []byte(deflateName)}
		if serverNoTakeover || !c.ContextTakeover {
			resp.Parameters.Set([]byte("server_no_context_takeover"), nil)
		}
		if !c.ContextTakeover {
			resp.Parameters.Set([]byte("client_no_context_takeover"), nil)
		}
		if seen[2] {
			resp.Parameters.Set([]byte("server_max_window_bits"), []byte(strconv.Itoa(windowBits)))
		}
		return resp, true
	}
	return resp, false
}

// Offer returns the permessage-deflate offer a client sends for c.
func (c Compression) Offer() httphead.Option {
	o := httphead.Option{Name: []byte(deflateName)}
	if !c.ContextTakeover {
		o.Parameters.Set([]byte("client_no_context_takeover"), nil)
		o.Parameters.Set([]byte("server_no_context_takeover"), nil)
	}
	return o
}

// ErrCompressionResponse is returned by a client whose server answered its
// permessage-deflate offer with parameters it cannot honour.
var ErrCompressionResponse = errors.New("wsconn: unusable permessage-deflate response")

// deflateFrom reads the negotiated permessage-deflate parameters, if any,
// from exts; client tells which side of the connection we are.
func deflateFrom(exts []httphead.Option, client bool) (*deflateParams, error) {
	for _, e := range exts {
		if string(e.Name) != deflateName {
			continue
		}
		var serverNo, clientNo bool
		var err error
		e.Parameters.ForEach(func(k, v []byte) bool {
			switch string(k) {
			case "server_no_context_takeover":
				serverNo = true
			case "client_no_context_takeover":
				clientNo = true
			case "server_max_window_bits":
			case "client_max_window_bits":
				if n, e := strconv.Atoi(string(v)); client && (e != nil || n != windowBits) {
					err = ErrCompressionResponse
				}
			default:
				err = ErrCompressionResponse
			}
			return err == nil
		})
		if err != nil {
			return nil, err
		}
		if client {
			return &deflateParams{ownNoTakeover: clientNo, peerNoTakeover: serverNo}, nil
		}
		return &deflateParams{ownNoTakeover: serverNo, peerNoTakeover: clientNo}, nil
	}
	return nil, nil
}

// deflateTail ends a message's compressed data for the decompressor: the
// empty stored block the sender removed (RFC 7692 §7.2.2), then a final
// empty stored block so that the reader sees the end of the stream.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// compressor pools, one per level; used when our side has no context
// takeover.
var compressors [flate.BestCompression + 1]sync.Pool

func getCompressor(level int, w io.Writer) *flate.Writer {
	if v := compressors[level].Get(); v != nil {
		fw := v.(*flate.Writer)
		fw.Reset(w)
		return fw
	}
	fw, _ := flate.NewWriter(w, level)
	return fw
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
	level     int
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
	return &deflateState{params: *p, level: level, threshold: threshold}
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
		d.fw, _ = flate.NewWriter(&d.out, d.level)
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

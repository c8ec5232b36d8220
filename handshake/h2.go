package handshake

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/colibri-ws/colibri/internal/bufpool"
	"github.com/colibri-ws/colibri/wsconn"
)

// WebSockets over HTTP/2 (RFC 8441). The browser opens a stream with an
// extended CONNECT (":method CONNECT", ":protocol websocket"), the server
// answers 200, and from then on the stream's DATA frames carry the same
// WebSocket frames a TCP connection would: the request body brings the
// peer's, the response body takes ours. Nothing is hijacked; the HTTP/2
// connection goes on carrying other streams, and the WebSocket's stream
// ends when the handler that accepted it returns.

// IsExtendedConnect reports whether r opens a WebSocket over an HTTP/2
// stream (RFC 8441 §4): a CONNECT request whose :protocol pseudo-header is
// "websocket". net/http hands the pseudo-header over as r.Header[":protocol"],
// and only when the server offers extended CONNECT (a Go 1.26 process
// started with GODEBUG=http2xconnect=1).
func IsExtendedConnect(r *http.Request) bool {
	return r.ProtoMajor == 2 && r.Method == http.MethodConnect &&
		strings.EqualFold(r.Header.Get(":protocol"), "websocket")
}

// checkExtendedConnect is CheckRequest for HTTP/2. RFC 8441 §5 drops
// Sec-WebSocket-Key and Sec-WebSocket-Accept, and HTTP/2 has no Upgrade
// or Connection headers; the version check stays.
func checkExtendedConnect(r *http.Request) *Error {
	if r.Method != http.MethodConnect {
		e := refuse(http.StatusMethodNotAllowed, "this endpoint speaks WebSocket only: over HTTP/2 open it with an extended CONNECT (RFC 8441), not %s", r.Method)
		e.Header = http.Header{"Allow": {http.MethodConnect}}
		return e
	}
	if p := r.Header.Get(":protocol"); !strings.EqualFold(p, "websocket") {
		return refuse(http.StatusBadRequest, "this endpoint speaks WebSocket only: :protocol must be websocket, not %q", p)
	}
	if r.Host == "" {
		// :authority stands for Host (RFC 8441 §5, RFC 6455 §4.2.1).
		return refuse(http.StatusBadRequest, "a WebSocket handshake needs an :authority")
	}
	if e := checkVersion(r); e != nil {
		e.Header = http.Header{"Sec-Websocket-Version": {"13"}}
		return e
	}
	return nil
}

// connectionHeaders may not appear in an HTTP/2 response: RFC 9113
// §8.2.2 makes a response carrying one malformed, and net/http removes
// only Connection. The HTTP/1.1 handshake's own headers go too, and
// Trailer: a connected CONNECT stream carries DATA only (RFC 9113 §8.5),
// so no trailers may follow it.
var connectionHeaders = []string{
	"Upgrade", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te",
	"Content-Length", "Sec-Websocket-Accept", "Trailer",
}

// acceptStream completes an extended CONNECT that passed the checks and the
// negotiation in Accept: it answers 200 with the negotiated headers,
// flushes, and returns the stream as the connection's transport.
func acceptStream(w http.ResponseWriter, r *http.Request, o *AcceptOptions, proto string, exts []wsconn.Extension) (wsconn.Upgraded, error) {
	if !canFlush(w) {
		// Checked before the 200, which would open the WebSocket for
		// the client: a stream that cannot be flushed cannot carry one.
		e := refuse(http.StatusInternalServerError, "this stream cannot be upgraded")
		e.cause = http.ErrNotSupported
		e.Write(w)
		return wsconn.Upgraded{}, e
	}
	h := w.Header()
	for k, v := range o.Header {
		if !handshakeField(k) {
			h[k] = v
		}
	}
	// Whatever their spelling: a name set straight into the map need not
	// be canonical, and net/http sends it as it is.
	for k := range h {
		if handshakeField(k) || slices.Contains(connectionHeaders, http.CanonicalHeaderKey(k)) || strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
		}
	}
	if proto != "" {
		h.Set("Sec-WebSocket-Protocol", proto)
	} else {
		delete(h, "Sec-Websocket-Protocol")
	}
	if len(exts) > 0 {
		h.Set("Sec-WebSocket-Extensions", string(appendExtensions(nil, exts)))
	} else {
		delete(h, "Sec-Websocket-Extensions")
	}

	s := newStreamConn(w, r)
	_ = s.SetWriteDeadline(time.Now().Add(o.Timeout))
	w.WriteHeader(http.StatusOK)
	err := s.flush()
	_ = s.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = s.Close()
		return wsconn.Upgraded{}, fmt.Errorf("handshake: upgrade: %w", err)
	}
	return wsconn.Upgraded{Conn: s, Request: r, Subprotocol: proto, Extensions: exts, HTTP2: true}, nil
}

// canFlush reports whether w, or a writer it unwraps to, can flush, as
// http.ResponseController looks for one (FlushError, then Flush).
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Flusher, interface{ FlushError() error }:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// ---- the stream as a net.Conn ----

// streamChunk is the most the pump reads from the request body at once:
// the default HTTP/2 frame size.
const streamChunk = 16 << 10

// streamSmall is the size of the array of its own a stream reads small
// amounts into, the same as a connection's idle read array (64 bytes), so
// that an idle stream holds no pooled buffer.
const streamSmall = 64

// streamConn is a net.Conn over one HTTP/2 stream: Read takes the request
// body, Write sends on the response and flushes. It is valid only while
// the handler that accepted the stream runs, and Close ends it.
//
// Its deadlines keep net.Conn's rules, which net/http's per-stream
// deadlines do not: there an expired read deadline closes the body for
// good, and a write deadline resets the stream when it fires even with no
// write pending. wsconn wakes a blocked reader with a past deadline and
// reads on afterwards, and leaves write deadlines armed between writes, so
// streamConn keeps its own and turns the stream's off:
//
//   - a pump goroutine does the blocking body reads; Read waits for it or
//     for the deadline, and a Read that timed out leaves the pump's result
//     for the next one, so nothing is lost;
//   - a write deadline runs a timer only while a write is in progress; when
//     it fires, the stream is reset (a half-written frame cannot be
//     finished anyway) and the write fails with a timeout.
type streamConn struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	body   io.ReadCloser
	local  net.Addr
	remote net.Addr

	closed    chan struct{}
	closeOnce sync.Once

	// Read side. Read asks the pump for at most n bytes on ask and learns
	// of the result on ready; between the two, the chunk fields belong to
	// the pump.
	rmu      sync.Mutex // one Read at a time
	ask      chan int
	ready    chan struct{}
	pumpDone chan struct{}
	asked    bool   // the pump works for Read (under rmu)
	chunk    []byte // the pump's last result; chunk[off:] is unread
	off      int
	pooled   *[]byte // chunk's pooled buffer, nil when chunk is in small
	rerr     error   // the body's error, reported once chunk is drained
	small    [streamSmall]byte
	rtimer   *time.Timer   // used by Read only
	rwake    chan struct{} // the read deadline moved

	// Deadlines and the write timer.
	dlMu    sync.Mutex
	rdl     time.Time
	wdl     time.Time
	writing bool // a write is in progress
	expired bool // the write timer reset the stream
	done    bool // Close ran: the ResponseWriter may no longer be touched
	wtimer  *time.Timer
}

var _ net.Conn = (*streamConn)(nil)

func newStreamConn(w http.ResponseWriter, r *http.Request) *streamConn {
	rc := http.NewResponseController(w)
	// Server.ReadTimeout and WriteTimeout would end the stream; the
	// WebSocket's own timeouts take over (as they do for a hijacked TCP
	// connection).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.EnableFullDuplex()
	s := &streamConn{
		w:        w,
		rc:       rc,
		body:     r.Body,
		remote:   remoteAddr(r.RemoteAddr),
		closed:   make(chan struct{}),
		ask:      make(chan int, 1),
		ready:    make(chan struct{}, 1),
		pumpDone: make(chan struct{}),
		rwake:    make(chan struct{}, 1),
	}
	s.local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if s.local == nil {
		s.local = remoteAddr("")
	}
	go s.pump()
	return s
}

// pump reads the request body for Read, one chunk per request, until the
// body fails or the stream is closed.
func (s *streamConn) pump() {
	defer close(s.pumpDone)
	for {
		var n int
		select {
		case n = <-s.ask:
		case <-s.closed:
			return
		}
		buf, pooled := s.small[:], (*[]byte)(nil)
		if n > len(s.small) {
			pooled = bufpool.Get(min(n, streamChunk))
			buf = *pooled
		}
		k, err := s.body.Read(buf)
		s.chunk, s.off, s.pooled, s.rerr = buf[:k], 0, pooled, err
		s.ready <- struct{}{} // never blocks: one answer per request
		if err != nil {
			return
		}
	}
}

// Read reads what the peer sent on the stream.
func (s *streamConn) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if s.isClosed() {
			return 0, net.ErrClosed
		}
		s.dlMu.Lock()
		dl := s.rdl
		s.dlMu.Unlock()
		if !dl.IsZero() && !time.Now().Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		if !s.asked {
			if s.off < len(s.chunk) {
				n := copy(p, s.chunk[s.off:])
				s.off += n
				if s.off == len(s.chunk) {
					s.dropChunk()
				}
				return n, nil
			}
			switch {
			case s.rerr != nil && s.resetByWriteTimer():
				// The body ended because our write timer reset the
				// stream: the write reports that, and reads wait, as
				// for data, until they are woken or the stream closes,
				// rather than race it with a failure of their own.
			case s.rerr != nil:
				return 0, s.rerr
			case len(p) == 0:
				return 0, nil
			default:
				s.asked = true
				s.ask <- len(p)
			}
		}
		var timeout <-chan time.Time
		if !dl.IsZero() {
			if s.rtimer == nil {
				s.rtimer = time.NewTimer(time.Until(dl))
			} else {
				s.rtimer.Reset(time.Until(dl))
			}
			timeout = s.rtimer.C
		}
		select {
		case <-s.ready:
			s.asked = false
		case <-timeout:
		case <-s.rwake:
		case <-s.closed:
		}
		if timeout != nil {
			s.rtimer.Stop()
		}
	}
}

// dropChunk gives a drained chunk's buffer back.
func (s *streamConn) dropChunk() {
	if s.pooled != nil {
		bufpool.Put(s.pooled)
		s.pooled = nil
	}
	s.chunk, s.off = nil, 0
}

// Write sends p on the stream and flushes it.
func (s *streamConn) Write(p []byte) (int, error) {
	if err := s.beginWrite(); err != nil {
		return 0, err
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	if expired := s.endWrite(); err != nil && expired {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

// flush sends the response headers (the handshake's 200).
func (s *streamConn) flush() error {
	if err := s.beginWrite(); err != nil {
		return err
	}
	err := s.rc.Flush()
	if expired := s.endWrite(); err != nil && expired {
		err = os.ErrDeadlineExceeded
	}
	return err
}

// beginWrite marks a write in progress and arms the write timer.
func (s *streamConn) beginWrite() error {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	switch {
	case s.done:
		return net.ErrClosed
	case s.expired:
		return os.ErrDeadlineExceeded
	case !s.wdl.IsZero() && !time.Now().Before(s.wdl):
		return os.ErrDeadlineExceeded
	}
	s.writing = true
	s.armWrite()
	return nil
}

// endWrite disarms the write timer and reports whether it fired.
func (s *streamConn) endWrite() bool {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	s.writing = false
	if s.wtimer != nil {
		s.wtimer.Stop()
	}
	return s.expired
}

// armWrite starts the write timer for the current deadline; dlMu is held.
func (s *streamConn) armWrite() {
	if s.wdl.IsZero() {
		if s.wtimer != nil {
			s.wtimer.Stop()
		}
		return
	}
	d := time.Until(s.wdl)
	if s.wtimer == nil {
		s.wtimer = time.AfterFunc(d, s.writeExpired)
	} else {
		s.wtimer.Reset(d)
	}
}

// writeExpired runs on the write timer: if a write is still in progress
// past the deadline, it resets the stream, which fails that write.
func (s *streamConn) writeExpired() {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	if s.done || !s.writing || s.wdl.IsZero() || time.Now().Before(s.wdl) {
		return
	}
	s.expired = true
	s.resetStream()
}

// resetByWriteTimer reports whether writeExpired reset the stream.
func (s *streamConn) resetByWriteTimer() bool {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	return s.expired
}

// resetStream ends the stream at once with RST_STREAM; dlMu is held and
// Close has not run. A past deadline on the stream is how net/http lets a
// handler do that.
func (s *streamConn) resetStream() {
	_ = s.rc.SetWriteDeadline(time.Unix(1, 0))
}

// SetDeadline sets both deadlines.
func (s *streamConn) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}

// SetReadDeadline bounds Read, including one that is already waiting.
func (s *streamConn) SetReadDeadline(t time.Time) error {
	s.dlMu.Lock()
	s.rdl = t
	s.dlMu.Unlock()
	select {
	case s.rwake <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline bounds Write, including one in progress.
func (s *streamConn) SetWriteDeadline(t time.Time) error {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	s.wdl = t
	if s.writing && !s.done {
		if !t.IsZero() && !time.Now().Before(t) {
			s.expired = true
			s.resetStream()
			return nil
		}
		s.armWrite()
	}
	return nil
}

// LocalAddr returns the server's address of the HTTP/2 connection.
func (s *streamConn) LocalAddr() net.Addr { return s.local }

// RemoteAddr returns the peer's address of the HTTP/2 connection.
func (s *streamConn) RemoteAddr() net.Addr { return s.remote }

// Close ends the stream's use: waiting reads return, the request body is
// closed and the pump stops. A write still in progress (a peer that stopped
// reading) is cut off with RST_STREAM. The stream itself ends when the
// handler returns, with the END_STREAM that net/http sends then; the HTTP/2
// connection and its other streams go on.
func (s *streamConn) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.dlMu.Lock()
		if s.writing {
			s.resetStream()
		}
		s.done = true
		if s.wtimer != nil {
			s.wtimer.Stop()
		}
		s.dlMu.Unlock()
		close(s.closed)
		_ = s.body.Close()
		<-s.pumpDone
		s.rmu.Lock()
		s.dropChunk()
		if s.rtimer != nil {
			s.rtimer.Stop()
		}
		s.rmu.Unlock()
	})
	if !first {
		return net.ErrClosed
	}
	return nil
}

func (s *streamConn) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// streamAddr is an address net/http gave as text only.
type streamAddr string

func (a streamAddr) Network() string { return "tcp" }
func (a streamAddr) String() string  { return string(a) }

func remoteAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return streamAddr(s)
}

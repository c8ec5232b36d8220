package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Handler serves one WebSocket connection. It runs inside the connection's
// task group: ctx is cancelled when the peer closes, when a sibling task
// started with Session.Go fails, on a protocol violation, a keep-alive or
// idle timeout, and when the server shuts down. Returning performs the
// closing handshake:
//
//   - nil closes with 1000, or echoes the peer's code if the peer closed first;
//   - a *CloseError (or an error wrapping one) closes with its code and reason;
//   - any other error closes with 1011 and is logged once; so is a panic;
//   - after a shutdown (ErrShutdown) the code is 1001 Going Away.
type Handler[T any] func(ctx context.Context, in *Inbound, out *Outbound, s *Session[T]) error

// Session is what a handler knows about its connection: the Conn (request,
// logger, addresses, negotiated subprotocol and extensions, task group) and
// the value that the upgrade decision handed over.
type Session[T any] struct {
	*Conn
	// Value is the value the upgrade decision produced for this connection.
	Value T

	handler Handler[T]
	done    func() // Start's
}

// Upgraded is a connection whose opening handshake is complete, ready to be
// served. Accept produces one on the server side; wsclient on the client side.
type Upgraded struct {
	// Conn is the transport. colibri owns it from here on and closes it.
	Conn net.Conn
	// Buffered holds bytes the peer sent after the handshake that were
	// already read from Conn.
	Buffered []byte
	// Request is the upgraded HTTP request (server) or the handshake
	// request that was sent (client).
	Request *http.Request
	// Subprotocol is the negotiated subprotocol, empty if none.
	Subprotocol string
	// Extensions are the negotiated extensions.
	Extensions []Extension
	// Client is true on the dialing side: its frames are masked and the
	// peer's must not be (RFC 6455 §5.1).
	Client bool
	// Route is the pattern of the ws route that accepted the connection,
	// for Conn.Route and the connection's log lines; the router sets it.
	Route string
}

var connIDs atomic.Uint64

// Conn is one WebSocket connection. Its methods are safe for concurrent
// use. A Conn lives from the hand-off of an upgraded transport until the
// handler and every task of its group have returned and the transport is
// closed.
type Conn struct {
	nc    net.Conn
	set   *settings // shared with the connections of equal Configs
	req   *http.Request
	proto string
	exts  []Extension
	id    uint64
	log   atomic.Pointer[slog.Logger] // built by logger() on first use
	start int64                       // unix ns, on the Config's clock
	in    Inbound
	out   Outbound

	ctx       context.Context // the handler's context
	parent    context.Context // the context Serve was given
	cancel    context.CancelCauseFunc
	group     *errgroup.Group // the handler's tasks (Go); nil until the first
	tasks     sync.WaitGroup  // colibri's own callbacks (context watcher)
	bg        sync.WaitGroup  // the background reader
	stopWatch func() bool     // stops watching parent; nil if it cannot end
	result    error           // the handler's, then Serve's

	// Read side. The token is held by whoever reads the socket: an
	// iterator, the background reader, or the closing handshake.
	rd        netReader
	readTok   token
	rmu       sync.Mutex
	rerr      error  // why, for Inbound.Err; nil for a clean close
	rdone     signal // fired when rended is set
	readBound int64  // read deadline (unix ns) set once our CLOSE went out; 0: none
	ranging   atomic.Bool
	// Mirrors of rended and closing for the per-frame path, which reads
	// them without the lock; they only ever go from false to true.
	rendedFlag  atomic.Bool
	closingFlag atomic.Bool
	// Under rmu:
	rended     bool // the inbound side is over
	bgRunning  bool
	bgWaiting  bool // the background reader waits for bytes at a frame boundary
	handover   bool // a loop waits for the background reader to step aside
	closing    bool // the handler returned or the context ended: hand out no more data
	draining   bool // the closing handshake set its deadline
	peerClosed bool
	client     bool // not under rmu: set once, before the connection starts
	peerCode   frames.CloseCode
	peerReason string

	// Frame state, touched only by the token holder.
	hdr       frames.Header
	hdrLen    int // size of the header peekData returned
	remaining int64
	maskPos   int
	asm       messages.Assembler

	// Write side.
	msgLock     token      // held for a whole message
	wdone       signal     // fired once no more data can be sent
	sockMu      sync.Mutex // held for each physical write
	ctrlMu      sync.Mutex
	ctrl        *controlFrames // the queued frames' payloads (under ctrlMu); nil when none
	wdeadline   int64          // the write deadline last set, unix ns (under sockMu)
	ctrlPending atomic.Uint32
	closeSent   atomic.Bool // our CLOSE is queued or out: no more data frames
	whdr        [frames.MaxHeaderSize]byte
	fragOpen    bool // a WriteFrame message is open (msgLock held)
	closeOut    bool // our CLOSE reached the socket (under sockMu)
	wbroken     bool // a write failed; the stream is unusable (under sockMu)
	allowedRsv  byte // RSV bits the peer may set: RSV1 with permessage-deflate

	keepAlive keepAlive
	stats     Stats
	watch     watch         // for Config.Observer and the close log line
	deflate   *deflateState // permessage-deflate, when negotiated
}

// Stats counts a connection's traffic. Read it with Conn.Stats.
type Stats struct {
	MessagesIn, MessagesOut atomic.Int64
	BytesIn, BytesOut       atomic.Int64
}

const (
	ctrlPong uint32 = 1 << iota
	ctrlPing
	ctrlClose
)

func newConn(u Upgraded, cfg *Config) *Conn {
	c := &Conn{
		nc:     u.Conn,
		client: u.Client,
		set:    settingsFor(cfg),
		req:    u.Request,
		proto:  u.Subprotocol,
		exts:   u.Extensions,
		id:     connIDs.Add(1),
		watch:  watch{route: u.Route},
	}
	c.in.c, c.out.c = c, c
	c.start = c.set.clock.Now().UnixNano()
	if p, err := deflateFrom(u.Extensions, u.Client); err == nil && p != nil {
		c.deflate = newDeflateState(p, c.set.compression)
		c.allowedRsv = frames.Rsv1
	}
	c.rd.init(u.Conn, u.Buffered)
	c.asm.SkipUTF8 = !c.set.checkUTF8
	return c
}

// Serve runs handler on an upgraded connection and blocks until the
// connection is over: the handler and every task of its group returned, the
// closing handshake is done and the transport is closed. ctx carries values
// to the handler's context; when it is cancelled the connection closes with
// 1001 Going Away once the handler returns. When ctx comes from Group.Go the
// connection counts in that group.
//
// Serve returns the handler's error, or the reason the connection failed.
func Serve[T any](ctx context.Context, u Upgraded, value T, handler Handler[T], cfg *Config) error {
	s, err := open(ctx, u, value, handler, cfg)
	if err != nil {
		return err
	}
	s.serve()
	return s.result
}

// Start is Serve in a goroutine of its own: it sets the connection up in
// the caller's goroutine, starts the one goroutine that runs handler and
// the closing handshake, and returns. done, if not nil, is called once the
// connection is over (with Group.Enter, its leave). Start returns an error,
// after closing u.Conn and calling done, only when u cannot be served.
//
// The connection's goroutine begins with the handler itself, so that its
// stack holds little more than what the handler's own code needs: an idle
// connection whose handler ranges over an iterator keeps the runtime's
// smallest stack.
func Start[T any](ctx context.Context, u Upgraded, value T, handler Handler[T], cfg *Config, done func()) error {
	s, err := open(ctx, u, value, handler, cfg)
	if err != nil {
		if done != nil {
			done()
		}
		return err
	}
	s.done = done
	go s.serve()
	return nil
}

// open builds the connection and its session and starts everything but
// the handler: the context, the group's count, the observer, keep-alive.
func open[T any](ctx context.Context, u Upgraded, value T, handler Handler[T], cfg *Config) (*Session[T], error) {
	if _, err := deflateFrom(u.Extensions, u.Client); err != nil {
		_ = u.Conn.Close()
		return nil, err
	}
	c := newConn(u, cfg)
	c.begin(ctx)
	return &Session[T]{Conn: c, Value: value, handler: handler}, nil
}

// serve runs the handler and then ends the connection (end, deferred, also
// turns a panic into an error). It is the first frame of the connection's
// goroutine when Start runs it, so it stays small.
func (s *Session[T]) serve() {
	defer s.end()
	c := s.Conn
	c.result = s.handler(c.ctx, &c.in, &c.out, s)
}

// end turns a panic of the handler into its result, ends the connection
// and tells Start's caller.
func (s *Session[T]) end() {
	if v := recover(); v != nil {
		s.result = &panicError{value: v, stack: debug.Stack()}
	}
	s.Conn.end()
	if s.done != nil {
		s.done()
	}
}

// begin sets up everything the handler runs with.
func (c *Conn) begin(parent context.Context) {
	c.parent = parent
	c.ctx, c.cancel = context.WithCancelCause(parent)
	if g := GroupFrom(parent); g != nil {
		if !g.add(c) {
			c.stop(ErrShutdown)
		}
	}
	// A caller's context that can end is watched; the router's cannot (its
	// Group stops connections directly), which saves a registration.
	if parent.Done() != nil {
		c.tasks.Add(1)
		c.stopWatch = context.AfterFunc(parent, func() {
			defer c.tasks.Done()
			c.stop(context.Cause(parent))
		})
	}
	c.opened()
	if !c.set.keepRequest {
		c.req = nil
	}
	c.keepAlive.start(c)
	if c.debugOn() {
		c.logger().Debug("connection open")
	}
	c.deferBackground()
}

// end runs once the handler returned with c.result: the closing
// handshake, the wait for the connection's tasks, and the bookkeeping.
// c.result becomes what Serve returns.
func (c *Conn) end() {
	c.result = c.finish(c.result)
	c.keepAlive.stop()
	if c.stopWatch != nil && c.stopWatch() {
		c.tasks.Done()
	}
	c.tasks.Wait()
	c.cancel(ErrClosed)
	if g := GroupFrom(c.parent); g != nil {
		g.remove(c)
	}
}

// stop cancels the handler's context with cause (the first cause wins) and
// wakes readers blocked in the socket.
func (c *Conn) stop(cause error) {
	c.cancel(cause)
	c.interruptReads()
}

type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("wsconn: handler panicked: %v", p.value) }

// Go starts f as a task bound to the connection: it runs in the
// connection's group with the handler's context, and the connection is
// not torn down before it returns. A non-nil error cancels the group and
// closes the connection with 1011 (or the code of a *CloseError). Go may be
// called from any goroutine; once the handler has returned and the closing
// handshake has begun, it starts nothing.
func (c *Conn) Go(f func(ctx context.Context) error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.draining {
		return // finish waits for the group already
	}
	if c.group == nil {
		c.group = new(errgroup.Group)
	}
	c.group.Go(func() error {
		err := f(c.ctx)
		if err != nil {
			c.stop(err)
		}
		return err
	})
}

// Context returns the handler's context, which ends when the connection
// starts closing (see Handler). Code that serves the connection from
// outside the handler, such as a topics member, ties itself to it.
func (c *Conn) Context() context.Context { return c.ctx }

// Request returns the HTTP request that was upgraded when the connection's
// Config has KeepRequest, and nil otherwise, except to an Observer's
// ConnOpened, which always sees it. Its context's values (set by
// middleware) are in the handler's context either way.
func (c *Conn) Request() *http.Request { return c.req }

// Logger returns the connection's logger, which carries its route pattern
// (with a router), id, remote address, subprotocol and compression.
func (c *Conn) Logger() *slog.Logger { return c.logger() }

// debugOn reports whether debug lines would be logged; the connection's
// logger is built only for lines that are.
func (c *Conn) debugOn() bool {
	return c.set.logger.Enabled(context.Background(), slog.LevelDebug)
}

// logger builds the connection's logger on first use: most connections
// never log, and a logger with attributes costs memory for their lifetime.
func (c *Conn) logger() *slog.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	l := c.set.logger.With(c.logAttrs()...)
	if !c.log.CompareAndSwap(nil, l) {
		l = c.log.Load() // built by another goroutine meanwhile
	}
	return l
}

// ID returns a number that identifies the connection within the process.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.proto }

// Extensions returns the negotiated extensions.
func (c *Conn) Extensions() []Extension { return c.exts }

// RTT returns the round-trip time measured by the last keep-alive PING that
// was answered, or 0 before the first.
func (c *Conn) RTT() time.Duration { return time.Duration(c.keepAlive.rtt.Load()) }

// Stats returns the connection's traffic counters.
func (c *Conn) Stats() *Stats { return &c.stats }

// Inbound returns the connection's inbound side (the handler's in).
func (c *Conn) Inbound() *Inbound { return &c.in }

// Outbound returns the connection's outbound side (the handler's out).
func (c *Conn) Outbound() *Outbound { return &c.out }

// CloseNow closes the transport without a closing handshake. Readers and
// writers fail, the handler's context is cancelled, and Serve returns once
// the handler and its tasks have.
func (c *Conn) CloseNow() {
	c.stop(&CloseError{Code: frames.CloseAbnormal, Reason: "closed without handshake", Err: ErrClosed, byColibri: true})
	_ = c.nc.Close()
}

// ---- ending a connection ----

// fail ends the connection because of something colibri detected: the
// inbound side ends with ce, the CLOSE frame goes out ahead of queued data,
// and the handler's context is cancelled.
func (c *Conn) fail(ce *CloseError) {
	c.endRead(ce)
	c.queueClose(ce.Code, ce.Reason)
	c.stop(ce)
}

// endRead marks the inbound side over, keeping the first reason.
func (c *Conn) endRead(err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rended {
		return
	}
	c.rended, c.rerr = true, err
	c.rendedFlag.Store(true)
	c.rdone.fire()
}

func (c *Conn) readEnded() (bool, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.rended, c.rerr
}

// interruptReads wakes a reader blocked in the socket once the context is
// cancelled, unless the closing handshake already bounds reads.
func (c *Conn) interruptReads() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.closing = true
	c.closingFlag.Store(true)
	if !c.draining {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// closeFor decides the code and reason of the CLOSE frame that ends the
// connection after the handler returned herr, and logs the end once.
func (c *Conn) closeFor(herr error) (frames.CloseCode, string) {
	cause := context.Cause(c.ctx)
	c.rmu.Lock()
	peerClosed, peerCode, peerReason := c.peerClosed, c.peerCode, c.peerReason
	c.rmu.Unlock()

	var code frames.CloseCode
	var reason string
	var pe *panicError
	ce, isClose := errors.AsType[*CloseError](herr)
	switch {
	case errors.As(herr, &pe):
		c.logger().Error("handler panicked", slog.Any("panic", pe.value), slog.String("stack", string(pe.stack)))
		code, reason = frames.CloseInternalError, "internal error"
	case isClose:
		code, reason = ce.Code, ce.Reason
	case errors.Is(herr, ErrShutdown) || errors.Is(cause, ErrShutdown):
		code, reason = frames.CloseGoingAway, "server shutting down"
	case herr != nil && !errors.Is(herr, context.Canceled) && !errors.Is(herr, ErrClosed):
		c.logger().Error("handler failed", slog.Any("err", herr))
		code, reason = frames.CloseInternalError, "internal error"
	case !ours(cause):
		// A sibling task failed and cancelled the group.
		if tce, ok := errors.AsType[*CloseError](cause); ok {
			code, reason = tce.Code, tce.Reason
		} else {
			c.logger().Error("connection task failed", slog.Any("err", cause))
			code, reason = frames.CloseInternalError, "internal error"
		}
	case peerClosed:
		code, reason = peerCode, peerReason
	case c.parent.Err() != nil:
		// Serve's context ended: the server side is going away.
		code, reason = frames.CloseGoingAway, "going away"
	default:
		code = frames.CloseNormal
	}
	if code != frames.CloseNoStatus && !code.Valid() {
		// 1006 or 1015 cannot go on the wire; they come from a failed read,
		// so echo what the peer sent, if anything.
		if peerClosed {
			code, reason = peerCode, peerReason
		} else {
			code, reason = frames.CloseInternalError, ""
		}
	}
	return code, reason
}

// ours reports whether a context cause or task error came from colibri
// itself (a close it made, a shutdown, a cancellation) rather than from a
// failing task.
func ours(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrShutdown) || errors.Is(err, ErrClosed) {
		return true
	}
	ce, ok := errors.AsType[*CloseError](err)
	return ok && ce.byColibri
}

// finish performs the closing handshake after the handler returned herr,
// waits for the connection's tasks and closes the transport.
func (c *Conn) finish(herr error) error {
	code, reason := c.closeFor(herr)
	by, peerCode, peerReason := c.closeStarter()

	c.rmu.Lock()
	c.closing, c.draining = true, true
	c.closingFlag.Store(true)
	_ = c.nc.SetReadDeadline(time.Now().Add(c.set.closeTimeout))
	c.rmu.Unlock()
	c.stop(&CloseError{Code: code, Reason: reason, Err: ErrClosed, byColibri: true})

	c.sendClose(code, reason)
	if c.writeBroken() {
		// Our CLOSE could not be sent (a write failed or timed out), so
		// no answer will come: stop reading rather than wait CloseTimeout
		// for it, so that a peer that stopped reading goes at once.
		c.rmu.Lock()
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		c.rmu.Unlock()
	} else {
		c.awaitPeerClose()
	}
	c.rmu.Lock()
	g := c.group
	c.rmu.Unlock()
	var gerr error
	if g != nil {
		gerr = g.Wait()
	}
	c.bg.Wait()
	c.teardown()

	if by == SidePeer {
		code, reason = peerCode, peerReason
	}
	c.reportClose(by, code, reason)
	if herr != nil {
		return herr
	}
	if !ours(gerr) {
		return gerr
	}
	_, rerr := c.readEnded()
	if ce, ok := errors.AsType[*CloseError](rerr); ok && ce.Err != nil {
		return rerr
	}
	return nil
}

// writeBroken reports whether a write failed, leaving the stream unusable.
// While another goroutine holds the socket it reports false: that write
// ends by WriteTimeout.
func (c *Conn) writeBroken() bool {
	if !c.sockMu.TryLock() {
		return false
	}
	broken := c.wbroken
	c.unlockSock()
	return broken
}

// awaitPeerClose reads, discarding data, until the peer's CLOSE arrives,
// the read deadline passes or the transport fails.
func (c *Conn) awaitPeerClose() {
	if ended, _ := c.readEnded(); ended || !c.closeSent.Load() {
		return
	}
	timer := time.NewTimer(c.set.closeTimeout)
	defer timer.Stop()
	for !c.readTok.take() {
		select {
		case <-c.readTok.given():
		case <-c.rdone.wait():
			return
		case <-timer.C:
			return
		}
	}
	for {
		h, err := c.nextData()
		if err != nil {
			break
		}
		if err := c.skipPayload(h.Length); err != nil {
			break
		}
	}
	c.readTok.give()
}

// teardown closes the transport. After a clean handshake the server closes
// TCP first (RFC 6455 §7.1.1). Otherwise it shuts its sending side and
// reads until the peer closes, so that unread bytes do not turn the close
// into a reset that could swallow the CLOSE frame in flight.
func (c *Conn) teardown() {
	c.rmu.Lock()
	clean := c.peerClosed
	_, violated := errors.AsType[*frames.Violation](c.rerr)
	c.rmu.Unlock()
	c.sockMu.Lock()
	broken := c.wbroken || !c.closeOut
	c.wbroken = true
	c.sockMu.Unlock()

	if (clean && !c.client) || broken {
		_ = c.nc.Close()
		c.rd.release()
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && (violated || c.client) {
		_ = cw.CloseWrite()
		_ = c.nc.SetReadDeadline(time.Now().Add(c.set.closeTimeout))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
	}
	_ = c.nc.Close()
	c.rd.release()
}

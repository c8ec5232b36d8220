package wsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/messages"
)

// Handler serves one WebSocket connection. It runs inside the connection's
// task group: ctx is cancelled when the peer closes, when a sibling task
// started with Session.Go fails or panics, on a protocol violation, a
// keep-alive or idle timeout, when the server shuts down, and when the
// context given to Serve or Start ends; it carries that context's values,
// not its deadline. After out.Close it stays open until the peer's CLOSE
// arrives or Config.CloseTimeout passes, so that a loop can read what the
// peer still sends. Returning performs the closing handshake:
//
//   - nil, or an error matching context.Canceled or ErrClosed, closes
//     with 1000;
//   - a *CloseError (or an error wrapping one) closes with its code and reason;
//   - any other error closes with 1011 and is logged once; so is a panic;
//   - after a shutdown (ErrShutdown) the code is 1001 Going Away, or the
//     server's ShutdownCode.
//
// When the connection started closing before the handler returned (the
// peer's CLOSE, which colibri answers at once with the peer's code; a
// shutdown; a failed task), its CLOSE frame has gone out already and what
// the handler returns no longer changes the code.
type Handler[T any] func(ctx context.Context, in *Inbound, out *Outbound, s *Session[T]) error

// Session is what a handler knows about its connection: the Conn (addresses,
// negotiated subprotocol and extensions, task group) and the value that the
// upgrade decision handed over.
type Session[T any] struct {
	*Conn
	// Value is the value the upgrade decision produced for this connection.
	Value T

	handler Handler[T]
}

// Upgraded is a connection whose opening handshake is complete, ready to be
// served. handshake.Accept produces one on the server side; wsclient on the
// client side.
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
	// HTTP2 is true when Conn is an HTTP/2 stream (RFC 8441) rather than
	// a connection of its own; handshake.Accept sets it. See Conn.HTTP2.
	HTTP2 bool
}

// Conn is one WebSocket connection. Its methods are safe for concurrent
// use. A Conn lives from the hand-off of an upgraded transport until the
// handler, every task of its group and every function given to AfterFunc
// have returned and the transport is closed.
type Conn struct {
	// Each lock guards one thing: mu the connection's state (see state),
	// readMu the reading side (whoever holds it reads the socket), and, on
	// the writing side, the message lock (one message at a time), sockMu
	// (one frame or batch at a time) and the control queue's own. See
	// docs/architecture.md.

	// Set before the handler starts, then only read.
	nc     net.Conn
	set    settings
	req    *http.Request
	proto  string
	exts   []Extension
	id     uint64
	client bool
	http2  bool
	// allowedRsv is the RSV bits the peer may set: RSV1 with
	// permessage-deflate.
	allowedRsv byte
	route      string
	start      time.Time       // on the Config's clock
	parent     context.Context // the caller's: when it ends, closing begins with 1001
	stopWatch  func() bool     // stops watching parent; nil when it cannot end
	ctx        context.Context // the handler's
	cancel     context.CancelCauseFunc
	log        atomic.Pointer[slog.Logger] // built on first use: most connections never log
	in         Inbound
	out        Outbound
	obs        ConnObserver
	stats      counters

	mu sync.Mutex
	st state // under mu

	tasks *errgroup.Group // the handler's sibling tasks; made by the first Go, under mu
	bg    sync.WaitGroup  // background readers (see background.go), ticks, AfterFunc, the parent context's watch
	timer connTimer       // keep-alive, idle timeout, background starts

	// Reading. The holder of readMu reads the socket and owns the frame
	// state below it.
	readMu    sync.Mutex
	rd        netReader
	hdr       frames.Header // the data frame being read
	remaining int64         // its payload bytes not yet read
	maskPos   int
	asm       messages.Assembler
	bodySeq   atomic.Uint32 // counts loop bodies begun and Readers reads: a body's progress (see connTimer.tick)
	inBody    atomic.Bool   // a loop body runs: the loop has let readMu go
	heard     atomic.Bool   // a frame arrived since the timer last looked
	heardData atomic.Bool   // a data frame arrived since the timer last looked

	// Writing.
	msgLock chan struct{} // one slot: held for a whole message
	w       writer        // under sockMu
	sockMu  sync.Mutex    // held for each physical write
	ctrl    controlQueue

	deflate *deflateState // permessage-deflate, when negotiated
	inFrame frameCount    // a Frames loop's message, for the observer
}

// counters are a connection's traffic totals; Stats reads a snapshot.
type counters struct {
	messagesIn, messagesOut atomic.Int64
	bytesIn, bytesOut       atomic.Int64
}

// Stats is a snapshot of a connection's traffic.
type Stats struct {
	// MessagesIn and MessagesOut count whole data messages.
	MessagesIn, MessagesOut int64
	// BytesIn and BytesOut count the payload bytes of data frames as
	// colibri read and wrote them on the wire (compressed, when
	// permessage-deflate is on): data the peer sent that no loop read is
	// not counted, nor are control frames and frame headers.
	BytesIn, BytesOut int64
}

// Stats returns a snapshot of the connection's traffic counters.
func (c *Conn) Stats() Stats {
	return Stats{
		MessagesIn:  c.stats.messagesIn.Load(),
		MessagesOut: c.stats.messagesOut.Load(),
		BytesIn:     c.stats.bytesIn.Load(),
		BytesOut:    c.stats.bytesOut.Load(),
	}
}

func newConn(u Upgraded, cfg *Config, deflate *deflateParams) *Conn {
	c := &Conn{
		nc:      u.Conn,
		client:  u.Client,
		http2:   u.HTTP2,
		set:     cfg.resolve(),
		req:     u.Request,
		proto:   u.Subprotocol,
		exts:    u.Extensions,
		route:   u.Route,
		id:      uint64(rand.Int64()),
		msgLock: make(chan struct{}, 1),
	}
	c.in.c, c.out.c = c, c
	c.start = c.set.clock.Now()
	if deflate != nil {
		c.deflate = newDeflateState(deflate, cfg.Compression)
		c.allowedRsv = frames.Rsv1
	}
	c.rd.init(u.Conn, u.Buffered)
	c.asm.SkipUTF8 = !c.set.checkUTF8
	return c
}

// Serve runs handler on an upgraded connection and blocks until the
// connection is over: the handler, every task of its group and every
// function given to AfterFunc returned, the closing handshake is done and
// the transport is closed. ctx carries values
// to the handler's context; when it is cancelled the connection closes with
// 1001 Going Away.
//
// Serve returns the handler's error, or the reason the connection failed
// (nil after a clean close).
func Serve[T any](ctx context.Context, u Upgraded, value T, handler Handler[T], cfg *Config) error {
	s, err := open(ctx, u, value, handler, cfg)
	if err != nil {
		return err
	}
	return s.serve()
}

// Start is Serve in the background: it sets the connection up in the
// calling goroutine and runs the handler and the closing handshake in a
// goroutine of the connection's own, which begins with the handler, so
// that an idle connection whose handler ranges over an iterator keeps the
// runtime's smallest stack. Start returns an error, having closed u.Conn,
// only when u cannot be served.
func Start[T any](ctx context.Context, u Upgraded, value T, handler Handler[T], cfg *Config) error {
	s, err := open(ctx, u, value, handler, cfg)
	if err != nil {
		return err
	}
	go s.serve()
	return nil
}

// open sets up the connection and everything its handler runs with.
func open[T any](ctx context.Context, u Upgraded, value T, handler Handler[T], cfg *Config) (*Session[T], error) {
	p, err := deflateFrom(u.Extensions, u.Client)
	if err != nil {
		_ = u.Conn.Close()
		group.Leave(ctx)
		return nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	c := newConn(u, cfg, p)
	c.begin(ctx, cfg)
	return &Session[T]{Conn: c, Value: value, handler: handler}, nil
}

// serve runs the handler and ends the connection. Under Start it is the
// first frame of the connection's goroutine; the frames above the wait for
// the peer must stay within the runtime's smallest stack (see awaitFrame),
// so the recovery from a panic is a deferred call rather than a wrapper.
func (s *Session[T]) serve() (err error) {
	defer func() { err = s.end(recovered(recover(), err)) }()
	return vetted(s.handler(s.ctx, &s.in, &s.out, s))
}

// recovered turns v, a recovered panic if not nil, into the error that
// takes the place of err.
func recovered(v any, err error) error {
	if v != nil {
		return &panicError{value: v, stack: debug.Stack()}
	}
	return err
}

// run calls f with the handler's context, turning a panic into an error.
func (c *Conn) run(f func(ctx context.Context) error) (err error) {
	defer func() { err = recovered(recover(), err) }()
	return vetted(f(c.ctx))
}

// vetted returns err once the methods the closing will call on it (Error,
// and Unwrap, Is and As through errors.Is and errors.As) have run: one that
// panics, as a method of a typed nil pointer often does, panics here, where
// the caller's recover turns it into a panicError, rather than in the
// closing, where nothing would.
func vetted(err error) error {
	if err == nil || colibriMade(err) {
		// Such as in.Err(), returned as it is: colibri's own, whose
		// Error would only build a string nobody reads.
		return err
	}
	_ = err.Error()
	_, _ = errors.AsType[*CloseError](err)
	_ = errors.Is(err, ErrClosed)
	return err
}

// begin sets up everything the handler runs with.
func (c *Conn) begin(parent context.Context, cfg *Config) {
	// The handler's context ends only when closing begins, whatever begins
	// it: the caller's context ending begins it below, so that its 1001
	// is fixed and writes are refused by the time the handler sees its
	// context end.
	c.parent = parent
	c.ctx, c.cancel = context.WithCancelCause(context.WithoutCancel(parent))
	group.Join(parent, (*member)(c))
	if parent.Done() != nil {
		c.bg.Add(1)
		c.stopWatch = context.AfterFunc(parent, func() {
			defer c.bg.Done()
			c.closeGoingAway(context.Cause(parent))
		})
	}
	if cfg.Observer != nil {
		// A panic leaves the connection unobserved, not unserved.
		c.observe(func() { c.obs = cfg.Observer.ConnOpened(c) })
	}
	if !cfg.KeepRequest {
		c.req = nil
	}
	if c.debugOn() {
		c.logger().Debug("connection open")
	}
	c.timer.start(c)
}

// end runs once the handler returned herr: the closing handshake, the wait
// for the connection's tasks, and the bookkeeping. It returns what Serve
// returns.
func (c *Conn) end(herr error) error {
	if c.stopWatch != nil && c.stopWatch() {
		c.bg.Done() // it will not run
	}
	code, reason, cause, ok := c.handlerClose(herr)
	if c.parent.Err() != nil {
		// The handler may have returned on seeing the caller's context
		// end (watching it directly) before the watch began closing: the
		// close is still the 1001 that context promises.
		cause = context.Cause(c.parent)
		code, reason, ok = frames.CloseGoingAway, goingAwayReason(cause), true
	}
	// In one step, closing begins (unless it began before) and Go and
	// Writer refuse: the tasks running now are all the connection waits
	// for, and whatever is refused from here carries the code. The open
	// Writer is abandoned before the handler's context ends, so that no
	// task sees the context end and can still write to it; its message
	// lock is let go only after, so that no waiting write slips in before
	// the CLOSE.
	c.mu.Lock()
	c.st.returned = true
	tasks := c.tasks
	if ok {
		c.markClosing(SideLocal, code, reason, cause)
	}
	first := c.st.cause
	c.mu.Unlock()
	abandoned := c.abandonWriter()
	c.stop(first)
	if abandoned {
		c.unlockMsg() // sends the CLOSE
	} else {
		c.sendPendingClose()
	}
	c.awaitPeerClose()

	var gerr error
	if tasks != nil {
		gerr = tasks.Wait()
	}
	c.timer.stop()
	c.bg.Wait()
	c.flushClose()
	c.teardown()
	c.reportClose()
	c.cancel(ErrClosed)
	// The handler's context carries the caller's values, the place in the
	// group among them.
	group.Quit(c.ctx, (*member)(c))
	group.Leave(c.ctx)

	switch {
	case herr != nil:
		return herr
	case gerr != nil && !ours(gerr):
		return gerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := errors.AsType[*CloseError](c.st.readErr); ok && ce.Err != nil {
		return c.st.readErr
	}
	return nil
}

// member is a Conn as its Group sees it.
type member Conn

func (m *member) Shutdown(code CloseCode) {
	(*Conn)(m).beginClose(SideLocal, code, "server shutting down", ErrShutdown, afterMessage)
}
func (m *member) CloseNow() { (*Conn)(m).CloseNow() }

type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("wsconn: panic: %v", p.value) }

// Go starts f as a task bound to the connection: it runs in the
// connection's group with the handler's context, and the connection is not
// torn down before it returns. An error or a panic cancels the group and
// closes the connection with 1011 (or the code of a *CloseError); an error
// matching context.Canceled, ErrClosed or ErrShutdown, which says the
// task saw the connection end, changes nothing. Go may be
// called from any goroutine. Once the handler has returned and the
// connection waits for its tasks, Go starts nothing and returns ErrClosed.
func (c *Conn) Go(f func(ctx context.Context) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.returned {
		return ErrClosed
	}
	if c.tasks == nil {
		c.tasks = new(errgroup.Group)
	}
	c.tasks.Go(func() error {
		err := c.run(f)
		if err != nil {
			c.taskFailed(err)
		}
		return err
	})
	return nil
}

// Context returns the handler's context, which ends when the connection
// starts closing, or after out.Close when the peer's CLOSE arrives (see
// Handler). Code that serves the connection from
// outside the handler, such as a topics member, ties itself to it.
func (c *Conn) Context() context.Context { return c.ctx }

// AfterFunc arranges for f to run in its own goroutine once the handler's
// context ends, as context.AfterFunc(c.Context(), f) does, except that the
// connection is not over before f returns: like a task, f is bound to the
// connection, so clean-up it does (leaving a room, reporting what was not
// delivered) is done before Serve returns and before a graceful shutdown
// that waits for the connection does. If the context has ended already, f
// runs at once in the calling goroutine, before AfterFunc returns. A panic
// in f is recovered and logged with its stack, wherever f runs. Calling
// stop keeps f from running, and reports whether it did, as
// context.AfterFunc's stop does.
func (c *Conn) AfterFunc(f func()) (stop func() bool) {
	// Checked under mu: the context is cancelled before mu is next taken,
	// and the connection takes mu after the cancellation and before it
	// waits for bg, so an f counted here is always waited for.
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		func() {
			defer c.recoverAfterFunc()
			f()
		}()
		return func() bool { return false }
	}
	c.bg.Add(1)
	c.mu.Unlock()
	stopRun := context.AfterFunc(c.ctx, func() {
		defer c.bg.Done()
		defer c.recoverAfterFunc()
		f()
	})
	return func() bool {
		if stopRun() {
			c.bg.Done()
			return true
		}
		return false
	}
}

// recoverAfterFunc, deferred around a function given to AfterFunc, logs
// its panic with the stack, as a task's is: the connection is closing by
// then, so there is no close code to change.
func (c *Conn) recoverAfterFunc() {
	if v := recover(); v != nil {
		c.logger().Error("AfterFunc panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
	}
}

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

// logger builds the connection's logger on first use: a logger with
// attributes costs memory for the connection's lifetime.
func (c *Conn) logger() *slog.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	c.log.CompareAndSwap(nil, c.set.logger.With(c.logAttrs()...))
	return c.log.Load()
}

// ID returns a random number, below 2^63, that identifies the connection in
// logs and traces. Being random rather than counted, it needs no state
// shared between connections and stays distinct across the processes and
// nodes of one application.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.proto }

// Extensions returns the negotiated extensions.
func (c *Conn) Extensions() []Extension { return c.exts }

// Route returns the pattern of the router's ws route that accepted the
// connection, as ServeMux matched it ("/ws/chat/{room}"), or "" for a
// connection served without a router.
func (c *Conn) Route() string { return c.route }

// Outbound returns the connection's sending side (the handler's out), for
// code that writes to the connection from outside the handler, such as a
// topics member.
func (c *Conn) Outbound() *Outbound { return &c.out }

// RTT returns the round-trip time measured by the last keep-alive PING that
// was answered, or 0 before the first.
func (c *Conn) RTT() time.Duration { return time.Duration(c.timer.rtt.Load()) }

// CloseNow closes the transport without a closing handshake. Readers and
// writers fail, the handler's context is cancelled, and Serve returns once
// the handler and its tasks have.
func (c *Conn) CloseNow() {
	c.transportFailed(&CloseError{Code: frames.CloseAbnormal, Reason: "closed without handshake", Err: ErrClosed, byColibri: true}, SideLocal)
	_ = c.nc.Close()
}

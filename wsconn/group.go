package wsconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group owns the connections of a server: it runs each in its own
// goroutine (Go) or in the goroutine of the handler that accepted it (Run),
// counts them, and shuts them all down gracefully. The zero
// value is ready to use. The router and the application each hand their
// connections to a Group, so that no connection outlives its server.
type Group struct {
	// Limit caps the connections the Group owns at once; Go refuses more
	// with ErrGroupFull. Zero means no cap. Set it before use.
	Limit int

	// HandshakeTimeout bounds writing the handshake response for
	// connections accepted into the Group by a router whose ws route sets
	// no timeout of its own. Zero means AcceptOptions' default (10 s).
	HandshakeTimeout time.Duration

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	running int // goroutines started by Go that have not returned
	closed  bool
	wg      sync.WaitGroup
}

type groupKey struct{}

// WithGroup returns a copy of ctx that names g as the Group for
// connections accepted under it; the router hands such connections to g.
func WithGroup(ctx context.Context, g *Group) context.Context {
	return context.WithValue(ctx, groupKey{}, g)
}

// groupCtx is the context of a connection that counts in g: it has its
// parent's values but not its cancellation or deadline, and names g
// (context.WithoutCancel and WithGroup in one allocation). It also
// remembers whether the connection's place in g was given back.
type groupCtx struct {
	parent context.Context
	g      *Group
	left   atomic.Bool
}

func (c *groupCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *groupCtx) Done() <-chan struct{}       { return nil }
func (c *groupCtx) Err() error                  { return nil }

func (c *groupCtx) Value(key any) any {
	if key == (groupKey{}) {
		return c.g
	}
	return c.parent.Value(key)
}

func (c *groupCtx) String() string { return fmt.Sprint(c.parent) + ".WithGroup" }

// leave gives the place back, once.
func (c *groupCtx) leave() {
	if !c.left.Swap(true) {
		c.g.leave()
	}
}

// GroupFrom returns the Group named by ctx, or nil.
func GroupFrom(ctx context.Context) *Group {
	g, _ := ctx.Value(groupKey{}).(*Group)
	return g
}

// Go runs f in a new goroutine owned by g. f's context carries the values
// of ctx (the request's, with what middleware added) but not its
// cancellation or deadline, and names g: a connection served with it
// counts in g and is closed with 1001 Going Away when g shuts down. Go
// returns ErrShutdown once g has begun shutting down, and ErrGroupFull at
// its Limit.
func (g *Group) Go(ctx context.Context, f func(ctx context.Context)) error {
	if err := g.admit(); err != nil {
		return err
	}
	gctx := &groupCtx{parent: ctx, g: g}
	go func() {
		defer g.leave()
		f(gctx)
	}()
	return nil
}

// admit counts one more running f, or refuses it (Go and Run).
func (g *Group) admit() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrShutdown
	}
	if g.Limit > 0 && g.running >= g.Limit {
		return ErrGroupFull
	}
	g.wg.Add(1)
	g.running++
	return nil
}

// leave undoes admit once f has returned.
func (g *Group) leave() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	g.wg.Done()
}

// add registers a connection; false means g is shutting down and the
// connection must close at once.
func (g *Group) add(c *Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil {
		g.conns = make(map[*Conn]struct{})
	}
	g.conns[c] = struct{}{}
	return !g.closed
}

func (g *Group) remove(c *Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// Len returns the number of connections g owns: started with Go and not
// yet finished, the ones still in their handshake included.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// ShutdownReport says how a shutdown ended the connections that were open.
type ShutdownReport struct {
	// Graceful connections finished their closing handshake (1001 Going
	// Away) before the deadline.
	Graceful int
	// Forced connections were still open at the deadline and had their
	// transport closed without a handshake.
	Forced int
}

// ErrGroupFull is returned by Go when the Group already owns Limit
// connections.
var ErrGroupFull = errors.New("wsconn: connection limit reached")

// ErrShutdownIncomplete is returned by Shutdown when handlers were still
// running after their connections were force-closed.
var ErrShutdownIncomplete = errors.New("wsconn: handlers still running after shutdown")

// forcedGrace is how long Shutdown waits for handlers after it closed
// their transports.
const forcedGrace = time.Second

// Shutdown stops g from taking new connections, cancels every connection's
// context with ErrShutdown (each then closes with 1001 Going Away after
// what its writer accepted has been sent) and waits for them. When ctx ends
// first, the remaining transports are closed without a handshake.
func (g *Group) Shutdown(ctx context.Context) (ShutdownReport, error) {
	g.mu.Lock()
	g.closed = true
	open := g.running
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.stop(ErrShutdown)
	}

	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return ShutdownReport{Graceful: open}, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	forced := len(g.conns)
	for c := range g.conns {
		c.CloseNow()
	}
	g.mu.Unlock()
	report := ShutdownReport{Graceful: max(open-forced, 0), Forced: forced}
	select {
	case <-done:
		return report, nil
	case <-time.After(forcedGrace):
		return report, ErrShutdownIncomplete
	}
}

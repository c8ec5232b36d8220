// Package group owns the WebSocket connections of a server: it counts them
// against a limit, stops them all on shutdown and waits for them. The
// router and the application share one Group through the request's
// context; wsconn enrols each connection it serves under such a context.
package group

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/colibri-ws/colibri/frames"
)

// Errors a Group reports.
var (
	// ErrFull refuses a connection when the Group holds Limit already.
	ErrFull = errors.New("connection limit reached")
	// ErrClosed refuses a connection once the Group began shutting down.
	ErrClosed = errors.New("server is shutting down")
	// ErrIncomplete: handlers were still running after their transports
	// were closed at the shutdown deadline.
	ErrIncomplete = errors.New("handlers still running after shutdown")
)

// Member is a connection as its Group sees it.
type Member interface {
	// Shutdown starts the connection's graceful close with code.
	Shutdown(code frames.CloseCode)
	// CloseNow closes the transport without a closing handshake.
	CloseNow()
}

// Report says how a shutdown ended the connections that were open.
type Report struct {
	// Graceful connections were over before the deadline.
	Graceful int
	// Forced connections were still open at a Shutdown's deadline and had
	// their transport closed without a handshake.
	Forced int
}

// Group owns connections. The zero value is ready to use.
type Group struct {
	// Limit caps the connections held at once; zero means no cap. Set it
	// before use.
	Limit int
	// ShutdownCode is the close code Shutdown sends; zero means 1001
	// Going Away.
	ShutdownCode frames.CloseCode
	// Refuse, when set, answers and reports an upgrade request that Enter
	// refused (with ErrFull or ErrClosed), so that the Group's owner
	// answers every refusal of its own alike. Set it before use.
	Refuse func(w http.ResponseWriter, r *http.Request, err error)

	mu      sync.Mutex
	members map[Member]struct{}
	held    int // places claimed by Enter and not yet given back
	closed  bool
	forced  bool // Shutdown's deadline passed: a member that joins now is closed at once
	// forcedHeld is how many places were held when the deadline passed:
	// they were forced, whichever Shutdown call reports them.
	forcedHeld int
	// empty is closed once the Group is closed and holds no place; made
	// by the first Shutdown. A channel rather than a WaitGroup, so that
	// Shutdown can stop waiting at its deadline without leaving a
	// goroutine behind to wait on.
	empty chan struct{}
}

type groupKey struct{}

// With returns a copy of ctx that names g as the Group of connections
// accepted under it.
func With(ctx context.Context, g *Group) context.Context {
	return context.WithValue(ctx, groupKey{}, g)
}

// From returns the Group named by ctx, or nil.
func From(ctx context.Context) *Group {
	g, _ := ctx.Value(groupKey{}).(*Group) // a place answers for its group too
	return g
}

// place is a claimed place in a Group, carried by the context a
// connection is served with. It keeps the values of the request's context
// but not its cancellation: the connection outlives the request.
type place struct {
	context.Context // context.WithoutCancel of the request's
	g               *Group
	left            bool // under g.mu
}

type placeKey struct{}

func (p *place) Value(key any) any {
	switch key {
	case placeKey{}:
		return p
	case groupKey{}:
		return p.g
	}
	return p.Context.Value(key)
}

// Enter claims a place in g for one connection and returns the context to
// serve it with: it carries ctx's values but not its cancellation. The
// place is given back by Leave. Enter fails with ErrClosed once g began
// shutting down, and with ErrFull at its Limit.
func (g *Group) Enter(ctx context.Context) (context.Context, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	if g.Limit > 0 && g.held >= g.Limit {
		return nil, ErrFull
	}
	g.held++
	return &place{Context: context.WithoutCancel(ctx), g: g}, nil
}

// Leave gives back the place claimed by the Enter that made ctx; it does
// nothing for other contexts, or when called again.
func Leave(ctx context.Context) {
	p, ok := ctx.Value(placeKey{}).(*place)
	if !ok {
		return
	}
	g := p.g
	g.mu.Lock()
	if p.left {
		g.mu.Unlock()
		return
	}
	p.left = true
	g.held--
	if g.held == 0 && g.empty != nil {
		close(g.empty) // no place can be claimed again once closed
	}
	g.mu.Unlock()
}

// Join enrols m in the Group whose place ctx carries, so that a shutdown
// reaches it. When that Group is shutting down already, m is told at once,
// with the same code as the members Shutdown told, and once the shutdown's
// deadline has passed it is closed at once, as they were. Connections
// served outside a Group join nothing.
func Join(ctx context.Context, m Member) {
	p, ok := ctx.Value(placeKey{}).(*place)
	if !ok {
		return
	}
	g := p.g
	g.mu.Lock()
	if g.members == nil {
		g.members = make(map[Member]struct{})
	}
	g.members[m] = struct{}{}
	closed, forced := g.closed, g.forced
	g.mu.Unlock()
	if closed {
		m.Shutdown(g.code())
	}
	if forced {
		m.CloseNow()
	}
}

// code is the close code a shutdown sends.
func (g *Group) code() frames.CloseCode {
	if g.ShutdownCode == 0 {
		return frames.CloseGoingAway
	}
	return g.ShutdownCode
}

// Quit undoes Join once the connection is over.
func Quit(ctx context.Context, m Member) {
	p, ok := ctx.Value(placeKey{}).(*place)
	if !ok {
		return
	}
	p.g.mu.Lock()
	delete(p.g.members, m)
	p.g.mu.Unlock()
}

// Len returns the number of places held: connections being served and
// handshakes in progress.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// report says how the open places a Shutdown call found fared. No place
// is claimed once the Group is closed, so the places held when the
// deadline of any call passed, all forced, are among them; those that
// were given back before it closed gracefully (a call that began after the
// deadline finds only forced places).
func (g *Group) report(open int, wasForced bool) Report {
	if wasForced {
		return Report{Forced: open}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.forced {
		return Report{Graceful: open}
	}
	forced := min(g.forcedHeld, open)
	return Report{Graceful: open - forced, Forced: forced}
}

// forcedGrace is how long Shutdown waits for handlers after it closed
// their transports.
const forcedGrace = time.Second

// Shutdown refuses new connections, starts the graceful close of every
// member, and waits until every place is given back. When ctx ends first,
// the remaining members' transports are closed without a handshake and
// counted as forced.
func (g *Group) Shutdown(ctx context.Context) (Report, error) {
	g.mu.Lock()
	g.closed = true
	if g.empty == nil {
		g.empty = make(chan struct{})
		if g.held == 0 {
			close(g.empty)
		}
	}
	empty := g.empty
	open, wasForced := g.held, g.forced
	members := make([]Member, 0, len(g.members))
	for m := range g.members {
		members = append(members, m)
	}
	g.mu.Unlock()
	code := g.code()
	for _, m := range members {
		m.Shutdown(code)
	}

	select {
	case <-empty:
		return g.report(open, wasForced), nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !g.forced {
		g.forced, g.forcedHeld = true, g.held
	}
	members = members[:0]
	for m := range g.members {
		members = append(members, m)
	}
	g.mu.Unlock()
	for _, m := range members {
		m.CloseNow()
	}
	report := g.report(open, wasForced)
	timer := time.NewTimer(forcedGrace)
	defer timer.Stop()
	select {
	case <-empty:
		return report, nil
	case <-timer.C:
		return report, ErrIncomplete
	}
}

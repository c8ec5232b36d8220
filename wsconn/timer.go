package wsconn

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colibri-ws/colibri/frames"
)

// bgDelay is how long nobody may read before the background reader starts:
// after the connection opens or a loop ends (a handler that ranges at
// once needs no reader goroutine), and while a loop body runs (bodies
// are usually quick). A body is seen running at two ticks this far apart
// before the background reader starts, so control frames wait at most
// twice this long.
const bgDelay = 20 * time.Millisecond

// connTimer is a connection's one timer, on Config.Clock. It sends a
// keep-alive PING when the peer has been quiet, fails the connection when
// the PING goes unanswered or no data came for IdleTimeout, measures the
// round-trip time, and starts the background reader when nobody reads.
//
// The read path only raises flags (Conn.heard, heardData, body); the timer
// reads the clock and looks at them when it fires, so that keep-alive
// costs nothing per message. Its times are therefore as precise as its
// ticks, which come at least every quarter interval: a PING goes out
// between 0.75 and 1 PingInterval after the peer's last frame, and the
// idle timeout strikes between 1 and 1.25 IdleTimeouts after its last
// data frame.
type connTimer struct {
	mu  sync.Mutex
	t   Timer
	due time.Duration // when t fires next; 0 while it is not armed

	// Times are durations since the connection started, on its clock.
	lastTick            time.Duration
	lastHeard, lastData time.Duration // as seen at the ticks
	pingSent            time.Duration // when our PING left; notYet while it waits to leave
	pingPayload         [8]byte
	lastBody            uint32 // Conn.bodySeq at the last tick
	bgBody              uint32 // the body the background reader was started for (Conn.bodySeq)

	stopped bool
	pingOut bool // our PING waits for an answer
	startBg bool // start the background reader at the next tick

	watching atomic.Bool // a tick comes within bgDelay to look at the body
	rtt      atomic.Int64
}

// recheck is how soon a due pong timeout is looked at again while nobody
// reads the socket (its answer may be sitting unread).
const recheck = time.Second

// notYet is pingSent while the PING waits to leave.
const notYet = -1

// now returns the time on the connection's clock, as a duration since
// the connection started.
func (c *Conn) now() time.Duration { return c.set.clock.Now().Sub(c.start) }

func (t *connTimer) start(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startBg = true
	t.due = bgDelay
	t.t = c.set.clock.AfterFunc(bgDelay, func() { t.tick(c) })
}

// stop stops the timer; a tick under way finishes first (it counts in
// Conn.bg).
func (t *connTimer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.t.Stop()
}

// within makes the timer fire within d; t.mu is held.
func (t *connTimer) within(c *Conn, d time.Duration) {
	if t.stopped {
		return
	}
	due := c.now() + d
	if t.due == 0 || due < t.due {
		t.due = due
		t.t.Reset(d)
	}
}

// soon asks for the background reader within bgDelay, unless a loop
// reads by then.
func (t *connTimer) soon(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startBg = true
	t.within(c, bgDelay)
}

// watchBody makes sure a tick looks at the loop body that just started.
func (t *connTimer) watchBody(c *Conn) {
	if t.watching.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.watching.Load() {
		t.watching.Store(true)
		t.within(c, bgDelay)
	}
}

// pingLeft records the moment our PING goes to the socket; the pong
// timeout and the round trip run from then. The caller holds the socket
// lock.
func (t *connTimer) pingLeft(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pingOut {
		t.pingSent = c.now()
	}
}

// pong measures the round trip if p answers our PING.
func (t *connTimer) pong(c *Conn, p []byte) {
	t.mu.Lock()
	ours := t.pingOut && t.pingSent != notYet && bytes.Equal(p, t.pingPayload[:])
	var rtt time.Duration
	if ours {
		t.pingOut = false
		rtt = c.now() - t.pingSent
		t.rtt.Store(int64(rtt))
	}
	t.mu.Unlock()
	if ours && c.obs != nil {
		c.observe(func() { c.obs.PingRTT(rtt) })
	}
}

// keepAlive decides what keep-alive and the idle timeout ask for at a
// tick: when the next tick is due, a failure, or a PING; t.mu is held.
func (t *connTimer) keepAlive(c *Conn, now time.Duration, wall time.Time) (next time.Duration, fail *CloseError, ping bool) {
	set := c.set
	// Ticks come at least every quarter of the intervals they keep, so
	// that lastHeard and lastData are at most that much later than the
	// frames they stand for.
	next = time.Duration(1<<63 - 1)
	if set.pingInterval >= 0 {
		next = set.pingInterval / 4
	}
	if set.idleTimeout > 0 {
		next = min(next, set.idleTimeout/4)
	}
	if set.idleTimeout > 0 {
		switch idle := now - t.lastData; {
		case idle < set.idleTimeout:
			next = min(next, set.idleTimeout-idle)
		case c.rd.waiting.Load():
			fail = &CloseError{Code: frames.CloseGoingAway, Reason: "idle timeout", Err: ErrIdleTimeout, byColibri: true}
		default:
			// Nobody waits on the socket: a busy loop body has let the
			// data kept for it reach ReadAhead, and what the peer sent
			// since waits unread. That peer is not idle; the next tick,
			// within a quarter timeout, looks again.
		}
	}
	if set.pingInterval >= 0 {
		switch {
		case !t.pingOut && now-t.lastHeard >= set.pingInterval:
			ping, t.pingOut, t.pingSent = true, true, notYet
			binary.BigEndian.PutUint64(t.pingPayload[:], uint64(wall.UnixNano()))
			if set.pongTimeout >= 0 {
				next = min(next, set.pongTimeout)
			}
		case !t.pingOut:
			next = min(next, t.lastHeard+set.pingInterval-now)
		case set.pongTimeout < 0:
		case t.pingSent == notYet:
			next = min(next, set.pongTimeout) // still waiting to leave
		case now-t.pingSent < set.pongTimeout:
			next = min(next, t.pingSent+set.pongTimeout-now)
		case c.rd.waiting.Load():
			fail = &CloseError{Code: frames.CloseGoingAway, Reason: "ping timeout", Err: ErrPingTimeout, byColibri: true}
		default:
			next = min(next, recheck)
		}
	}
	return next, fail, ping
}

// tick looks at the connection and acts; what it does to the connection
// it does after letting t.mu go, since those paths take the socket lock,
// which pingLeft takes before t.mu.
func (t *connTimer) tick(c *Conn) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	c.bg.Add(1)
	defer c.bg.Done()
	set := c.set
	wall := set.clock.Now()
	now := wall.Sub(c.start)
	t.due = 0
	t.watching.Store(false)
	// A flag says a frame came since the last tick, not when: the PING is
	// timed from the last tick (it may go out up to a tick early), the
	// idle timeout from this one (it may strike up to a tick late, never
	// early).
	if c.heard.Swap(false) {
		t.lastHeard = t.lastTick
		t.pingOut = false // any frame shows the peer is alive
	}
	if c.heardData.Swap(false) {
		t.lastData = now
	}
	t.lastTick = now

	var fail *CloseError
	var ping bool
	next := time.Duration(1<<63 - 1)
	// Once closing has begun, keep-alive and the idle timeout are over:
	// CloseTimeout bounds what is left, and a PING could only go out
	// ahead of the CLOSE. Ticks then serve the background reader alone.
	if !c.closingStarted() {
		next, fail, ping = t.keepAlive(c, now, wall)
	}

	startBg := t.startBg
	t.startBg = false
	if b := c.bodySeq.Load(); c.inBody.Load() && b != t.bgBody {
		if b == t.lastBody {
			t.bgBody, startBg = b, true
		} else {
			t.watching.Store(true)
			next = min(next, bgDelay)
		}
		t.lastBody = b
	}
	if fail == nil && next < 1<<63-1 {
		t.within(c, max(next, time.Millisecond))
	}
	payload := t.pingPayload
	t.mu.Unlock()

	switch {
	case fail != nil:
		if c.debugOn() {
			c.logger().Debug("keep-alive closing connection", "reason", fail.Reason)
		}
		c.fail(fail)
	case ping:
		c.queueControl(ctrlPing, payload[:])
	}
	if startBg {
		c.startBackground()
	}
}

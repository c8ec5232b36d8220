package wsconn

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colibri-ws/colibri/frames"
)

// keepAlive sends PINGs when the peer has been quiet, closes the connection
// when a PING goes unanswered or the peer sends no data for too long, and
// measures the round-trip time. It runs on timer callbacks rather than a
// goroutine of its own, so that an idle connection costs one goroutine.
type keepAlive struct {
	mu      sync.Mutex
	timer   Timer
	stopped bool

	lastHeard   atomic.Int64 // unix nanos of the last frame from the peer
	lastData    atomic.Int64 // unix nanos of the last data frame
	waitSince   atomic.Int64 // a reader is blocked on the socket since then; 0: not
	pingSentAt  atomic.Int64 // our outstanding PING left then; 0: none out
	pingQueued  bool         // under mu
	pingPayload [8]byte      // under mu
	rtt         atomic.Int64
}

const minTick = 10 * time.Millisecond

func (k *keepAlive) start(c *Conn) {
	now := c.set.clock.Now().UnixNano()
	k.lastHeard.Store(now)
	k.lastData.Store(now)
	if c.set.pingInterval < 0 && c.set.idleTimeout <= 0 {
		return
	}
	k.mu.Lock()
	k.timer = c.set.clock.AfterFunc(k.next(c, now), func() { k.tick(c) })
	k.mu.Unlock()
}

func (k *keepAlive) stop() {
	k.mu.Lock()
	k.stopped = true
	if k.timer != nil {
		k.timer.Stop()
	}
	k.mu.Unlock()
}

// heard records a frame from the peer.
func (k *keepAlive) heard(c *Conn) {
	if c.set.pingInterval < 0 && c.set.idleTimeout <= 0 {
		return // nobody looks at it
	}
	k.lastHeard.Store(c.set.clock.Now().UnixNano())
}

func (k *keepAlive) heardData(c *Conn) {
	k.lastData.Store(k.lastHeard.Load())
}

// waiting records that a reader starts or stops waiting on the socket.
// While nobody waits, bytes from the peer may sit unread, so silence
// proves nothing and the pong timeout does not run.
func (k *keepAlive) waiting(c *Conn, on bool) {
	if c.set.pingInterval < 0 {
		return
	}
	if on {
		k.waitSince.Store(c.set.clock.Now().UnixNano())
	} else {
		k.waitSince.Store(0)
	}
}

// pingLeft records the moment our PING reached the socket; the pong
// timeout runs from then. Called with the socket lock held.
func (k *keepAlive) pingLeft(c *Conn) {
	k.pingSentAt.Store(c.set.clock.Now().UnixNano())
}

// pong measures the round trip if p answers our PING.
func (k *keepAlive) pong(c *Conn, p []byte) {
	sent := k.pingSentAt.Load()
	if sent == 0 {
		return
	}
	k.mu.Lock()
	ours := k.pingQueued && bytes.Equal(p, k.pingPayload[:])
	if ours {
		k.pingQueued = false
		k.pingSentAt.Store(0)
		if k.timer != nil && !k.stopped {
			// The timer waits for the pong deadline; the next PING is
			// due earlier when the interval is shorter.
			k.timer.Reset(k.next(c, c.set.clock.Now().UnixNano()))
		}
	}
	k.mu.Unlock()
	if ours {
		rtt := c.set.clock.Now().UnixNano() - sent
		k.rtt.Store(rtt)
		c.measuredRTT(time.Duration(rtt))
	}
}

func (k *keepAlive) tick(c *Conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	set := c.set
	now := set.clock.Now().UnixNano()
	heard := k.lastHeard.Load()

	if set.idleTimeout > 0 && now-k.lastData.Load() >= int64(set.idleTimeout) {
		k.stopped = true
		c.failTimeout(ErrIdleTimeout, "idle timeout")
		return
	}
	if set.pingInterval >= 0 {
		if sent := k.pingSentAt.Load(); sent != 0 {
			if heard >= sent {
				// Any frame after our PING shows the peer is alive.
				k.pingSentAt.Store(0)
				k.pingQueued = false
			} else if wait := k.waitSince.Load(); set.pongTimeout >= 0 && wait != 0 && now-max(sent, wait) >= int64(set.pongTimeout) {
				k.stopped = true
				c.failTimeout(ErrPingTimeout, "ping timeout")
				return
			}
		}
		if !k.pingQueued && now-heard >= int64(set.pingInterval) {
			k.pingQueued = true
			binary.BigEndian.PutUint64(k.pingPayload[:], uint64(now))
			c.queueControl(ctrlPing, k.pingPayload[:])
		}
	}
	k.timer.Reset(k.next(c, now))
}

// next returns how long to sleep until something may be due.
func (k *keepAlive) next(c *Conn, now int64) time.Duration {
	set := c.set
	due := int64(1<<63 - 1)
	if set.pingInterval >= 0 {
		if sent := k.pingSentAt.Load(); (sent != 0 || k.pingQueued) && set.pongTimeout >= 0 {
			due = min(due, max(sent, now)+int64(set.pongTimeout))
		} else if sent == 0 && !k.pingQueued {
			due = min(due, k.lastHeard.Load()+int64(set.pingInterval))
		}
	}
	if set.idleTimeout > 0 {
		due = min(due, k.lastData.Load()+int64(set.idleTimeout))
	}
	return max(time.Duration(due-now), minTick)
}

// failTimeout closes a connection whose peer went quiet; the CLOSE goes
// out at once and nobody waits for an answer.
func (c *Conn) failTimeout(cause error, reason string) {
	ce := &CloseError{Code: frames.CloseGoingAway, Reason: reason, Err: cause, byColibri: true}
	if c.debugOn() {
		c.logger().Debug("keep-alive closing connection", "reason", reason)
	}
	c.fail(ce)
}

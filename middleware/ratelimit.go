package middleware

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxClients is the number of clients UpgradeRateLimit tracks when
// RateLimitOptions.MaxClients is 0. An entry takes about 150 bytes for an
// IPv4 client and a little more for IPv6, so a full table stays under 2 MiB.
const DefaultMaxClients = 10_000

// RateLimitOptions configures UpgradeRateLimitWith. The zero value gives
// the defaults, which are what UpgradeRateLimit uses.
type RateLimitOptions struct {
	// ClientIP returns the key a request is counted under. Default: the
	// host part of r.RemoteAddr, the peer of the TCP connection.
	//
	// Behind a reverse proxy every request comes from the proxy's address;
	// set ClientIP to read the header your proxy sets (X-Forwarded-For,
	// Forwarded) only if clients cannot reach the server except through that
	// proxy, or they can choose their own key and escape the limit. The
	// default does not trust such headers for that reason. ClientIP may also
	// map IPv6 addresses to their /64 prefix, since one host often has a
	// whole /64. An empty key is a key like any other: all requests that get
	// it share one bucket.
	ClientIP func(r *http.Request) string

	// MaxClients caps the number of clients tracked at once.
	// Default: DefaultMaxClients.
	//
	// When the table is full, the client seen least recently is forgotten to
	// make room, and starts again with a full bucket if it comes back. A
	// flood from many addresses can therefore reset the limit of a quiet
	// client, but it cannot make the table grow.
	MaxClients int
}

// UpgradeRateLimit limits how often each client IP may ask for a WebSocket
// upgrade: on average perSecond requests per second, with bursts of up to
// burst requests. It is UpgradeRateLimitWith with the zero RateLimitOptions.
func UpgradeRateLimit(perSecond float64, burst int) func(http.Handler) http.Handler {
	return UpgradeRateLimitWith(perSecond, burst, RateLimitOptions{})
}

// UpgradeRateLimitWith limits how often each client may ask for a
// WebSocket upgrade, with a token bucket per client: a bucket holds up to
// burst tokens, starts full, and refills at perSecond tokens per second;
// every upgrade request takes one token. A request that finds the bucket
// empty gets 429 Too Many Requests, with Retry-After set to the whole
// seconds until a token is back (at least 1) and a plain-text body. Other
// requests pass untouched and cost nothing: a WebSocket upgrade starts a
// long-lived session, which makes it the expensive request to limit, and
// plain HTTP routes have their own needs.
//
// Upgrade requests are HTTP/1.1 requests whose Connection field holds
// "upgrade" and whose Upgrade field holds "websocket", and HTTP/2 extended
// CONNECT requests for "websocket" (RFC 8441). A token is taken whether or
// not the upgrade is then accepted, so put UpgradeRateLimit before
// authentication to slow down guessing as well.
//
// Memory stays bounded: a client whose bucket has had time to refill
// completely is dropped, since a new entry would behave the same, and the
// table never holds more than opts.MaxClients clients. Idle entries are
// removed as later requests arrive; no goroutine is started. The returned
// middleware is safe for concurrent use, and each middleware returned by a
// call has a table of its own: build it once and reuse the value for every
// route it should cover.
//
// UpgradeRateLimitWith panics unless perSecond is finite and positive and
// burst is at least 1.
func UpgradeRateLimitWith(perSecond float64, burst int, opts RateLimitOptions) func(http.Handler) http.Handler {
	l := newUpgradeLimiter(perSecond, burst, opts, time.Now)
	return l.middleware
}

type upgradeLimiter struct {
	rate     float64       // tokens per second
	burst    float64       // bucket size, in tokens
	refill   time.Duration // time to refill an empty bucket
	max      int
	clientIP func(*http.Request) string
	now      func() time.Time

	mu      sync.Mutex
	clients map[string]*list.Element
	recent  list.List // of *bucket, most recently used at the front
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time // when tokens was last brought up to date
}

func newUpgradeLimiter(perSecond float64, burst int, opts RateLimitOptions, now func() time.Time) *upgradeLimiter {
	if !(perSecond > 0) || math.IsInf(perSecond, 1) {
		panic(fmt.Sprintf("middleware: UpgradeRateLimit: perSecond is %v, want a finite value > 0", perSecond))
	}
	if burst < 1 {
		panic(fmt.Sprintf("middleware: UpgradeRateLimit: burst is %d, want at least 1", burst))
	}
	l := &upgradeLimiter{
		rate:     perSecond,
		burst:    float64(burst),
		refill:   seconds(float64(burst) / perSecond),
		max:      opts.MaxClients,
		clientIP: opts.ClientIP,
		now:      now,
		clients:  make(map[string]*list.Element),
	}
	if l.max <= 0 {
		l.max = DefaultMaxClients
	}
	if l.clientIP == nil {
		l.clientIP = remoteIP
	}
	return l
}

func (l *upgradeLimiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUpgradeRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		wait := l.take(l.clientIP(r))
		if wait <= 0 {
			next.ServeHTTP(w, r)
			return
		}
		secs := max(1, int64(math.Ceil(wait.Seconds())))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		http.Error(w, "too many WebSocket upgrade requests, retry in "+strconv.FormatInt(secs, 10)+"s",
			http.StatusTooManyRequests)
	})
}

// take takes a token from the bucket of key. It returns 0 if there was one,
// and otherwise how long until there will be.
func (l *upgradeLimiter) take(key string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)

	var b *bucket
	if e, ok := l.clients[key]; ok {
		b = e.Value.(*bucket)
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		}
		b.last = now
		l.recent.MoveToFront(e)
	} else {
		if len(l.clients) >= l.max {
			l.remove(l.recent.Back())
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.clients[key] = l.recent.PushFront(b)
	}

	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return seconds((1 - b.tokens) / l.rate)
}

// evictIdle drops the clients not seen for the time it takes to refill an
// empty bucket: their buckets are full, as a new one would be. The list is
// ordered by last use, so it stops at the first client seen since.
func (l *upgradeLimiter) evictIdle(now time.Time) {
	for e := l.recent.Back(); e != nil; e = l.recent.Back() {
		if now.Sub(e.Value.(*bucket).last) < l.refill {
			return
		}
		l.remove(e)
	}
}

func (l *upgradeLimiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*bucket).key)
	l.recent.Remove(e)
}

// seconds converts s seconds to a Duration, saturating instead of
// overflowing for a very low rate.
func seconds(s float64) time.Duration {
	if d := s * float64(time.Second); d < math.MaxInt64 {
		return time.Duration(d)
	}
	return math.MaxInt64
}

// len returns the number of clients tracked, for tests.
func (l *upgradeLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// remoteIP returns the host part of r.RemoteAddr, or all of it when it has
// no port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

package middleware

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testLimiter returns a limiter on a fake clock and the handler it guards.
func testLimiter(perSecond float64, burst int, opts RateLimitOptions) (*upgradeLimiter, *fakeClock, http.Handler) {
	clock := newFakeClock()
	l := newUpgradeLimiter(perSecond, burst, opts, clock.Now)
	return l, clock, l.middleware(acceptUpgrade)
}

func upgradeFrom(remoteAddr string) *http.Request {
	r := upgradeRequest("/ws")
	r.RemoteAddr = remoteAddr
	return r
}

// admitted sends an upgrade request from remoteAddr and reports whether it
// got through; a refusal must be a well-formed 429.
func admitted(t *testing.T, h http.Handler, remoteAddr string) bool {
	t.Helper()
	w := serve(h, upgradeFrom(remoteAddr))
	if w.Code == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" || !strings.HasPrefix(w.Body.String(), "too many WebSocket upgrade requests") {
			t.Errorf("429 without Retry-After or body: %v %q", w.Header(), w.Body)
		}
		return false
	}
	if w.Header().Get("Upgrade") != "websocket" {
		t.Fatalf("got %d %v, want the route's decision or 429", w.Code, w.Header())
	}
	return true
}

func TestUpgradeRateLimitBurstThen429(t *testing.T) {
	_, _, h := testLimiter(1, 3, RateLimitOptions{})
	for i := range 3 {
		if !admitted(t, h, "198.51.100.7:1000") {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	w := serve(h, upgradeFrom("198.51.100.7:1000"))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("request 4: status %d, want 429", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if got := w.Body.String(); got != "too many WebSocket upgrade requests, retry in 1s\n" {
		t.Errorf("body %q", got)
	}
	if w.Header().Get("Upgrade") != "" {
		t.Error("429 carries the route's upgrade decision")
	}
}

func TestUpgradeRateLimitRefill(t *testing.T) {
	_, clock, h := testLimiter(2, 2, RateLimitOptions{})
	const ip = "198.51.100.7:1000"
	admitted(t, h, ip)
	admitted(t, h, ip)
	if admitted(t, h, ip) {
		t.Fatal("third request admitted with an empty bucket")
	}
	clock.Advance(400 * time.Millisecond) // 0.8 tokens
	if admitted(t, h, ip) {
		t.Fatal("admitted before a whole token was back")
	}
	clock.Advance(100 * time.Millisecond) // 1.0 token
	if !admitted(t, h, ip) {
		t.Fatal("refused after a token was back")
	}
	clock.Advance(10 * time.Second) // refills to the burst, no further
	for i := range 2 {
		if !admitted(t, h, ip) {
			t.Fatalf("refused request %d after a full refill", i+1)
		}
	}
	if admitted(t, h, ip) {
		t.Fatal("bucket refilled past the burst")
	}
}

func TestUpgradeRateLimitRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		perSecond float64
		advance   time.Duration
		want      string
	}{
		{2, 0, "1"},                         // 0.5 s rounds up to 1
		{0.5, 0, "2"},                       // 2 s
		{0.25, time.Second, "3"},            // 0.25 tokens back, 3 s to go
		{0.1, 9500 * time.Millisecond, "1"}, // 0.5 s to go
	} {
		_, clock, h := testLimiter(tc.perSecond, 1, RateLimitOptions{})
		admitted(t, h, "198.51.100.7:1")
		clock.Advance(tc.advance)
		w := serve(h, upgradeFrom("198.51.100.7:1"))
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != tc.want {
			t.Errorf("rate %v after %v: got %d Retry-After %q, want 429 %s",
				tc.perSecond, tc.advance, w.Code, w.Header().Get("Retry-After"), tc.want)
		}
	}
}

func TestUpgradeRateLimitPlainHTTPUntouched(t *testing.T) {
	l, _, _ := testLimiter(1, 1, RateLimitOptions{})
	h := l.middleware(ok)
	for i := range 5 {
		w := serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != http.StatusOK || w.Header().Get("Retry-After") != "" {
			t.Fatalf("plain request %d: got %d %v", i+1, w.Code, w.Header())
		}
	}
	if n := l.len(); n != 0 {
		t.Errorf("plain requests made %d table entries, want 0", n)
	}
}

func TestUpgradeRateLimitPerIP(t *testing.T) {
	_, _, h := testLimiter(1, 1, RateLimitOptions{})
	if !admitted(t, h, "198.51.100.1:1000") || !admitted(t, h, "198.51.100.2:1000") || !admitted(t, h, "[2001:db8::1]:1000") {
		t.Fatal("first request of a client refused")
	}
	if admitted(t, h, "198.51.100.1:2000") {
		t.Error("another port of the same IP got a bucket of its own")
	}
	r := upgradeFrom("198.51.100.2:1000")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if w := serve(h, r); w.Code != http.StatusTooManyRequests {
		t.Errorf("X-Forwarded-For escaped the limit by default: status %d", w.Code)
	}
}

func TestUpgradeRateLimitClientIPOption(t *testing.T) {
	fromHeader := func(r *http.Request) string { return r.Header.Get("X-Real-IP") }
	_, _, h := testLimiter(1, 1, RateLimitOptions{ClientIP: fromHeader})
	send := func(realIP string) int {
		r := upgradeFrom("10.0.0.1:5000") // the proxy
		r.Header.Set("X-Real-IP", realIP)
		return serve(h, r).Code
	}
	if send("203.0.113.1") == http.StatusTooManyRequests || send("203.0.113.2") == http.StatusTooManyRequests {
		t.Fatal("distinct clients behind the proxy share a bucket")
	}
	if send("203.0.113.1") != http.StatusTooManyRequests {
		t.Error("second request of a client behind the proxy not limited")
	}
}

func TestUpgradeRateLimitEvictsIdle(t *testing.T) {
	l, clock, h := testLimiter(1, 2, RateLimitOptions{}) // refills in 2 s
	admitted(t, h, "198.51.100.1:1")
	clock.Advance(time.Second)
	admitted(t, h, "198.51.100.2:1")
	if n := l.len(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	clock.Advance(1999 * time.Millisecond) // client 1 idle 2.999 s, client 2 1.999 s
	admitted(t, h, "198.51.100.3:1")
	if n := l.len(); n != 2 {
		t.Fatalf("%d entries, want 2: only client 1 had refilled", n)
	}
	clock.Advance(time.Hour)
	admitted(t, h, "198.51.100.4:1")
	if n := l.len(); n != 1 {
		t.Errorf("%d entries after an idle hour, want 1", n)
	}
}

func TestUpgradeRateLimitBoundedTable(t *testing.T) {
	l, _, h := testLimiter(0.001, 1, RateLimitOptions{MaxClients: 3})
	for _, ip := range []string{"a", "b", "c"} {
		if !admitted(t, h, ip) {
			t.Fatalf("first request of %s refused", ip)
		}
	}
	if !admitted(t, h, "d") { // forgets a, seen least recently
		t.Fatal("new client refused at the cap")
	}
	if n := l.len(); n != 3 {
		t.Fatalf("%d entries, want the cap of 3", n)
	}
	if admitted(t, h, "b") { // still tracked; now the most recent
		t.Error("b escaped its limit")
	}
	if !admitted(t, h, "a") { // forgotten, so a full bucket; forgets c
		t.Error("a, forgotten at the cap, was still limited")
	}
	if admitted(t, h, "b") || admitted(t, h, "d") {
		t.Error("a recently seen client was forgotten instead of the least recent")
	}
	if !admitted(t, h, "c") {
		t.Error("c, the least recent, was not the one forgotten")
	}
	if n := l.len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}

	l2, _, h2 := testLimiter(1, 1, RateLimitOptions{})
	for i := range DefaultMaxClients + 50 {
		serve(h2, upgradeFrom(fmt.Sprintf("10.%d.%d.%d:1", i>>16, i>>8&0xff, i&0xff)))
	}
	if n := l2.len(); n != DefaultMaxClients {
		t.Errorf("%d entries with the default cap, want %d", n, DefaultMaxClients)
	}
}

func TestUpgradeRateLimitConcurrent(t *testing.T) {
	l, _, h := testLimiter(1, 50, RateLimitOptions{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for g := range 8 {
		wg.Go(func() {
			for range 20 {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, upgradeFrom("198.51.100.9:1"))
				if w.Code != http.StatusTooManyRequests {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}
			// Other clients churn the table at the same time.
			serve(h, upgradeFrom(fmt.Sprintf("203.0.113.%d:1", g)))
		})
	}
	wg.Wait()
	if passed != 50 {
		t.Errorf("%d requests passed with a frozen clock, want the burst of 50", passed)
	}
	if n := l.len(); n != 9 {
		t.Errorf("%d entries, want 9", n)
	}
}

func TestUpgradeRateLimitHTTP2(t *testing.T) {
	_, _, h := testLimiter(1, 1, RateLimitOptions{})
	send := func() int {
		r := httptest.NewRequest(http.MethodConnect, "/ws", nil)
		r.ProtoMajor = 2
		r.Header.Set(":protocol", "websocket")
		return serve(h, r).Code
	}
	send()
	if code := send(); code != http.StatusTooManyRequests {
		t.Errorf("second extended CONNECT: status %d, want 429", code)
	}
}

func TestUpgradeRateLimitPanicsOnBadArguments(t *testing.T) {
	for _, tc := range []struct {
		perSecond float64
		burst     int
	}{
		{0, 1}, {-1, 1}, {math.NaN(), 1}, {math.Inf(1), 1}, {1, 0}, {1, -5},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("UpgradeRateLimit(%v, %d) did not panic", tc.perSecond, tc.burst)
				}
			}()
			UpgradeRateLimit(tc.perSecond, tc.burst)
		}()
	}
}

func TestUpgradeRateLimitTinyRate(t *testing.T) {
	_, _, h := testLimiter(1e-300, 1, RateLimitOptions{})
	admitted(t, h, "198.51.100.7:1")
	w := serve(h, upgradeFrom("198.51.100.7:1"))
	if got, want := w.Header().Get("Retry-After"), "9223372037"; w.Code != http.StatusTooManyRequests || got != want {
		t.Errorf("got %d Retry-After %q, want 429 %s (saturated)", w.Code, got, want)
	}
}

func TestRemoteIP(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7:1234":  "198.51.100.7",
		"[2001:db8::1]:443":  "2001:db8::1",
		"@":                  "@",
		"unix-socket-client": "unix-socket-client",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = in
		if got := remoteIP(r); got != want {
			t.Errorf("remoteIP(%q) = %q, want %q", in, got, want)
		}
	}
}

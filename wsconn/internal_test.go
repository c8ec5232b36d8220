package wsconn

import (
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/colibri-ws/colibri/internal/race"
)

func TestAppendAcceptRFCExample(t *testing.T) {
	// RFC 6455 §1.3.
	if got := string(appendAccept(nil, "dGhlIHNhbXBsZSBub25jZQ==")); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
}

// TestAppendHeaderCannotSplitTheResponse: the extra headers of a 101 come
// from application code (the upgrade decision, middleware); a value with
// line breaks must not add fields or end the response, a field with an
// invalid name is dropped, and the fields the handshake writes itself are
// not repeated.
func TestAppendHeaderCannotSplitTheResponse(t *testing.T) {
	h := http.Header{
		"X-Room":               {"lobby\r\nSet-Cookie: stolen=1"},
		"Bad Name":             {"x"},
		"Bad\r\nName":          {"x"},
		"Connection":           {"close"},
		"Sec-Websocket-Accept": {"forged"},
		"X-Two":                {"a", "b"},
	}
	got := string(appendHeader(nil, h))
	lines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
	want := map[string]bool{"X-Room: lobby  Set-Cookie: stolen=1": true, "X-Two: a": true, "X-Two: b": true}
	if len(lines) != len(want) {
		t.Fatalf("header block %q", got)
	}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("unexpected line %q in %q", l, got)
		}
	}
}

func TestSignal(t *testing.T) {
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	var waitFirst signal
	ch := waitFirst.wait()
	if closed(ch) || waitFirst.wait() != ch {
		t.Fatal("a signal not fired yet must give one open channel")
	}
	waitFirst.fire()
	waitFirst.fire()
	if !closed(ch) {
		t.Fatal("fire did not close the channel a waiter had")
	}
	var fireFirst signal
	fireFirst.fire()
	if !closed(fireFirst.wait()) {
		t.Fatal("waiting after fire must not block")
	}
}

// TestConnRecordFitsItsSizeClass: every idle connection holds one Conn, so
// its size is memory per connection. 896 bytes is a size class of the
// runtime's allocator, and an object over 512 bytes that holds pointers
// carries an 8-byte header in its slot, so the record must stay within
// 888 bytes; one field more moves it to the 1,024-byte class. The test
// checks the allocation itself too.
func TestConnRecordFitsItsSizeClass(t *testing.T) {
	const class, mallocHeader = 896, 8
	if n := unsafe.Sizeof(Conn{}); n+mallocHeader > class {
		t.Fatalf("Conn is %d bytes, with the allocator's header over the %d-byte size class: see docs/architecture.md", n, class)
	}
	if race.Enabled {
		return // the race detector pads allocations
	}
	const n = 1000
	conns := make([]*Conn, 0, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		conns = append(conns, &Conn{})
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > class {
		t.Fatalf("a Conn takes %d bytes of heap, over the %d-byte size class", per, class)
	}
	runtime.KeepAlive(conns)
}

// TestTokenExcludesAndWakes has goroutines take the token in turns, each
// waiting on given, and checks that no two ever hold it together and that
// nobody is left waiting.
func TestTokenExcludesAndWakes(t *testing.T) {
	var tok token
	var inside atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				for !tok.take() {
					<-tok.given()
				}
				if inside.Add(1) != 1 {
					t.Error("two holders at once")
				}
				inside.Add(-1)
				tok.give()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a waiter was never woken")
	}
	if !tok.take() {
		t.Fatal("token still held after every holder gave it back")
	}
}

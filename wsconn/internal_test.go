package wsconn

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
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
// its size is memory per connection; 896 bytes is a size class of the
// runtime's allocator, and one field more moves the record to 1,024.
func TestConnRecordFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 896 {
		t.Fatalf("Conn is %d bytes, over the 896-byte size class: see docs/architecture.md", n)
	}
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

package router_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/router"
)

// An outer router with ws routes and an Observer, an inner router (ws
// routes, no observer, or another one) served by it: the inner router
// must not silence the outer's Observer, which is told once. (What it is
// told is the outer's view, not the inner's outcome: see the closing
// note.)
func TestCornerNestedOtherObserverDoesNotSilenceTheOuter(t *testing.T) {
	for _, innerObserved := range []bool{false, true} {
		ch := make(gdrResults, 8)
		opts := []router.Option{router.WithConfig(quiet)}
		other := make(gdrResults, 8)
		if innerObserved {
			opts = append(opts, router.WithObserver(other))
		}
		inner := router.New(opts...)
		router.WS(inner, "/inner/ws", nil, echo[struct{}])
		outer := router.New(router.WithConfig(quiet), router.WithObserver(ch))
		router.WS(outer, "/ws", nil, echo[struct{}])
		outer.Handle("/inner/", inner)
		base := reviewCBServe(t, outer)

		if got := r7Upgrade(t, base, "/inner/ws"); !strings.HasPrefix(got, "HTTP/1.1 101") {
			t.Fatalf("client read %q, want 101", got)
		}
		if got := r7Drain(ch, 300*time.Millisecond); len(got) != 1 {
			t.Errorf("inner observed %v: the outer Observer got %d results, want 1: %+v", innerObserved, len(got), got)
		}
		if innerObserved {
			if got := r7Drain(other, 300*time.Millisecond); len(got) != 1 || !got[0].Accepted {
				t.Errorf("the inner Observer got %+v, want one accepted", got)
			}
		}
	}
}

// Inner router with no ws routes at all (hasWS false): it does not
// report, so the outer must: once, with the inner HTTP route's status.
func TestCornerNestedInnerWithoutWSOuterReportsOnce(t *testing.T) {
	ch := make(gdrResults, 8)
	inner := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	inner.HandleFunc("/inner/x", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "teapot", http.StatusTeapot)
	})
	outer := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(outer, "/ws", nil, echo[struct{}])
	outer.Handle("/inner/", http.StripPrefix("", inner))
	base := reviewCBServe(t, outer)

	if got := r7Upgrade(t, base, "/inner/x"); !strings.HasPrefix(got, "HTTP/1.1 418") {
		t.Fatalf("client read %q, want 418", got)
	}
	got := r7Drain(ch, 300*time.Millisecond)
	if len(got) != 1 || got[0].Accepted || got[0].Status != http.StatusTeapot {
		t.Fatalf("upgrade results %+v, want one refused 418", got)
	}
}

// Outer ws route on the mount's path declines (DontUpgrade), the outer
// mux hands the request to the inner router (behind StripPrefix and a
// middleware), whose ws route accepts: one report, accepted.
func TestCornerNestedOuterDeclinesInnerAcceptsReportedOnce(t *testing.T) {
	ch := make(gdrResults, 8)
	inner := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(inner, "/ws", nil, echo[struct{}])
	outer := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(outer, "/inner/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.DontUpgrade()
	}, echo[struct{}])
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
	}
	outer.Handle("/inner/", mw(http.StripPrefix("/inner", inner)))
	base := reviewCBServe(t, outer)

	got := r7Upgrade(t, base, "/inner/ws")
	res := r7Drain(ch, 300*time.Millisecond)
	if !strings.HasPrefix(got, "HTTP/1.1 101") {
		t.Fatalf("client read %q, want 101 (results %+v)", got, res)
	}
	if len(res) != 1 || !res[0].Accepted {
		t.Fatalf("%d upgrade results for one accepted upgrade: %+v", len(res), res)
	}
}

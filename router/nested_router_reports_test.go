package router_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// r7Drain collects the upgrade results that arrive within d.
func r7Drain(ch gdrResults, d time.Duration) []wsconn.UpgradeResult {
	var got []wsconn.UpgradeResult
	deadline := time.After(d)
	for {
		select {
		case u := <-ch:
			got = append(got, u)
		case <-deadline:
			return got
		}
	}
}

// A Router is an http.Handler and Handle takes any handler, so a router
// can serve another router's paths ("/inner/"). Both observed by the same
// Observer (WithObserver's doc: "usually the same one"), one upgrade
// request that the inner router's decision panics on is reported twice:
// by the inner router (its new panic report) and again by the outer one,
// whose own reported flag and pending know nothing of the inner report.
// colibri.upgrades counts 2 failed requests for 1.
func TestCornerNestedRouterPanicReportedOnce(t *testing.T) {
	ch := make(gdrResults, 8)
	inner := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(inner, "/inner/ws", func(*http.Request) (struct{}, router.Decision) {
		panic("inner decision")
	}, echo[struct{}])
	outer := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(outer, "/ws", nil, echo[struct{}])
	outer.Handle("/inner/", inner)
	base := reviewCBServe(t, outer)

	if got := r7Upgrade(t, base, "/inner/ws"); got != "" {
		t.Fatalf("client read %q, want the connection closed", got)
	}
	got := r7Drain(ch, 300*time.Millisecond)
	if len(got) != 1 {
		t.Fatalf("%d upgrade results for one request: %+v", len(got), got)
	}
}

// The same nesting without a panic: the inner router accepts and the
// client gets its 101; the request is counted once, as accepted.
func TestCornerNestedRouterUpgradeReportedOnce(t *testing.T) {
	ch := make(gdrResults, 8)
	inner := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(inner, "/inner/ws", nil, echo[struct{}])
	outer := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	router.WS(outer, "/ws", nil, echo[struct{}])
	outer.Handle("/inner/", inner)
	base := reviewCBServe(t, outer)

	if got := r7Upgrade(t, base, "/inner/ws"); !strings.HasPrefix(got, "HTTP/1.1 101") {
		t.Fatalf("client read %q, want 101", got)
	}
	got := r7Drain(ch, 300*time.Millisecond)
	if len(got) != 1 || !got[0].Accepted {
		t.Fatalf("%d upgrade results for one accepted request: %+v", len(got), got)
	}
}

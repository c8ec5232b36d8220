package router_test

import (
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/router"
)

// A middleware writes WriteHeader(1000), which net/http refuses with a
// panic; no Recover. The client gets no response (connection closed).
// The recorder called writes() before passing the code on, so wrote is
// set though nothing was accepted: the panic is reported with 200, a
// status nobody sent, where it used to be 500.
func TestCornerPanicOnRefusedCodeNotReportedAs200(t *testing.T) {
	ch := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	r.Use(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(1000) })
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := reviewCBServe(t, r)

	if got := r7Upgrade(t, base, "/ws"); got != "" {
		t.Fatalf("client read %q, want the connection closed", got)
	}
	u := r7Result(t, ch)
	if u.Err == nil || u.Status != http.StatusInternalServerError {
		t.Errorf("reported %+v, want failed with 500 (no status went out)", u)
	}
}

// A middleware sets 401 without flushing, then panics: net/http never
// sends the buffered header, the client sees the connection closed. The
// router reports 401 "as sent" because rec.wrote is set by WriteHeader
// alone.
func TestCornerPanicAfterUnflushedHeaderNotReportedAsSent(t *testing.T) {
	ch := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	r.Use(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			panic("before the flush")
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := reviewCBServe(t, r)

	if got := r7Upgrade(t, base, "/ws"); got != "" {
		t.Fatalf("client read %q, want the connection closed", got)
	}
	u := r7Result(t, ch)
	if u.Err == nil || u.Status != http.StatusInternalServerError {
		t.Errorf("reported %+v, want failed with 500 (nothing went out)", u)
	}
}

package router_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// r7Upgrade sends an upgrade request for path to the server at base on a
// new connection and returns the status line the client read ("" when the
// connection was closed without one).
func r7Upgrade(t *testing.T, base, path string) string {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// r7Result waits for the next upgrade result, and checks that no second
// one follows for the same request.
func r7Result(t *testing.T, ch gdrResults) wsconn.UpgradeResult {
	t.Helper()
	var u wsconn.UpgradeResult
	select {
	case u = <-ch:
	case <-time.After(2 * time.Second):
		t.Fatal("no upgrade result")
	}
	select {
	case v := <-ch:
		t.Errorf("a second upgrade result for one request: %+v (first %+v)", v, u)
	case <-time.After(50 * time.Millisecond):
	}
	return u
}

// Recover in the router's chain answers 500 to a handler whose
// WriteHeader(1000) net/http refused (the fix of middleware's recorder):
// the client gets 500. The router reports "the status the client
// received" (docs/observability.md, http.response.status_code), 500,
// not the code net/http refused: its own recorder records the code
// before passing it on, the way middleware's recorder did before 737403c.
func TestCornerRecoverInvalidCodeReportedAsSent(t *testing.T) {
	ch := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	r.Use(middleware.Recover(slog.New(slog.DiscardHandler)), func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(1000)
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := reviewCBServe(t, r)

	if got := r7Upgrade(t, base, "/ws"); !strings.HasPrefix(got, "HTTP/1.1 500") {
		t.Fatalf("client read %q, want Recover's 500", got)
	}
	u := r7Result(t, ch)
	if u.Status != http.StatusInternalServerError {
		t.Errorf("reported status %d, want 500, what the client received", u.Status)
	}
}

// A middleware that sent its 401 (flushed) and then panicked: the client
// read "401" on the wire before the connection was cut. The router now
// reports the panic as failed with 500, though http.response.status_code
// is documented as "the status the client received".
func TestCornerPanicAfterFlushedAnswerReportsWhatWasSent(t *testing.T) {
	ch := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			_ = http.NewResponseController(w).Flush()
			panic("after the answer")
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := reviewCBServe(t, r)

	if got := r7Upgrade(t, base, "/ws"); !strings.HasPrefix(got, "HTTP/1.1 401") {
		t.Fatalf("client read %q, want the flushed 401", got)
	}
	u := r7Result(t, ch)
	if u.Err == nil {
		t.Errorf("reported %+v, want failed (the response was cut)", u)
	}
	if u.Status != http.StatusUnauthorized {
		t.Errorf("reported status %d, want 401, the status the client received", u.Status)
	}
}

// A decision that panics with Recover in the chain: Recover answers 500,
// and the router reports it once, as a refusal with 500 (Recover
// recovered it: not "failed"), with no error.
func TestCornerPanicRecoveredInChainReportedOnceAsRefused(t *testing.T) {
	ch := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	r.Use(middleware.Recover(slog.New(slog.DiscardHandler)))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		panic("decision")
	}, echo[struct{}])
	base := reviewCBServe(t, r)

	if got := r7Upgrade(t, base, "/ws"); !strings.HasPrefix(got, "HTTP/1.1 500") {
		t.Fatalf("client read %q, want Recover's 500", got)
	}
	u := r7Result(t, ch)
	if u.Status != http.StatusInternalServerError || u.Accepted || u.Err != nil || u.Route != "/ws" {
		t.Errorf("reported %+v, want route /ws, 500, refused", u)
	}
}

// A middleware that panics after the route decided to upgrade (the place
// claimed, the decision's Upgrade header set): reported once, failed with
// 500; the place is given back, so that with MaxConnections-like limits
// nothing leaks (Connections returns to 0) and a later upgrade works.
func TestCornerPanicAfterDecisionReportedOnceAndPlaceReturned(t *testing.T) {
	ch := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(ch))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			if req.URL.Query().Has("boom") {
				panic("after the decision")
			}
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := reviewCBServe(t, r)

	if got := r7Upgrade(t, base, "/ws?boom"); got != "" {
		t.Fatalf("client read %q, want the connection closed", got)
	}
	u := r7Result(t, ch)
	if u.Status != http.StatusInternalServerError || u.Err == nil || u.Route != "/ws" {
		t.Errorf("reported %+v, want route /ws, 500, failed", u)
	}
	if n := r.Connections(); n != 0 {
		t.Errorf("Connections() = %d after the panic, want 0", n)
	}
	if got := r7Upgrade(t, base, "/ws"); !strings.HasPrefix(got, "HTTP/1.1 101") {
		t.Fatalf("later upgrade: %q", got)
	}
	if u := r7Result(t, ch); !u.Accepted || u.Status != http.StatusSwitchingProtocols {
		t.Errorf("later upgrade reported %+v", u)
	}
}

package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/colibri-ws/colibri/middleware"
)

// A 500 after a panic keeps what the middleware in front of Recover set
// and drops what the panicking handler set for the response it never
// finished: a gzip Content-Encoding on a plain-text 500 would not decode,
// and a cookie meant for a success must not ride on the failure.
func TestRecover500DropsPanickingHandlersHeaders(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Type", "application/json")
		h.Add("Set-Cookie", "session=granted")
		h.Set("Cache-Control", "max-age=3600")
		panic("half way")
	})
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", "https://app.example")
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(middleware.RequestID(outer(middleware.Recover(quiet)(inner))))
	defer srv.Close()

	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/items")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	for _, k := range []string{"Content-Encoding", "Set-Cookie", "Cache-Control"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			t.Errorf("500 carries the panicking handler's %s: %q", k, v)
		}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q, want plain text", ct)
	}
	if resp.Header.Get(middleware.RequestIDHeader) == "" {
		t.Error("500 lost the request id set in front of Recover")
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("500 lost a field set in front of Recover: %q", got)
	}
	if string(body) != "Internal Server Error\n" {
		t.Errorf("body %q", body)
	}
}

// With RequestID inside Recover, the id it set belongs to the fields the
// 500 drops, but the 500 still carries it, so that a client can match the
// answer to Recover's log line.
func TestRecover500KeepsTheRequestIDSetInside(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(middleware.Recover(quiet)(middleware.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "a=b")
		panic("inside")
	}))))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set(middleware.RequestIDHeader, "client-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get(middleware.RequestIDHeader); got != "client-7" {
		t.Errorf("request id %q, want client-7", got)
	}
	if v := resp.Header.Values("Set-Cookie"); len(v) > 0 {
		t.Errorf("Set-Cookie %q", v)
	}
}

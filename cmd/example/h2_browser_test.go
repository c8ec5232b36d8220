package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/internal/testlog"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
)

// streamLog records how each request reached the server and, for the
// WebSocket streams, whether their ServeHTTP call is still running: over
// HTTP/2 it lasts as long as the socket.
type streamLog struct {
	mu      sync.Mutex
	seen    []string
	remotes map[string]bool
	running map[string]bool
}

func (l *streamLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := fmt.Sprintf("%s %s :protocol=%s %s", r.Proto, r.Method, r.Header.Get(":protocol"), r.URL.Path)
		l.mu.Lock()
		l.seen = append(l.seen, key)
		l.remotes[r.RemoteAddr] = true
		l.running[key] = true
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.running[key] = false
			l.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

func (l *streamLog) snapshot() (seen []string, remotes int, running map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen), len(l.remotes), maps.Clone(l.running)
}

// TestBrowserOverHTTP2 serves the example with TLS and HTTP/2 and drives
// headless Chromium through it: the page, its chat socket and an echo
// socket all travel on one HTTP/2 connection, the server sees each socket
// arrive as an extended CONNECT stream (RFC 8441), permessage-deflate is
// negotiated on it, and closing one socket leaves the chat running.
func TestBrowserOverHTTP2(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := chromium(t)
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := newServer(options{Token: "t0ken", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cert, _ := h2test.Certificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	streams := &streamLog{remotes: map[string]bool{}, running: map[string]bool{}}
	a := app.New(streams.wrap(srv.Router), app.Config{
		HTTP2:     true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		NoSignals: true,
		Logger:    logger,
	})
	runCtx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(runCtx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "https://" + ln.Addr().String()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	if err := chromedp.Do(tab,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#join")),
		chromedp.SetValue(chromedp.CSS("#room"), "lobby"),
		chromedp.SetValue(chromedp.CSS("#username"), "ada"),
		chromedp.Click(chromedp.CSS(`#join button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#chat")),
	); err != nil {
		t.Fatalf("joining: %v", err)
	}
	waitMembers(t, srv, "lobby", 1)
	proto, err := chromedp.Run(tab, chromedp.Evaluate[string](`performance.getEntriesByType("navigation")[0].nextHopProtocol`))
	if err != nil || proto != "h2" {
		t.Fatalf("page loaded over %q (%v), want h2", proto, err)
	}

	// A second socket from the same page: 1 MiB of emoji through the echo
	// route, compressed, then closed by the page with 1000.
	roundTrip := `new Promise((resolve) => {
		const ws = new WebSocket("wss://" + location.host + "/ws/echo");
		const big = "🐦".repeat(262144);
		ws.onopen = () => ws.send(big);
		ws.onmessage = (ev) => { ws.onclose = () => resolve((ev.data === big ? "ok " : "mismatch ") + ws.extensions); ws.close(1000, "done"); };
		ws.onerror = () => resolve("error");
	})`
	echoed, err := chromedp.Run(tab, chromedp.Evaluate[string](roundTrip, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(echoed, "ok permessage-deflate") {
		t.Fatalf("1 MiB echo over HTTP/2: %q", echoed)
	}

	// The chat socket outlived the echo socket's close.
	if err := chromedp.Do(tab,
		chromedp.SetValue(chromedp.CSS("#text"), "still here 🐦"),
		chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[string](`[...document.querySelectorAll("#messages li")].map(li => li.textContent).find(s => s.includes("still here"))`)); err != nil {
		t.Fatalf("chat after the echo socket closed: %v", err)
	}

	const chat, echo = "HTTP/2.0 CONNECT :protocol=websocket /ws/chat/lobby", "HTTP/2.0 CONNECT :protocol=websocket /ws/echo"
	seen, remotes, running := streams.snapshot()
	for _, want := range []string{chat, echo, "HTTP/2.0 GET :protocol= /"} {
		if !slices.Contains(seen, want) {
			t.Errorf("server never saw %q; requests: %q", want, seen)
		}
	}
	if remotes != 1 {
		t.Errorf("requests came over %d connections, want the page's one; requests: %q", remotes, seen)
	}
	if !running[chat] || running[echo] {
		t.Errorf("streams running: chat %v echo %v, want the chat's only", running[chat], running[echo])
	}
	if !strings.Contains(logs.String(), `msg="peer closed" route=/ws/echo`) {
		t.Errorf("no closing handshake from the echo socket; logs:\n%s", logs.String())
	}
}

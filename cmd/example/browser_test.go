package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/colibri-ws/colibri/internal/testenv"
)

// browserEnv makes the browser test mandatory (CI sets it).
const browserEnv = "COLIBRI_BROWSER_TEST"

// chromium finds Debian's Chromium, or skips (or fails, where the browser
// test is required) with the package to install.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip(testenv.Missing(t, browserEnv, "browser: no Chromium found; install it with `apt-get install chromium`"))
	return ""
}

// TestBrowserChat drives two headless Chromium tabs through the example's
// page: they join one room, one speaks and the other hears it; a message
// with emoji and a 1 MiB message make the round trip through /ws/echo; and
// closing a tab reaches the server as a closing handshake.
func TestBrowserChat(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := chromium(t)
	base, srv, logs := startExample(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tabA, cancelA := chromedp.NewContext(allocCtx)
	defer cancelA()
	join := func(tab context.Context, name string) {
		t.Helper()
		err := chromedp.Do(tab,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS("#join")),
			chromedp.SetValue(chromedp.CSS("#room"), "lobby"),
			chromedp.SetValue(chromedp.CSS("#username"), name),
			chromedp.Click(chromedp.CSS(`#join button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#chat")),
		)
		if err != nil {
			t.Fatalf("%s joining: %v", name, err)
		}
	}
	join(tabA, "ada")
	tabB, cancelB := chromedp.NewContext(tabA)
	defer cancelB()
	join(tabB, "grace")
	waitMembers(t, srv, "lobby", 2)

	text := "hello from Chromium 🐦✨ ünïcödé"
	if err := chromedp.Do(tabA,
		chromedp.SetValue(chromedp.CSS("#text"), text),
		chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	heard, err := chromedp.Run(tabB, chromedp.Poll[string](`[...document.querySelectorAll("#messages li")].map(li => li.textContent).find(s => s.includes("hello from Chromium"))`))
	if err != nil {
		t.Fatalf("grace never saw ada's message: %v", err)
	}
	if !strings.Contains(heard, "ada") || !strings.Contains(heard, text) {
		t.Fatalf("grace saw %q", heard)
	}

	// 1 MiB with emoji through the echo route, from the browser's own
	// WebSocket.
	roundTrip := `new Promise((resolve) => {
		const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws/echo");
		const big = "🐦".repeat(262144); // 4 bytes each in UTF-8: 1 MiB
		ws.onopen = () => ws.send(big);
		ws.onmessage = (ev) => { resolve(ev.data === big ? "ok " + ev.data.length + " " + ws.extensions : "mismatch"); ws.close(1000); };
		ws.onerror = () => resolve("error");
	})`
	echoed, err := chromedp.Run(tabA, chromedp.Evaluate[string](roundTrip, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	// JS length counts UTF-16 units (2 per bird); Chromium's
	// permessage-deflate offer was accepted.
	if !strings.HasPrefix(echoed, "ok 524288 permessage-deflate") {
		t.Fatalf("1 MiB echo from the browser: %q", echoed)
	}

	// Closing grace's tab: the server sees the peer's CLOSE. (The echo
	// socket above closed with 1000; a closing tab says 1001 Going Away.)
	cancelB()
	waitMembers(t, srv, "lobby", 1)
	deadline := time.Now().Add(10 * time.Second)
	tabClosed := regexp.MustCompile(`msg="peer closed" route=/ws/chat/\{room\} .*code=1001`)
	for !tabClosed.MatchString(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no closing handshake from the closed tab; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := chromedp.Run(tabA, chromedp.Poll[string](`[...document.querySelectorAll("#messages li")].map(li => li.textContent).find(s => s.includes("grace left"))`)); err != nil {
		t.Fatalf("ada never saw grace leave: %v", err)
	}
}

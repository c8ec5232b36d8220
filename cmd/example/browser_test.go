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

// noChromium is what a run without Chromium says.
const noChromium = "browser tests: no chromium, chromium-browser or google-chrome on PATH; " +
	"install Chromium (Debian and Ubuntu: `sudo apt-get install chromium`) and run the tests again"

// chromium finds Debian's Chromium, or skips (or fails, where the browser
// test is required) with the package to install.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip(testenv.Missing(t, browserEnv, noChromium))
	return ""
}

// TestBrowserChat drives two headless Chromium tabs through the example's
// page: they join one room, and the join form hides; one speaks and the
// other hears it; a message with emoji and a 1 MiB message make the round
// trip through /ws/echo; closing a tab reaches the server as a closing
// handshake; and a third tab that submits Join twice, and again once
// joined, opens one socket only, which Leave closes.
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
		assertJoinFormHidden(t, tab, name)
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

	// Joining twice: both submits come before the first socket opens, a
	// third once it is open (the form is hidden, but a script can still
	// submit it). One upgrade request reaches the server, and Leave
	// leaves nobody behind.
	tabC, cancelC := chromedp.NewContext(tabA)
	defer cancelC()
	if err := chromedp.Do(tabC,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#join")),
		chromedp.SetValue(chromedp.CSS("#room"), "twice"),
		chromedp.SetValue(chromedp.CSS("#username"), "eve"),
	); err != nil {
		t.Fatal(err)
	}
	submitTwice := `(() => { const f = document.getElementById("join"); f.requestSubmit(); f.requestSubmit(); return true; })()`
	if _, err := chromedp.Run(tabC, chromedp.Evaluate[bool](submitTwice)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tabC, chromedp.WaitVisible(chromedp.CSS("#chat"))); err != nil {
		t.Fatal(err)
	}
	assertJoinFormHidden(t, tabC, "eve")
	if _, err := chromedp.Run(tabC, chromedp.Evaluate[bool](`document.getElementById("join").requestSubmit() ?? true`)); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, srv, "twice", 1)
	time.Sleep(300 * time.Millisecond) // time for a second socket's request to arrive, were there one
	upgrades := regexp.MustCompile(`msg=request .*path=/ws/chat/twice .*upgrade=accepted`)
	if n := len(upgrades.FindAllString(logs.String(), -1)); n != 1 {
		t.Fatalf("joining twice made %d upgrades to /ws/chat/twice, want 1; logs:\n%s", n, logs.String())
	}
	if err := chromedp.Do(tabC, chromedp.Click(chromedp.CSS("#leave")), chromedp.WaitVisible(chromedp.CSS("#join"))); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, srv, "twice", 0)
}

// assertJoinFormHidden checks that the join form takes no room on tab's
// page once its socket is open: the hidden attribute must win over the
// stylesheet's display rule for forms.
func assertJoinFormHidden(t *testing.T, tab context.Context, name string) {
	t.Helper()
	display, err := chromedp.Run(tab, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("join")).display`))
	if err != nil {
		t.Fatal(err)
	}
	if display != "none" {
		t.Fatalf("%s joined, but the join form is still shown (display: %s)", name, display)
	}
}

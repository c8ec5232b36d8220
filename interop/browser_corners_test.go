package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// ixBrowser returns the package's Chromium with testdata/corners/browser.js
// loaded in its page (skipping where Chromium is not installed).
func ixBrowser(t *testing.T) *chromium {
	t.Helper()
	d := chromiumStack().use(t)(t).(*pageDriver)
	js, err := os.ReadFile(testdata("corners", "browser.js"))
	if err != nil {
		t.Fatal(err)
	}
	ixEval[string](t, d.b.tab, string(js))
	return d.b
}

// ixEval evaluates js in tab, awaiting a promise, and returns its value.
func ixEval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return out
}

// ixCall calls ix.fn(args...) in the page and decodes its JSON answer.
func ixCall(t *testing.T, b *chromium, v any, fn string, args ...any) {
	t.Helper()
	var js []string
	for _, a := range args {
		j, _ := json.Marshal(a)
		js = append(js, string(j))
	}
	out := ixEval[string](t, b.tab, fmt.Sprintf("ix.%s(%s)", fn, strings.Join(js, ", ")))
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("ix.%s answered %q: %v", fn, out, err)
	}
}

type ixCloseEvent struct {
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	WasClean bool   `json:"wasClean"`
}

type ixItem struct {
	Kind string `json:"kind"`
	Size int    `json:"size"`
	Seed int    `json:"seed,omitempty"`
}

// TestInteropCornerBrowserDeflateMixed has Chromium (which compresses with a 32 KiB
// window and, where colibri allows it, context takeover) send a pipelined
// mix of compressible, incompressible (growing when compressed), empty,
// repeated and 4-byte-UTF-8 messages, and checks each echo byte for byte:
// through WriteMessage and through a Writer, fragmented small, with and
// without takeover, and uncompressed with fragments cut inside characters.
func TestInteropCornerBrowserDeflateMixed(t *testing.T) {
	b := ixBrowser(t)
	deflate := func(takeover bool) wsconn.Compression {
		return wsconn.Compression{Enabled: true, ContextTakeover: takeover}
	}
	routes := []ixRoute{
		{path: "/takeover", cfg: wsconn.Config{MaxMessageSize: 8 << 20, FragmentSize: 1000, Compression: deflate(true)}, handler: ixEcho},
		{path: "/reset", cfg: wsconn.Config{MaxMessageSize: 8 << 20, FragmentSize: 1000, Compression: deflate(false)}, handler: ixEcho},
		{path: "/takeover-stream", cfg: wsconn.Config{MaxMessageSize: 8 << 20, FragmentSize: 777, Compression: deflate(true)}, handler: ixStream(3001)},
		{path: "/reset-stream", cfg: wsconn.Config{MaxMessageSize: 8 << 20, Compression: deflate(false)}, handler: ixStream(70000)},
		{path: "/takeover-big", cfg: wsconn.Config{MaxMessageSize: 8 << 20, Compression: deflate(true)}, handler: ixEcho},
		{path: "/plain-frag", cfg: wsconn.Config{MaxMessageSize: 8 << 20, FragmentSize: 1001}, handler: ixEcho},
		{path: "/plain-stream", cfg: wsconn.Config{MaxMessageSize: 8 << 20, FragmentSize: 5}, handler: ixStream(3)},
	}
	a := startIxApp(t, routes, nil)
	plan := []ixItem{
		{"text", 0, 0}, {"rand", 10, 1}, {"text", 300, 0}, {"rand", 5000, 2}, {"rand", 5000, 2},
		{"randtext", 70000, 3}, {"emoji", 4001, 0}, {"bin", 200000, 0}, {"rand", 40000, 4},
		{"text", 1 << 20, 0}, {"rand", 100, 5}, {"rand", 100, 5}, {"randtext", 255, 6},
		{"randtext", 257, 7}, {"rand", 300000, 8}, {"emoji", 3, 0}, {"rand", 0, 0}, {"randtext", 33000, 9},
		{"randtext", 33000, 9}, {"text", 19, 0},
	}
	for _, rt := range routes {
		t.Run(strings.TrimPrefix(rt.path, "/"), func(t *testing.T) {
			p := plan
			if rt.path == "/plain-stream" {
				p = plan[:8] // 3-byte writes in 5-byte frames: keep it short
			}
			if rt.path == "/takeover-big" {
				p = []ixItem{{"rand", 4 << 20, 11}, {"text", 4 << 20, 0}, {"rand", 4 << 20, 11}}
			}
			id := fmt.Sprint("ix-mixed-", ids.Add(1))
			var got struct {
				Extensions string       `json:"extensions"`
				Received   int          `json:"received"`
				Bad        []string     `json:"bad"`
				Close      ixCloseEvent `json:"close"`
				Error      string       `json:"error"`
			}
			ixCall(t, b, &got, "echo", a.url(rt.path, id), p, 15000)
			if got.Error != "" || len(got.Bad) > 0 {
				t.Errorf("chromium (%q): %s %v, close %+v", got.Extensions, got.Error, got.Bad, got.Close)
			}
			if got.Close != (ixCloseEvent{Code: 1000, WasClean: true}) {
				t.Errorf("chromium's close event: %+v, want 1000 clean", got.Close)
			}
			info := a.closed(t, id)
			if err := a.inErr(t, id); err != nil || info.Code != frames.CloseNormal || info.By != wsconn.SidePeer {
				t.Errorf("colibri saw %d %q by %v, in.Err %v; logs:\n%s", info.Code, info.Reason, info.By, err, a.logs)
			}
			if info.MessagesIn != int64(len(p)) || info.MessagesOut != int64(len(p)) {
				t.Errorf("colibri counted %d messages in and %d out, want %d", info.MessagesIn, info.MessagesOut, len(p))
			}
		})
	}
}

// TestInteropCornerBrowserServerCloses checks the CloseEvent Chromium reports, and
// colibri's CloseInfo and in.Err(), for each way colibri closes.
func TestInteropCornerBrowserServerCloses(t *testing.T) {
	b := ixBrowser(t)
	routes := []ixRoute{
		{path: "/close", handler: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *ixSession) error {
			return closeOnRequest(ctx, in, out, nil)
		}},
		{path: "/nil", handler: ixReturn(nil)},
		{path: "/fail", handler: ixReturn(errIxFailed)},
		{path: "/limit", cfg: wsconn.Config{MaxMessageSize: smallLimit}, handler: ixEcho},
		{path: "/limit-deflate", cfg: wsconn.Config{MaxMessageSize: smallLimit, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}, handler: ixEcho},
		{path: "/idle", cfg: wsconn.Config{IdleTimeout: 300 * time.Millisecond}, handler: ixGreet},
	}
	a := startIxApp(t, routes, nil)
	reason123 := strings.Repeat("é", 59) + "🐦x"
	if len(reason123) != 123 {
		t.Fatalf("reason of %d bytes", len(reason123))
	}
	long := strings.Repeat("é", 62) // 124 bytes, cut to 61 characters
	type tc struct {
		name, path, text string
		item             *ixItem
		code             frames.CloseCode
		reason           string
		inErr            func(error) bool
	}
	isClose := func(code frames.CloseCode) func(error) bool {
		return func(err error) bool { return wsconn.CloseStatus(err) == code }
	}
	for _, c := range []tc{
		{name: "CloseError 4000, 123 bytes", path: "/close", text: "4000 " + reason123, code: 4000, reason: reason123, inErr: func(err error) bool { return err == nil }},
		{name: "CloseError 4999, 124 bytes cut", path: "/close", text: "4999 " + long, code: 4999, reason: long[:122], inErr: func(err error) bool { return err == nil }},
		{name: "return nil", path: "/nil", text: "x", code: 1000, inErr: func(err error) bool { return err == nil }},
		{name: "return error", path: "/fail", text: "x", code: 1011, reason: "internal error", inErr: func(err error) bool { return err == nil }},
		{name: "1009 just over", path: "/limit", item: &ixItem{"bin", smallLimit + 1, 0}, code: 1009, reason: "message too large", inErr: func(err error) bool { return errors.Is(err, messages.ErrTooLarge) && wsconn.CloseStatus(err) == 1009 }},
		{name: "1009 16 MiB", path: "/limit", item: &ixItem{"bin", 16 << 20, 0}, code: 1009, reason: "message too large", inErr: func(err error) bool { return errors.Is(err, messages.ErrTooLarge) && wsconn.CloseStatus(err) == 1009 }},
		{name: "1009 inflated", path: "/limit-deflate", item: &ixItem{"text", 4 << 20, 0}, code: 1009, reason: "message too large", inErr: func(err error) bool { return errors.Is(err, messages.ErrTooLarge) && wsconn.CloseStatus(err) == 1009 }},
		{name: "1009 random 4 MiB compressed", path: "/limit-deflate", item: &ixItem{"rand", 4 << 20, 3}, code: 1009, reason: "message too large", inErr: func(err error) bool { return errors.Is(err, messages.ErrTooLarge) && wsconn.CloseStatus(err) == 1009 }},
		{name: "idle 1001", path: "/idle", code: 1001, reason: "idle timeout", inErr: func(err error) bool { return errors.Is(err, wsconn.ErrIdleTimeout) && isClose(1001)(err) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprint("ix-close-", ids.Add(1))
			var got struct {
				Close ixCloseEvent `json:"close"`
			}
			if c.item != nil {
				ixCall(t, b, &got, "sendThenClose", a.url(c.path, id), c.item, 10000)
			} else {
				ixCall(t, b, &got, "closed", a.url(c.path, id), c.text, 10000)
			}
			want := ixCloseEvent{Code: int(c.code), Reason: c.reason, WasClean: true}
			if c.item != nil && c.item.Size == 16<<20 {
				// colibri discards at most 1 MiB of what follows a
				// violation (docs/closing.md), then closes with the rest
				// of the 16 MiB unread: a reset, which Chromium may see
				// after the CLOSE (wasClean false).
				got.Close.WasClean = true
			}
			if got.Close != want {
				t.Errorf("chromium's close event %+v, want %+v", got.Close, want)
			}
			info := a.closed(t, id)
			err := a.inErr(t, id)
			if info.Code != c.code || info.Reason != c.reason || info.By != wsconn.SideLocal || !c.inErr(err) {
				t.Errorf("colibri saw %d %q by %v, in.Err %v; logs:\n%s", info.Code, info.Reason, info.By, err, a.logs)
			}
		})
	}
}

// TestInteropCornerBrowserShutdown1012 shuts an app with ShutdownCode 1012 down under
// two Chromium connections.
func TestInteropCornerBrowserShutdown1012(t *testing.T) {
	b := ixBrowser(t)
	a := startIxApp(t, []ixRoute{{path: "/greet", handler: ixGreet}}, func(c *app.Config) { c.ShutdownCode = frames.CloseServiceRestart })
	id := fmt.Sprint("ix-shutdown-", ids.Add(1))
	ixEval[string](t, b.tab, fmt.Sprintf("globalThis.ixLastMsgs = []; globalThis.ixShutdown = ix.closed(%q, '', 10000); 'ok'", a.url("/greet", id)))
	deadline := time.Now().Add(5 * time.Second)
	for ixEval[int](t, b.tab, "globalThis.ixLastMsgs.length") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no greeting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.shutdown(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Close ixCloseEvent `json:"close"`
		Msgs  []string     `json:"msgs"`
	}
	out := ixEval[string](t, b.tab, "globalThis.ixShutdown")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := ixCloseEvent{Code: 1012, Reason: "server shutting down", WasClean: true}
	if got.Close != want || len(got.Msgs) != 1 {
		t.Errorf("chromium: %+v after %q, want %+v", got.Close, got.Msgs, want)
	}
	info := a.closed(t, id)
	err := a.inErr(t, id)
	if info.Code != 1012 || info.Reason != "server shutting down" || info.By != wsconn.SideLocal || !errors.Is(err, wsconn.ErrShutdown) {
		t.Errorf("colibri saw %d %q by %v, in.Err %v", info.Code, info.Reason, info.By, err)
	}
}

// TestInteropCornerBrowserClientCloses checks what colibri reports for each way the
// browser ends a connection, and what the browser reports back.
func TestInteropCornerBrowserClientCloses(t *testing.T) {
	b := ixBrowser(t)
	a := startIxApp(t, []ixRoute{{path: "/greet", handler: ixGreet}}, nil)
	reason := strings.Repeat("ü", 59) + "🐦x" // 123 bytes
	for _, c := range []struct {
		name   string
		code   int
		reason string
		want   frames.CloseCode
		inErr  func(error) bool
	}{
		{"close()", 0, "", frames.CloseNoStatus, func(err error) bool { return err == nil }},
		{"close(1000)", 1000, "", frames.CloseNormal, func(err error) bool { return err == nil }},
		{"close(4001, 123 bytes)", 4001, reason, 4001, func(err error) bool { return wsconn.CloseStatus(err) == 4001 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprint("ix-bclose-", ids.Add(1))
			var got struct {
				Close ixCloseEvent `json:"close"`
			}
			ixCall(t, b, &got, "closeWith", a.url("/greet", id), c.code, c.reason, 10000)
			if want := (ixCloseEvent{Code: int(c.want), Reason: c.reason, WasClean: true}); got.Close != want {
				t.Errorf("chromium's close event %+v, want %+v", got.Close, want)
			}
			info := a.closed(t, id)
			err := a.inErr(t, id)
			if info.Code != c.want || info.Reason != c.reason || info.By != wsconn.SidePeer || !c.inErr(err) {
				t.Errorf("colibri saw %d %q by %v, in.Err %v", info.Code, info.Reason, info.By, err)
			}
		})
	}
	t.Run("page goes away", func(t *testing.T) {
		id := fmt.Sprint("ix-bclose-", ids.Add(1))
		var got struct{ Opened bool }
		ixCall(t, b, &got, "frameGone", a.url("/greet", id), 10000)
		if !got.Opened {
			t.Fatal("the frame's WebSocket did not open")
		}
		info := a.closed(t, id)
		err := a.inErr(t, id)
		if info.Code != frames.CloseGoingAway || info.By != wsconn.SidePeer || err != nil {
			t.Errorf("colibri saw %d %q by %v, in.Err %v", info.Code, info.Reason, info.By, err)
		}
	})
	t.Run("tab crashes", func(t *testing.T) {
		id := fmt.Sprint("ix-bclose-", ids.Add(1))
		tab, cancel := chromedp.NewContext(b.tab)
		defer cancel()
		ctx, cancelT := context.WithTimeout(tab, 20*time.Second)
		defer cancelT()
		js := fmt.Sprintf("new Promise(r => { const ws = new WebSocket(%q); globalThis.keep = ws; ws.onmessage = () => r('open'); })", a.url("/greet", id))
		if err := chromedp.Do(ctx, chromedp.Navigate(b.page.URL+"/")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatal(err)
		}
		crash, cancelC := context.WithTimeout(tab, time.Second)
		defer cancelC()
		_, _ = chromedp.Run(crash, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
			return cdp.Call(ctx, tg, page.Crash, cdp.Empty{})
		})
		info := a.closed(t, id)
		err := a.inErr(t, id)
		// Chromium's network process outlives the renderer and closes
		// the socket with 1001, as for a page going away.
		if info.Code != frames.CloseGoingAway || info.By != wsconn.SidePeer || err != nil {
			t.Errorf("colibri saw %d %q by %v, in.Err %v, want 1001 by the peer", info.Code, info.Reason, info.By, err)
		}
	})
}

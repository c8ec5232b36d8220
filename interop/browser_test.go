package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
)

// Headless Chromium runs once for the package: a page from a loopback
// server loads testdata/browser/driver.js, and each connection is a
// Driver in that page, called through the DevTools protocol.

var chromiumStack = sync.OnceValue(func() *stack {
	s := &stack{name: "chromium",
		offer: func(want *deflateOffer) *deflateOffer {
			// A browser always offers permessage-deflate with
			// client_max_window_bits, and nothing else.
			return &deflateOffer{ClientMaxWindowBits: -1}
		},
	}
	var exe string
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		s.version = "no Chromium found; install it with `apt-get install chromium`"
		return s
	}
	out, _ := exec.Command(exe, "--version").Output()
	s.version = strings.TrimSpace(string(out))
	s.open = func(t *testing.T) driver {
		b, err := browser.get(exe)
		if err != nil {
			t.Fatal(err)
		}
		return &pageDriver{b: b, id: b.ids.Add(1)}
	}
	return s
})

// browser is the package's one headless Chromium.
var browser browserOnce

type browserOnce struct {
	mu  sync.Mutex
	b   *chromium
	err error
}

type chromium struct {
	page   *httptest.Server
	tab    context.Context
	cancel func()
	ids    atomic.Int64
}

func (o *browserOnce) get(exe string) (*chromium, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.b != nil || o.err != nil {
		return o.b, o.err
	}
	o.b, o.err = startChromium(exe)
	return o.b, o.err
}

// close ends the browser, if it started; TestMain calls it.
func (o *browserOnce) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.b != nil {
		o.b.cancel()
		o.b.page.Close()
		o.b = nil
	}
}

func startChromium(exe string) (*chromium, error) {
	js, err := os.ReadFile(testdata("browser", "driver.js"))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /driver.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(js)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>colibri interop</title><script src="/driver.js"></script>`))
	})
	page := httptest.NewServer(mux)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	dir, err := os.MkdirTemp("", "colibri-interop-chromium-")
	if err != nil {
		page.Close()
		return nil, err
	}
	opts = append(opts, chromedp.UserDataDir(dir))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	b := &chromium{page: page, tab: tab, cancel: func() {
		cancelTab()
		cancelAlloc()
		_ = os.RemoveAll(dir)
	}}
	if err := chromedp.Do(tab, chromedp.Navigate(page.URL+"/"), chromedp.WaitReady("body")); err != nil {
		b.cancel()
		page.Close()
		return nil, fmt.Errorf("chromium: opening the driver page: %w", err)
	}
	return b, nil
}

// pageDriver is one connection of the page's drivers.
type pageDriver struct {
	b  *chromium
	id int64
}

func (d *pageDriver) do(c command) (result, error) {
	arg, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(d.b.tab, commandTimeout)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("drive(%d, %s)", d.id, arg), chromedp.EvalAwaitPromise))
	if err != nil {
		return result{}, fmt.Errorf("chromium: %s: %w", c.Op, err)
	}
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return result{}, fmt.Errorf("chromium answered %s with %q: %v", c.Op, out, err)
	}
	return r, nil
}

func (d *pageDriver) stop() {
	ctx, cancel := context.WithTimeout(d.b.tab, commandTimeout)
	defer cancel()
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("drive(%d, {op: 'exit'})", d.id), chromedp.EvalAwaitPromise))
}

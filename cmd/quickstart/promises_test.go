package main

// Promises of README.md's Quickstart and docs/getting-started.md, checked
// on the programs themselves: each is built from its source (the README's
// is this directory's main.go, which readme_test.go keeps equal to the
// README; getting-started.md's first ```go block is read from the page),
// with only its listen address moved to a free port, and run as a process
// that gets real signals.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// qspBuild builds src, a main package importing colibri, as a program of
// a module of its own that requires this repository (as a reader's module
// would after `go get`), and returns the binary's path.
func qspBuild(t *testing.T, src string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a program with the go command; skipped in -short mode")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := fmt.Sprintf("module example.com/hello\n\ngo 1.26\n\nrequire github.com/colibri-ws/colibri v0.0.0\n\nreplace github.com/colibri-ws/colibri => %s\n", root)
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(src)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "hello")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-mod=mod", "-o", bin, ".")
	cmd.Dir = dir
	// The module cache has what the repository builds with; no network.
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the documented program: %v\n%s", err, out)
	}
	return bin
}

// qspProc is a running program and the lines of its standard error.
type qspProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every new line
	done  chan struct{} // closed when stderr ends
	exit  chan error
}

func qspStart(t *testing.T, bin string) *qspProc {
	t.Helper()
	p := &qspProc{cmd: exec.Command(bin), more: make(chan struct{}), done: make(chan struct{}), exit: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		<-p.done
		p.exit <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitLine returns the first line matching re, waiting for it.
func (p *qspProc) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	guard := time.After(30 * time.Second)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if i == n {
				t.Fatalf("the program ended without a line matching %s; stderr:\n%s", re, p.stderr())
			}
		case <-guard:
			t.Fatalf("no line matching %s; stderr:\n%s", re, p.stderr())
		}
	}
}

func (p *qspProc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// stop sends sig and returns the program's exit error.
func (p *qspProc) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exit:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the program did not stop on %v; stderr:\n%s", sig, p.stderr())
		return nil
	}
}

// qspListening matches the log package's default line format, as
// slog.Default() writes it.
var qspListening = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO listening addr=(127\.0\.0\.1:\d+)$`)

// qspGoBlock returns the first ```go block of a Markdown file.
func qspGoBlock(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "\n```go\n")
	if !ok {
		t.Fatalf("%s has no ```go block", path)
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatalf("%s: the ```go block does not end", path)
	}
	return block + "\n"
}

// qspMoveAddr replaces the program's one listen address.
func qspMoveAddr(t *testing.T, src, from, to string) string {
	t.Helper()
	if n := strings.Count(src, from); n != 1 {
		t.Fatalf("the program names %s %d times, want once", from, n)
	}
	return strings.Replace(src, from, to, 1)
}

func qspGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func qspDial(t *testing.T, url string, h http.Header) (*gorilla.Conn, *http.Response, error) {
	t.Helper()
	d := gorilla.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard
	}
	return c, resp, err
}

// qspCloseCode reads until the connection closes and returns the close
// frame's code and reason.
func qspCloseCode(t *testing.T, c *gorilla.Conn) (int, string) {
	t.Helper()
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *gorilla.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Text
			}
			t.Fatalf("ended without a CLOSE: %v", err)
		}
	}
}

// getting-started.md: the first app compiles as given (in a module that
// requires colibri), logs where it listens in the documented format,
// answers /healthz with ok and a plain request to the WebSocket route with
// the documented 426; a same-host page's socket echoes and its close 1000
// is echoed, while other origins get 403; in.Messages(0) takes messages up
// to 1 MiB; Ctrl-C sends "1001 server shutting down" and the log counts
// the WebSocket closed gracefully.
func TestPromiseGettingStartedFirstApp(t *testing.T) {
	src := qspMoveAddr(t, qspGoBlock(t, "../../docs/getting-started.md"), `"localhost:8080"`, `"localhost:0"`)
	p := qspStart(t, qspBuild(t, src))
	addr := p.waitLine(t, qspListening)[1]
	port := addr[strings.LastIndex(addr, ":")+1:]
	host := "localhost:" + port

	if resp, b := qspGet(t, "http://"+host+"/healthz"); resp.StatusCode != 200 || b != "ok" {
		t.Errorf("/healthz: %d %q, want ok", resp.StatusCode, b)
	}
	resp, b := qspGet(t, "http://"+host+"/ws/echo")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Proto != "HTTP/1.1" {
		t.Errorf("plain GET of /ws/echo: %s %d, want HTTP/1.1 426", resp.Proto, resp.StatusCode)
	}
	for k, v := range map[string]string{"Connection": "Upgrade", "Content-Type": "text/plain; charset=utf-8", "Sec-Websocket-Version": "13", "Upgrade": "websocket"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("426 %s: %q, want %q", k, got, v)
		}
	}
	if b != "this endpoint speaks WebSocket only: send Upgrade: websocket\n" {
		t.Errorf("426 body %q", b)
	}

	// The browser console of a page served by the same host.
	ws := "ws://" + host + "/ws/echo"
	page := http.Header{"Origin": {"http://" + host}}
	c, _, err := qspDial(t, ws, page)
	if err != nil {
		t.Fatalf("same-host page: %v", err)
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("hello, colibri")); err != nil {
		t.Fatal(err)
	}
	if typ, msg, err := c.ReadMessage(); err != nil || typ != gorilla.TextMessage || string(msg) != "hello, colibri" {
		t.Fatalf("echo: %d %q %v", typ, msg, err)
	}
	// The default limit of 1 MiB: a message of 1 MiB comes back, one byte
	// more closes with 1009.
	big := strings.Repeat("x", 1<<20)
	if err := c.WriteMessage(gorilla.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || len(msg) != 1<<20 {
		t.Fatalf("1 MiB echo: %d bytes, %v", len(msg), err)
	}
	if err := c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, _ := qspCloseCode(t, c); code != 1000 {
		t.Errorf("ws.close(1000): server answered %d, want 1000 echoed", code)
	}

	tooBig, _, err := qspDial(t, ws, page)
	if err != nil {
		t.Fatal(err)
	}
	if err := tooBig.WriteMessage(gorilla.BinaryMessage, make([]byte, 1<<20+1)); err != nil {
		t.Fatal(err)
	}
	if code, _ := qspCloseCode(t, tooBig); code != 1009 {
		t.Errorf("a message over 1 MiB: close %d, want 1009", code)
	}

	// Pages elsewhere, about:blank and 127.0.0.1 for localhost: 403.
	for _, origin := range []string{"https://example.com", "null", "http://127.0.0.1:" + port} {
		_, resp, err := qspDial(t, ws, http.Header{"Origin": {origin}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %s: %v, want 403", origin, err)
		}
	}

	// Stopping the server with a socket open.
	open, _, err := qspDial(t, ws, page)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.stop(t, os.Interrupt); err != nil {
		t.Errorf("exit after Ctrl-C: %v, want 0; stderr:\n%s", err, p.stderr())
	}
	if code, reason := qspCloseCode(t, open); code != 1001 || reason != "server shutting down" {
		t.Errorf("socket at Ctrl-C: %d %q, want 1001 \"server shutting down\"", code, reason)
	}
	qspGraceful(t, p, 1)
}

// qspGraceful expects the "stopped" line to count at least n graceful
// closes and no forced one: sockets closed just before the signal may
// still be finishing, and are counted too.
func qspGraceful(t *testing.T, p *qspProc, n int) {
	t.Helper()
	m := p.waitLine(t, regexp.MustCompile(`INFO stopped graceful=(\d+) forced=(\d+)$`))
	var g, f int
	fmt.Sscan(m[1], &g)
	fmt.Sscan(m[2], &f)
	if g < n || f != 0 {
		t.Errorf("%s: want graceful>=%d forced=0", m[0], n)
	}
}

// README.md's Quickstart: the program answers /healthz, refuses a chat
// socket without a username with 400 before any socket exists, answers
// each message with its sender's name, closes with 1009 over 64 KiB,
// echoes the peer's clean close, and on SIGTERM sends 1001 to every socket
// and exits cleanly (Run returned nil); with no socket open the log says
// "stopped graceful=0 forced=0".
func TestPromiseReadmeQuickstartProgram(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	p := qspStart(t, qspBuild(t, qspMoveAddr(t, string(src), `":8080"`, `"127.0.0.1:0"`)))
	addr := p.waitLine(t, qspListening)[1]
	base := "http://" + addr

	if resp, b := qspGet(t, base+"/healthz"); resp.StatusCode != 200 || b != "ok" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, b)
	}
	ws := "ws://" + addr + "/ws/chat/lobby"
	_, resp, err := qspDial(t, ws, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no username: %v, want 400", err)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "username required") {
		t.Errorf("400 body %q", b)
	}

	c, _, err := qspDial(t, ws+"?username=ada", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"hi", strings.Repeat("y", 64<<10)} {
		if err := c.WriteMessage(gorilla.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != "ada: "+m {
			t.Fatalf("answer to a %d-byte message: %.40q %v", len(m), got, err)
		}
	}
	if err := c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, "bye"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, _ := qspCloseCode(t, c); code != 1000 {
		t.Errorf("clean close: server answered %d, want 1000", code)
	}

	over, _, err := qspDial(t, ws+"?username=bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := over.WriteMessage(gorilla.TextMessage, []byte(strings.Repeat("z", 64<<10+1))); err != nil {
		t.Fatal(err)
	}
	if code, _ := qspCloseCode(t, over); code != 1009 {
		t.Errorf("over 64 KiB: close %d, want 1009", code)
	}

	open := make([]*gorilla.Conn, 2)
	for i := range open {
		if open[i], _, err = qspDial(t, ws+"?username=s"+fmt.Sprint(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0; stderr:\n%s", err, p.stderr())
	}
	for i, c := range open {
		if code, _ := qspCloseCode(t, c); code != 1001 {
			t.Errorf("socket %d at SIGTERM: close %d, want 1001", i, code)
		}
	}
	qspGraceful(t, p, 2)

	// Without sockets: the line getting-started.md shows.
	q := qspStart(t, qspBuild(t, qspMoveAddr(t, string(src), `":8080"`, `"127.0.0.1:0"`)))
	q.waitLine(t, qspListening)
	if err := q.stop(t, os.Interrupt); err != nil {
		t.Errorf("exit after SIGINT: %v", err)
	}
	q.waitLine(t, regexp.MustCompile(`INFO stopped graceful=0 forced=0$`))
}

// TestPromiseSecondSignalEndsTheProcess: app.Run's doc: "A second signal
// during the shutdown ends the process at once". A socket whose peer never
// answers the 1001 holds the shutdown for CloseTimeout; a second SIGINT
// does not wait for it.
func TestPromiseSecondSignalEndsTheProcess(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	p := qspStart(t, qspBuild(t, qspMoveAddr(t, string(src), `":8080"`, `"127.0.0.1:0"`)))
	addr := p.waitLine(t, qspListening)[1]
	// A raw socket that never reads nor answers: the 1001 waits for it.
	c, _, err := qspDial(t, "ws://"+addr+"/ws/chat/lobby?username=mute", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, regexp.MustCompile(`INFO shutting down`))
	start := time.Now()
	err = p.stop(t, os.Interrupt)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the second SIGINT took %v to end the process", d)
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.Success() {
		t.Errorf("exit after a second SIGINT: %v, want the signal's", err)
	}
}

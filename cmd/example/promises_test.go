package main

// Promises of README.md ("Two commands") and docs/getting-started.md ("The
// full example") about cmd/example that main_test.go does not check.

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// expEnv returns the environment without the example's own variables,
// plus extra.
func expEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COLIBRI_ADDR=") && !strings.HasPrefix(kv, "COLIBRI_TOKEN=") && !strings.HasPrefix(kv, "COLIBRI_NATS=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// The default address, with no flag and no COLIBRI_ADDR, is the loopback
// port 8080 that getting-started.md's URLs use.
func TestPromiseExampleDefaultAddress(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = expEnv(mainEnv + "=-h")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example -h: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`-addr string\s+address to listen on \(env COLIBRI_ADDR\) \(default "127\.0\.0\.1:8080"\)`).Match(out) {
		t.Fatalf("the -addr default is not 127.0.0.1:8080:\n%s", out)
	}
}

// expLines collects a reader's lines.
type expLines struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
	done  chan struct{}
}

func expCollect(r io.Reader) *expLines {
	l := &expLines{more: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.more)
			l.more = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *expLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// wait returns the submatches of the first line matching re.
func (l *expLines) wait(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	guard := time.After(30 * time.Second)
	for i := 0; ; {
		l.mu.Lock()
		for ; i < len(l.lines); i++ {
			if m := re.FindStringSubmatch(l.lines[i]); m != nil {
				l.mu.Unlock()
				return m
			}
		}
		more := l.more
		l.mu.Unlock()
		select {
		case <-more:
		case <-l.done:
			l.mu.Lock()
			n := len(l.lines)
			l.mu.Unlock()
			if i == n {
				t.Fatalf("output ended without a line matching %s:\n%s", re, l)
			}
		case <-guard:
			t.Fatalf("no line matching %s:\n%s", re, l)
		}
	}
}

// README.md "Two commands" and getting-started.md "The full example": the
// example prints the URL to open, which serves the chat page; Ctrl-C
// stops it cleanly (exit 0, "stopped graceful=1 forced=0" with one chat
// socket open, which gets 1001).
func TestPromiseExamplePrintsItsURLAndStops(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = expEnv(mainEnv+"=", "COLIBRI_ADDR=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out, logs := expCollect(stdout), expCollect(stderr)
	exited := make(chan error, 1)
	go func() {
		<-out.done
		<-logs.done
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-out.done
		<-logs.done
	})

	url := out.wait(t, regexp.MustCompile(`^colibri example listening: open (http://127\.0\.0\.1:\d+/)$`))[1]
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "colibri chat") {
		t.Fatalf("%s: %d %.80q", url, resp.StatusCode, page)
	}
	c.CloseIdleConnections()

	ws := "ws" + strings.TrimPrefix(url, "http") + "ws/chat/lobby?username=ada"
	d := gorilla.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(ws, http.Header{"Origin": {strings.TrimSuffix(url, "/")}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
			t.Errorf("chat socket at Ctrl-C: %v, want 1001", err)
		}
		break
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after Ctrl-C: %v, want 0\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the example did not stop on Ctrl-C:\n%s", logs)
	}
	logs.wait(t, regexp.MustCompile(`msg=stopped graceful=1 forced=0$`))
}

// README.md: token auth. The chat checks the page's origin (the default),
// the echo route accepts any; /ws/stats takes the token in the
// Authorization header too, and refuses a wrong one.
func TestPromiseExampleOriginsAndToken(t *testing.T) {
	base, _, _ := startExample(t)
	evil := http.Header{"Origin": {"https://evil.example"}}
	if _, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/chat/lobby?username=x"), evil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin chat: %v, want 403", err)
	}
	c, _, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/echo"), evil)
	if err != nil {
		t.Fatalf("cross-origin echo: %v", err)
	}
	c.Close()

	if _, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/stats"), http.Header{"Authorization": {"Bearer wrong"}}); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("stats feed with a wrong token: %v, want 401", err)
	}
	s, _, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws/stats"), http.Header{"Authorization": {"Bearer t0ken"}})
	if err != nil {
		t.Fatalf("stats feed with the token in the header: %v", err)
	}
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard
	if _, p, err := s.ReadMessage(); err != nil || !strings.Contains(string(p), `"chat_members"`) {
		t.Fatalf("stats feed: %q %v", p, err)
	}
}

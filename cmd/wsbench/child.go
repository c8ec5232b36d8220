package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a server process started by the driver: "wsbench serve" for
// one library. The driver measures it from outside, through /proc and the
// server's debug endpoints.
type child struct {
	addr  string // host:port the server listens on
	raw   bool   // the server speaks the rawtcp floor's protocol
	extra string // what the first line had after the address
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has been waited for
	err   error         // the process's exit status, set before done closes
	http  *http.Client
}

// startChild runs exe serve -lib lib, bound to cpu unless it is negative,
// and waits for its address.
func startChild(ctx context.Context, exe, lib string, cpu int) (*child, error) {
	c, err := startProcess(ctx, lib, exe, "serve", "-lib", lib, "-addr", "127.0.0.1:0", "-cpu", strconv.Itoa(cpu))
	if c != nil {
		c.raw = kindOf(lib) == floorLib
	}
	return c, err
}

// startProcess runs exe with args, a wsbench subcommand that prints the
// address it listens on as its first line and runs until its standard
// input closes, and waits for that line. what names it in errors.
func startProcess(ctx context.Context, what, exe string, args ...string) (*child, error) {
	lib := what
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	lines := &firstLine{ready: make(chan struct{})}
	cmd.Stdout = lines
	// The server stops when this pipe closes, which also happens when the
	// driver dies: a server cannot outlive its driver.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s server: %w", lib, err)
	}
	c := &child{
		cmd:   cmd,
		stdin: stdin,
		done:  make(chan struct{}),
		http: &http.Client{
			Timeout: 30 * time.Second,
			// A fresh connection per request: no idle HTTP connection is
			// left in the server to be counted as a WebSocket's cost.
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()

	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-lines.ready:
		c.addr = lines.line()
	case <-c.done:
		return nil, fmt.Errorf("the %s server exited before listening: %v", lib, c.err)
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("the %s server did not print its address within 10s", lib)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	c.addr, c.extra, _ = strings.Cut(c.addr, " ")
	if err := checkLoopback(c.addr); err != nil {
		c.stop()
		return nil, fmt.Errorf("the %s server: %w", lib, err)
	}
	return c, nil
}

// stop asks the server to exit by closing its standard input, then
// insists: SIGTERM after five seconds, SIGKILL after two more.
func (c *child) stop() {
	_ = c.stdin.Close()
	if c.waitFor(5 * time.Second) {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	if c.waitFor(2 * time.Second) {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// kill ends the process at once, as a crash would.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
	_ = c.stdin.Close()
}

func (c *child) waitFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// rssKiB reads the server's resident set size from /proc/PID/status.
func (c *child) rssKiB() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, errors.New("no VmRSS line in /proc status")
}

// cpuTime is the CPU time the server's threads have used so far, from
// /proc/PID/schedstat (nanoseconds, summed over its threads).
func (c *child) cpuTime() (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", c.cmd.Process.Pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// goroutines asks the server how many goroutines it runs.
func (c *child) goroutines(ctx context.Context) (int, error) {
	b, err := c.request(ctx, http.MethodGet, "/debug/goroutines")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// collect asks the server to collect garbage and return it to the system.
func (c *child) collect(ctx context.Context) error {
	_, err := c.request(ctx, http.MethodPost, "/debug/gc")
	return err
}

func (c *child) request(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return b, nil
}

// memSample is the server's memory and goroutines at one moment.
type memSample struct {
	RSSKiB     int64 `json:"rss_kib"`
	Goroutines int   `json:"goroutines"`
}

// settle waits for the server's memory to stop moving: it collects
// garbage and samples RSS every quarter second until two samples in a row
// agree within 1% (or 64 KiB), for at most about five seconds.
func (c *child) settle(ctx context.Context) (memSample, error) {
	const (
		interval = 250 * time.Millisecond
		maxTries = 20
	)
	var prev int64 = -1
	var s memSample
	for range maxTries {
		if err := c.collect(ctx); err != nil {
			return s, err
		}
		rss, err := c.rssKiB()
		if err != nil {
			return s, err
		}
		s.RSSKiB = rss
		if prev >= 0 && math.Abs(float64(rss-prev)) <= max(0.01*float64(prev), 64) {
			break
		}
		prev = rss
		if err := sleep(ctx, interval); err != nil {
			return s, err
		}
	}
	g, err := c.goroutines(ctx)
	s.Goroutines = g
	return s, err
}

// firstLine is the child's standard output: it keeps the first line (the
// address) and ignores anything after it.
type firstLine struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	got   bool
	ready chan struct{}
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got {
		return len(p), nil
	}
	f.buf.Write(p)
	if bytes.IndexByte(f.buf.Bytes(), '\n') >= 0 {
		f.got = true
		close(f.ready)
	}
	return len(p), nil
}

func (f *firstLine) line() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, _, _ := strings.Cut(f.buf.String(), "\n")
	return strings.TrimSpace(l)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

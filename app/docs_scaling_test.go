package app_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
)

// rvDocsSlowRouter is newRouter plus GET /slow, which tells entered and
// then answers "done" once release is closed.
func rvDocsSlowRouter(entered chan<- struct{}, release <-chan struct{}) http.Handler {
	r := newRouter()
	r.HandleFunc("GET /slow", func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	return r
}

// rvDocsGet runs a GET of url on its own transport and sends its outcome.
func rvDocsGet(url string) <-chan string {
	res := make(chan string, 1)
	go func() {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			res <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			res <- "error: " + err.Error()
			return
		}
		res <- resp.Status + " " + string(b)
	}()
	return res
}

// rvDocsWaitRefused dials addr until the connection is refused, for at
// most 5 s: the listener closes at the start of the shutdown, on another
// goroutine than the one sending 1001.
func rvDocsWaitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new connections still accepted 5 s into the shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownClosesTheListenerAndLetsRequestsFinish:
// docs/scaling.md, graceful shutdown steps 1 to 3: "The listener closes:
// new connections are refused", "In-flight HTTP requests finish", and "at
// the same time, every open WebSocket starts closing" with 1001; Run then
// returns nil.
func TestShutdownClosesTheListenerAndLetsRequestsFinish(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	_, base, stop := start(t, rvDocsSlowRouter(entered, release), app.Config{ShutdownTimeout: 5 * time.Second})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	slow := rvDocsGet(base + "/slow")
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Errorf("open socket during the shutdown: %v, want 1001", err)
	}
	rvDocsWaitRefused(t, strings.TrimPrefix(base, "http://"))
	select {
	case got := <-slow:
		t.Fatalf("in-flight request ended before its handler: %s", got)
	default:
	}
	close(release)
	if got := <-slow; got != "200 OK done" {
		t.Errorf("in-flight request: %s, want 200 OK done", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v, want nil", err)
	}
}

// TestShutdownCutsRequestsStillRunningAtTheDeadline:
// docs/scaling.md, step 2: in-flight HTTP requests "still running at the
// deadline below lose their connections".
func TestShutdownCutsRequestsStillRunningAtTheDeadline(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	_, base, stop := start(t, rvDocsSlowRouter(entered, release), app.Config{ShutdownTimeout: 500 * time.Millisecond})
	slow := rvDocsGet(base + "/slow")
	<-entered
	began := time.Now()
	_ = stop()
	select {
	case got := <-slow:
		if !strings.HasPrefix(got, "error: ") {
			t.Fatalf("request running at the deadline: %s, want its connection lost", got)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Errorf("connection lost %v after the shutdown began, want about 500ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request running at the deadline still connected 5 s after Run returned")
	}
}

package wsconn_test

// Claims of docs/closing.md and docs/observability.md that no other test
// pins, checked through a loopback socket with gorilla/websocket.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/wsconn"
)

// dr2Closes is an observer that hands over each connection's CloseInfo.
type dr2Closes struct {
	wsconn.NopObserver
	closed chan wsconn.CloseInfo
}

func (o *dr2Closes) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }
func (o *dr2Closes) Closed(info wsconn.CloseInfo)                { o.closed <- info }

// docs/closing.md ("The closing handshake and TCP"): after out.Close the
// handler may range on; when the peer stays silent the loop ends
// CloseTimeout after colibri's CLOSE went out, with a 1006 error.
func TestLoopAfterCloseEndsWith1006WhenThePeerIsSilent(t *testing.T) {
	type result struct {
		err error
		d   time.Duration
	}
	results := make(chan result, 1)
	url, _ := testServer(t, &wsconn.Config{CloseTimeout: 200 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		start := time.Now()
		if err := out.Close(4000, "done"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		results <- result{in.Err(), time.Since(start)}
		return nil
	})
	dialGorilla(t, url) // never reads: the CLOSE stays unanswered
	r := waitFor(t, results, "the loop")
	if ce, ok := errors.AsType[*wsconn.CloseError](r.err); !ok || ce.Code != frames.CloseAbnormal {
		t.Fatalf("in.Err() = %v, want a 1006 *CloseError", r.err)
	}
	if r.d < 150*time.Millisecond || r.d > 3*time.Second {
		t.Fatalf("the loop ended %v after out.Close, want about CloseTimeout (200ms)", r.d)
	}
}

// docs/observability.md ("Logs"): bytes_in and bytes_out count the
// payload bytes of data frames (Conn.Stats): a 100-byte PING, its PONG
// and the two CLOSE frames leave the counts at the 5 bytes of the one
// message each way.
func TestByteCountsLeaveControlFramesOut(t *testing.T) {
	var logs testlog.Buffer
	obs := &dr2Closes{closed: make(chan wsconn.CloseInfo, 1)}
	cfg := &wsconn.Config{Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	url, _ := testServer(t, cfg, echo)
	c := dialGorilla(t, url)
	pongs := make(chan string, 1)
	c.SetPongHandler(func(p string) error { pongs <- p; return nil })
	ping := strings.Repeat("p", 100)
	if err := c.WriteControl(gorilla.PingMessage, []byte(ping), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "hello" {
		t.Fatalf("echo %q %v", p, err)
	}
	if p := waitFor(t, pongs, "the PONG"); p != ping {
		t.Fatalf("PONG %q", p)
	}
	msg := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "")
	if err := c.WriteControl(gorilla.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	info := waitFor(t, obs.closed, "Closed")
	line := logs.String()
	if info.BytesIn != 5 || info.BytesOut != 5 {
		t.Fatalf("bytes_in=%d bytes_out=%d, want the 5-byte message each way alone\n%s",
			info.BytesIn, info.BytesOut, line)
	}
}

// docs/observability.md (Attributes): websocket.close.code (CloseInfo.Code,
// the "connection closed" line's code) is colibri's when it closed first,
// the code that went out: a handler's *CloseError whose reason is not
// valid UTF-8 goes on the wire as 1011 without a reason (docs/closing.md),
// and CloseInfo says 1011 too.
func TestCloseInfoCodeIsTheCodeSent(t *testing.T) {
	obs := &dr2Closes{closed: make(chan wsconn.CloseInfo, 1)}
	url, _ := testServer(t, &wsconn.Config{Observer: obs}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return &wsconn.CloseError{Code: 4000, Reason: "bad \xff"}
	})
	c := dialGorilla(t, url)
	_, _, err := c.ReadMessage() // gorilla answers the CLOSE
	ce, ok := err.(*gorilla.CloseError)
	if !ok || ce.Code != 1011 {
		t.Fatalf("client got %v, want CLOSE 1011 (docs/closing.md)", err)
	}
	if info := waitFor(t, obs.closed, "Closed"); int(info.Code) != ce.Code {
		t.Fatalf("CloseInfo %d %q by %v; the peer received %d", info.Code, info.Reason, info.By, ce.Code)
	}
}

// dr2ChildEnv makes TestPanicInAfterFuncIsRecovered serve the
// panicking connection itself, in the child process it starts.
const dr2ChildEnv = "COLIBRI_DR2_AFTERFUNC_CHILD"

// docs/closing.md ("Close codes colibri sends"): "A panic never takes the
// process down: colibri recovers it wherever it happens in the
// connection's goroutines", the goroutine that runs a function given to
// Conn.AfterFunc included. The child process serves such a connection,
// and must live on.
func TestPanicInAfterFuncIsRecovered(t *testing.T) {
	if os.Getenv(dr2ChildEnv) == "1" {
		url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			s.AfterFunc(func() { panic("dr2 clean-up boom") })
			return nil
		})
		c := dialGorilla(t, url)
		_, _, _ = c.ReadMessage()
		time.Sleep(300 * time.Millisecond)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicInAfterFuncIsRecovered$", "-test.count=1")
	cmd.Env = append(os.Environ(), dr2ChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the process serving the connection died: %v\n%s", err, out)
	}
}

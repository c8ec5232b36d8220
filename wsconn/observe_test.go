package wsconn_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// eventLog is an Observer that writes down what it is told, for one
// connection at a time. wsconn alone reports no upgrades.
type eventLog struct {
	wsconn.NopObserver
	mu     sync.Mutex
	events []string
	conn   *wsconn.Conn
	closed chan wsconn.CloseInfo
}

func newEventLog() *eventLog { return &eventLog{closed: make(chan wsconn.CloseInfo, 1)} }

func (l *eventLog) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn = c
	l.events = append(l.events, "open")
	return l
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *eventLog) Received(kind messages.Kind, size int64) { l.add("in %v %d", kind, size) }
func (l *eventLog) Sent(kind messages.Kind, size int64)     { l.add("out %v %d", kind, size) }
func (l *eventLog) PingRTT(rtt time.Duration)               { l.add("rtt %v", rtt) }
func (l *eventLog) ProtocolError(v *frames.Violation)       { l.add("violation %d", v.Code) }
func (l *eventLog) Closed(info wsconn.CloseInfo)            { l.add("closed"); l.closed <- info }

// waitFor waits until event has been reported.
func (l *eventLog) waitFor(t *testing.T, event string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		seen := slices.Contains(l.events, event)
		l.mu.Unlock()
		if seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event", event)
		}
	}
}

// wait returns the CloseInfo of the connection and every event.
func (l *eventLog) wait(t *testing.T) (wsconn.CloseInfo, []string) {
	t.Helper()
	select {
	case info := <-l.closed:
		l.mu.Lock()
		defer l.mu.Unlock()
		return info, slices.Clone(l.events)
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end")
		return wsconn.CloseInfo{}, nil
	}
}

func TestObserverSeesEveryWayToReadAndWrite(t *testing.T) {
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: l}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for f := range in.Frames() {
			if f.Fin {
				break
			}
		}
		for _, r := range in.Readers() {
			_, _ = r.Read(make([]byte, 1)) // the rest is discarded, and counted
			break
		}
		for range in.Messages(0) {
			break
		}
		if err := out.WriteText(ctx, "x"); err != nil {
			return err
		}
		if err := out.WriteBinary(ctx, []byte{9, 9}); err != nil {
			return err
		}
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("ab"))
		_, _ = w.Write([]byte("cd"))
		if err := w.Close(); err != nil {
			return err
		}
		if err := out.WriteBinary(ctx, []byte("12345")); err != nil {
			return err
		}
		if err := out.WritePrepared(ctx, wsconn.Prepare(messages.Text("prep"))); err != nil {
			return err
		}
		return &wsconn.CloseError{Code: 4001, Reason: "done"}
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("he"))
	c.frame(frames.OpContinuation, true, []byte("llo"))
	c.frame(frames.OpBinary, true, []byte{1, 2, 3, 4})
	c.frame(frames.OpText, true, []byte("abc"))
	c.expectClose(4001)
	c.frame(frames.OpClose, true, closePayload(4001, ""))

	info, events := l.wait(t)
	want := []string{"open",
		"in text 5", "in binary 4", "in text 3",
		"out text 1", "out binary 2", "out text 4", "out binary 5", "out text 4",
		"closed"}
	if !slices.Equal(events, want) {
		t.Errorf("events:\n%q\nwant:\n%q", events, want)
	}
	if info.Code != 4001 || info.Reason != "done" || info.By != wsconn.SideLocal {
		t.Errorf("closed with %d %q by %v, want 4001 \"done\" by local", info.Code, info.Reason, info.By)
	}
	if info.MessagesIn != 3 || info.MessagesOut != 5 {
		t.Errorf("counted %d messages in and %d out, want 3 and 5", info.MessagesIn, info.MessagesOut)
	}
	// Data payload bytes on the wire; control frames do not count.
	if info.BytesIn != 5+4+3 || info.BytesOut != 1+2+4+5+4 {
		t.Errorf("counted %d bytes in and %d out, want %d and %d", info.BytesIn, info.BytesOut, 5+4+3, 1+2+4+5+4)
	}
	if info.Duration <= 0 {
		t.Errorf("duration %v", info.Duration)
	}
}

// TestCloseInfoSaysWhoClosed checks the code and the side that
// ConnObserver.Closed reports for each way a connection ends.
func TestCloseInfoSaysWhoClosed(t *testing.T) {
	tests := []struct {
		name    string
		handler handlerFunc
		client  func(c *rawClient)
		code    frames.CloseCode
		reason  string
		by      wsconn.Side
		events  []string
	}{{
		name:    "peer closes",
		handler: echo,
		client: func(c *rawClient) {
			c.frame(frames.OpClose, true, closePayload(4000, "bye"))
			c.expectClose(4000)
		},
		code: 4000, reason: "bye", by: wsconn.SidePeer,
	}, {
		name: "handler returns",
		handler: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for range in.Messages(0) {
				return nil
			}
			return in.Err()
		},
		client: func(c *rawClient) {
			c.frame(frames.OpText, true, []byte("hi"))
			c.expectClose(frames.CloseNormal)
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		},
		code: frames.CloseNormal, by: wsconn.SideLocal, events: []string{"in text 2"},
	}, {
		name:    "peer vanishes",
		handler: echo,
		client:  func(c *rawClient) { _ = c.nc.Close() },
		code:    frames.CloseAbnormal, reason: "connection closed without a close frame", by: wsconn.SidePeer,
	}, {
		name:    "protocol violation",
		handler: echo,
		client: func(c *rawClient) {
			c.frame(frames.OpText, true, []byte{0xff})
			c.expectClose(frames.CloseInvalidPayload)
			// A peer hangs up after a failure; until it does, the server
			// drains its side for up to CloseTimeout.
			_ = c.nc.Close()
		},
		code: frames.CloseInvalidPayload, reason: "invalid UTF-8 in text message", by: wsconn.SideLocal,
		events: []string{"violation 1007"},
	}, {
		name: "close now",
		handler: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			s.CloseNow()
			return nil
		},
		client: func(c *rawClient) { c.expectEOF() },
		code:   frames.CloseAbnormal, reason: "closed without handshake", by: wsconn.SideLocal,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newEventLog()
			url, _ := testServer(t, &wsconn.Config{Observer: l}, tt.handler)
			tt.client(dialRaw(t, url))
			info, events := l.wait(t)
			if info.Code != tt.code || info.Reason != tt.reason || info.By != tt.by {
				t.Errorf("closed with %d %q by %v, want %d %q by %v", info.Code, info.Reason, info.By, tt.code, tt.reason, tt.by)
			}
			want := append(append([]string{"open"}, tt.events...), "closed")
			if !slices.Equal(events, want) {
				t.Errorf("events %q, want %q", events, want)
			}
		})
	}
}

func TestObserverMeasuresPingRTT(t *testing.T) {
	l := newEventLog()
	clk := wstest.NewClock()
	url, _ := testServer(t, &wsconn.Config{Observer: l, Clock: clk, PingInterval: 30 * time.Second}, echo)
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("up"))
	c.read() // the echo: the server is reading
	l.waitFor(t, "out text 2")
	clk.Advance(30 * time.Second)
	h, ping := c.read()
	if h.Op != frames.OpPing {
		t.Fatalf("got %v, want a ping", h.Op)
	}
	// The payload is the moment the PING left, on the fake clock.
	rtt := clk.Now().Add(7 * time.Millisecond).Sub(time.Unix(0, int64(binary.BigEndian.Uint64(ping))))
	clk.Advance(7 * time.Millisecond)
	c.frame(frames.OpPong, true, ping)
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	_, events := l.wait(t)
	want := []string{"open", "in text 2", "out text 2", "rtt " + rtt.String(), "closed"}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
}

func TestConnLoggerCarriesConnectionFacts(t *testing.T) {
	var logs testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Logger: logger, Observer: l}, echo)
	c := dialRawHeader(t, url, http.Header{"Sec-Websocket-Protocol": {"chat"}})
	c.frame(frames.OpText, true, []byte("hi"))
	c.read()
	c.frame(frames.OpClose, true, closePayload(frames.CloseGoingAway, "tab closed"))
	c.expectClose(frames.CloseGoingAway)
	l.wait(t)

	if r := l.conn.Route(); r != "" {
		t.Errorf("Route() = %q without a router, want \"\"", r)
	}
	id := l.conn.ID()
	facts := fmt.Sprintf(`conn=%d remote=%s subprotocol=chat compression=none`, id, l.conn.RemoteAddr())
	for _, want := range []string{
		`msg="connection open" ` + facts,
		`msg="connection closed" ` + facts + ` code=1001 reason="tab closed" by=peer duration=`,
		` messages_in=1 messages_out=1 bytes_in=2 bytes_out=2`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "connection closed"); n != 1 {
		t.Errorf("%d close lines, want 1", n)
	}
}

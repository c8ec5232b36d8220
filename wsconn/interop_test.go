package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/internal/group"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// The interop tests drive colibri's server with two clients nobody here
// wrote: gorilla/websocket and coder/websocket.

func dialGorilla(t *testing.T, url string) *gorilla.Conn {
	t.Helper()
	c, resp, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("gorilla dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialCoder(t *testing.T, url string) *coder.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("coder dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestEchoGorilla(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	c := dialGorilla(t, url)
	for _, tc := range []struct {
		typ  int
		data []byte
	}{
		{gorilla.TextMessage, []byte("hello, colibri")},
		{gorilla.BinaryMessage, []byte{0, 1, 2, 255}},
		{gorilla.TextMessage, []byte("")},
		{gorilla.TextMessage, []byte("emoji 🐦 and ünïcode")},
		{gorilla.BinaryMessage, bytes.Repeat([]byte("x"), 70000)},
	} {
		if err := c.WriteMessage(tc.typ, tc.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != tc.typ || !bytes.Equal(got, tc.data) {
			t.Fatalf("echo: got type %d len %d, want type %d len %d", typ, len(got), tc.typ, len(tc.data))
		}
	}
	err := c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "done"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("want echoed 1000 close, got %v", err)
	}
}

func TestEchoCoder(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	c := dialCoder(t, url)
	c.SetReadLimit(1 << 20)
	ctx := context.Background()
	for _, tc := range []struct {
		typ  coder.MessageType
		data []byte
	}{
		{coder.MessageText, []byte("hello")},
		{coder.MessageBinary, []byte{9, 8, 7}},
		{coder.MessageBinary, bytes.Repeat([]byte{7}, 200000)},
	} {
		if err := c.Write(ctx, tc.typ, tc.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != tc.typ || !bytes.Equal(got, tc.data) {
			t.Fatalf("echo: got type %v len %d", typ, len(got))
		}
	}
	if err := c.Close(coder.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

func TestFragmentedMessageFromClient(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	c := dialGorilla(t, url)
	w, err := c.NextWriter(gorilla.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	// gorilla sends a frame per buffer flush; three writes of 5000 bytes
	// with its 4 KiB buffer make several continuation frames.
	want := strings.Repeat("fragment-", 2000)
	for i := 0; i < len(want); i += 5000 {
		_, _ = io.WriteString(w, want[i:min(i+5000, len(want))])
	}
	w.Close()
	_, got, err := c.ReadMessage()
	if err != nil || string(got) != want {
		t.Fatalf("got %d bytes, err %v", len(got), err)
	}
}

func TestFragmentedMessageFromServer(t *testing.T) {
	cfg := &wsconn.Config{FragmentSize: 1000}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.WriteText(ctx, strings.Repeat("a", 3500)); err != nil {
			return err
		}
		w, err := out.Writer(ctx, messages.KindBinary)
		if err != nil {
			return err
		}
		for range 7 {
			if _, err := w.Write(bytes.Repeat([]byte("b"), 300)); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		return in.Err()
	})
	c := dialCoder(t, url)
	ctx := context.Background()
	typ, p, err := c.Read(ctx)
	if err != nil || typ != coder.MessageText || len(p) != 3500 {
		t.Fatalf("text: %v %d %v", typ, len(p), err)
	}
	typ, p, err = c.Read(ctx)
	if err != nil || typ != coder.MessageBinary || !bytes.Equal(p, bytes.Repeat([]byte("b"), 2100)) {
		t.Fatalf("streamed: %v %d %v", typ, len(p), err)
	}
	c.Close(coder.StatusNormalClosure, "")
}

func TestSixteenMiBMessage(t *testing.T) {
	cfg := &wsconn.Config{MaxMessageSize: 17 << 20}
	url, _ := testServer(t, cfg, echo)
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	t.Run("gorilla", func(t *testing.T) {
		c := dialGorilla(t, url)
		if err := c.WriteMessage(gorilla.BinaryMessage, big); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("16 MiB echo: %d bytes, %v", len(got), err)
		}
	})
	t.Run("coder", func(t *testing.T) {
		c := dialCoder(t, url)
		c.SetReadLimit(32 << 20)
		ctx := context.Background()
		if err := c.Write(ctx, coder.MessageBinary, big); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("16 MiB echo: %d bytes, %v", len(got), err)
		}
	})
}

func TestClientPingGetsPong(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	c := dialGorilla(t, url)
	pongs := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pongs <- data; return nil })
	if err := c.WriteControl(gorilla.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case got := <-pongs:
		if got != "are you there" {
			t.Fatalf("pong payload %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

func TestWriteOnlyHandlerAnswersPingAndSeesClose(t *testing.T) {
	ended := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		// Never ranges over in: only writes until the peer leaves.
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				ended <- context.Cause(ctx)
				return nil
			case <-time.After(5 * time.Millisecond):
			}
			if i < 3 {
				if err := out.WriteText(ctx, fmt.Sprint("tick ", i)); err != nil {
					return err
				}
			}
		}
	})
	c := dialCoder(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != fmt.Sprint("tick ", i) {
			t.Fatalf("read %d: %q %v", i, p, err)
		}
	}
	// coder's Ping needs a concurrent reader to receive the pong.
	go func() { _, _, _ = c.Read(ctx) }()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping to a write-only handler: %v", err)
	}
	if err := c.Close(coder.StatusGoingAway, "leaving"); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case cause := <-ended:
		if wsconn.CloseStatus(cause) != frames.CloseGoingAway {
			t.Fatalf("handler context cause %v, want the peer's 1001", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not see the close")
	}
}

func TestServerKeepAlivePingAndRTT(t *testing.T) {
	rtt := make(chan time.Duration, 1)
	cfg := &wsconn.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 2 * time.Second}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
			rtt <- s.RTT()
		}
		return in.Err()
	})
	c := dialGorilla(t, url)
	pinged := make(chan struct{}, 10)
	c.SetPingHandler(func(data string) error {
		pinged <- struct{}{}
		return c.WriteControl(gorilla.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for range 2 {
		select {
		case <-pinged:
		case <-time.After(5 * time.Second):
			t.Fatal("server sent no keep-alive ping")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if err := c.WriteMessage(gorilla.TextMessage, []byte("rtt?")); err != nil {
		t.Fatal(err)
	}
	if got := <-rtt; got <= 0 || got > time.Second {
		t.Fatalf("RTT %v after answered pings", got)
	}
}

func TestPongTimeoutCloses1001(t *testing.T) {
	cfg := &wsconn.Config{PingInterval: 30 * time.Millisecond, PongTimeout: 60 * time.Millisecond}
	errc := make(chan error, 1)
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errc <- in.Err()
		return in.Err()
	})
	// A raw client that never answers pings.
	c := dialRaw(t, url)
	reason := c.expectClose(frames.CloseGoingAway)
	if reason != "ping timeout" {
		t.Fatalf("reason %q", reason)
	}
	if err := <-errc; !errors.Is(err, wsconn.ErrPingTimeout) {
		t.Fatalf("in.Err() = %v, want ErrPingTimeout", err)
	}
}

func TestIdleTimeoutCloses1001(t *testing.T) {
	cfg := &wsconn.Config{IdleTimeout: 80 * time.Millisecond}
	url, _ := testServer(t, cfg, echo)
	c := dialGorilla(t, url)
	start := time.Now()
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("want 1001 on idle, got %v", err)
	}
	if d := time.Since(start); d < 70*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
}

func TestHandlerCloseCodes(t *testing.T) {
	tests := []struct {
		name   string
		ret    error
		panics bool
		code   int
		reason string
	}{
		{name: "nil", ret: nil, code: 1000},
		{name: "close error", ret: &wsconn.CloseError{Code: 4001, Reason: "room closed"}, code: 4001, reason: "room closed"},
		{name: "wrapped close error", ret: fmt.Errorf("ending: %w", &wsconn.CloseError{Code: frames.ClosePolicyViolation, Reason: "no"}), code: 1008, reason: "no"},
		{name: "other error", ret: errors.New("database down"), code: 1011},
		{name: "panic", panics: true, code: 1011},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if tt.panics {
					panic("boom")
				}
				return tt.ret
			})
			c := dialGorilla(t, url)
			_, _, err := c.ReadMessage()
			ce, ok := err.(*gorilla.CloseError)
			if !ok || ce.Code != tt.code || (tt.reason != "" && ce.Text != tt.reason) {
				t.Fatalf("got %v, want close %d %q", err, tt.code, tt.reason)
			}
		})
	}
}

func TestPeerCloseCodeReachesHandlerAndIsEchoed(t *testing.T) {
	errc := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errc <- in.Err()
		return nil
	})
	c := dialCoder(t, url)
	err := c.Close(4123, "custom")
	if err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	got := <-errc
	var ce *wsconn.CloseError
	if !errors.As(got, &ce) || ce.Code != 4123 || ce.Reason != "custom" {
		t.Fatalf("in.Err() = %v, want the peer's 4123", got)
	}
}

func TestCleanPeerCloseIsNil(t *testing.T) {
	errc := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Frames() {
		}
		errc <- in.Err()
		return in.Err()
	})
	c := dialCoder(t, url)
	if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("in.Err() after a clean close = %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	const writers, each = 8, 200
	url, _ := testServer(t, &wsconn.Config{FragmentSize: 512}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for w := range writers {
			s.Go(func(ctx context.Context) error {
				for i := range each {
					msg := fmt.Sprintf("%d:%d:%s", w, i, strings.Repeat("p", i*7))
					if err := out.WriteText(ctx, msg); err != nil {
						return err
					}
				}
				return nil
			})
		}
		for range in.Messages(0) {
		}
		return in.Err()
	})
	c := dialGorilla(t, url)
	next := make([]int, writers)
	for range writers * each {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var w, i int
		var pad string
		if _, err := fmt.Sscanf(string(p), "%d:%d:%s", &w, &i, &pad); err != nil && i != 0 {
			t.Fatalf("garbled message %q: %v", p, err)
		}
		if i != next[w] || len(pad) != i*7 {
			t.Fatalf("writer %d: message %d out of order or cut (want %d)", w, i, next[w])
		}
		next[w]++
	}
}

func TestSiblingTaskErrorCloses1011(t *testing.T) {
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.Go(func(ctx context.Context) error { return errors.New("feed failed") })
		<-ctx.Done()
		return ctx.Err()
	})
	c := dialGorilla(t, url)
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseInternalServerErr) {
		t.Fatalf("got %v, want 1011", err)
	}
}

func TestSiblingTasksAwaitedBeforeTeardown(t *testing.T) {
	var taskDone atomic.Bool
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.Go(func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond)
			taskDone.Store(true)
			return nil
		})
		return nil
	})
	c := dialRaw(t, url)
	c.expectClose(frames.CloseNormal)
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectEOF()
	if !taskDone.Load() {
		t.Fatal("the transport closed before the connection's task returned")
	}
}

func TestBreakAndRangeAgain(t *testing.T) {
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteText(ctx, "first:"+m.Text()); err != nil {
				return err
			}
			break
		}
		if in.Err() != nil {
			return in.Err()
		}
		for f := range in.Frames() {
			if err := out.WriteText(ctx, "frame:"+string(f.Payload)); err != nil {
				return err
			}
			break
		}
		for kind, r := range in.Readers() {
			b, _ := io.ReadAll(r)
			if err := out.WriteText(ctx, fmt.Sprintf("reader:%v:%s", kind, b)); err != nil {
				return err
			}
		}
		return in.Err()
	})
	c := dialGorilla(t, url)
	for _, s := range []string{"a", "b", "c", "d"} {
		if err := c.WriteMessage(gorilla.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"first:a", "frame:b", "reader:text:c", "reader:text:d"} {
		_, p, err := c.ReadMessage()
		if err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
}

func TestWriteAfterCloseIsErrClosed(t *testing.T) {
	errc := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.Close(frames.CloseNormal, "bye"); err != nil {
			return err
		}
		errc <- out.WriteText(ctx, "too late")
		for range in.Messages(0) {
		}
		return in.Err()
	})
	c := dialGorilla(t, url)
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("got %v", err)
	}
	if err := <-errc; !errors.Is(err, wsconn.ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
}

func TestShutdownDeliversAcceptedMessagesBefore1001(t *testing.T) {
	accepted := make(chan struct{})
	url, g := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for i := range 100 {
			if err := out.WriteText(ctx, fmt.Sprint(i)); err != nil {
				return err
			}
		}
		close(accepted)
		<-ctx.Done()
		return context.Cause(ctx)
	})
	c := dialGorilla(t, url)
	<-accepted
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan group.Report, 1)
	go func() {
		// The client reads slowly on purpose; the messages are in flight.
		r, _ := g.Shutdown(ctx)
		done <- r
	}()
	for i := range 100 {
		_, p, err := c.ReadMessage()
		if err != nil || string(p) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q %v", i, p, err)
		}
	}
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("after the messages: %v, want 1001", err)
	}
	if r := <-done; r.Graceful != 1 || r.Forced != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestSubprotocolNegotiatedInClientOrder(t *testing.T) {
	got := make(chan string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		got <- s.Subprotocol()
		return nil
	})
	d := gorilla.Dialer{Subprotocols: []string{"v2.unknown", "echo", "chat"}}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "echo" || <-got != "echo" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
}

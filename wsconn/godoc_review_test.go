package wsconn_test

// Checks of the Go doc comments of package wsconn (go doc -all ./wsconn,
// doc.go) against the code, through a loopback socket with an independent
// peer: gorilla/websocket, or raw frames for protocol corners.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// gdrReadUntilClose reads frames until the server's CLOSE and returns the
// data frames before it (op and payload) and the CLOSE's code.
func gdrReadUntilClose(c *rawClient) (before []string, code frames.CloseCode) {
	c.t.Helper()
	for {
		h, p := c.read()
		switch {
		case h.Op == frames.OpClose:
			code, _, err := frames.ParseClose(p)
			if err != nil {
				c.t.Fatalf("bad CLOSE payload % x: %v", p, err)
			}
			return before, code
		case !h.Op.IsControl():
			before = append(before, fmt.Sprintf("%v/%v:%s", h.Op, h.Fin, p))
		}
	}
}

// ---- Outbound writes and contexts ----

// Outbound: "The context of a write bounds only the wait for the writer,
// not the write itself". A write whose context has already ended goes out
// when no writer is in the way (unlike Ping, whose ended context sends
// nothing), and so does a Writer.
func TestGodocWriteWithAnEndedContextGoesOutWhenNothingWaits(t *testing.T) {
	results := make(chan error, 5)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		dead, cancel := context.WithCancel(ctx)
		cancel()
		results <- out.WriteText(dead, "one")
		w, err := out.Writer(dead, messages.KindBinary)
		if err == nil {
			_, err = w.Write([]byte("two"))
			err = errors.Join(err, w.Close())
		}
		results <- err
		results <- out.WritePrepared(dead, wsconn.Prepare(messages.Text("three")))
		_, err = out.WritePreparedBatch(dead, []*wsconn.Prepared{wsconn.Prepare(messages.Text("four"))})
		results <- err
		results <- out.Ping(dead, []byte("five"))
		return echo(ctx, in, out, s)
	})
	c := dialRaw(t, url)
	for _, want := range []string{"text/true:one", "binary/true:two", "text/true:three", "text/true:four"} {
		h, p := c.read()
		if got := fmt.Sprintf("%v/%v:%s", h.Op, h.Fin, p); got != want {
			t.Fatalf("frame %s, want %s", got, want)
		}
	}
	for i := range 5 {
		err := waitFor(t, results, "the writes")
		if i < 4 && err != nil {
			t.Fatalf("write %d with an ended context and a free writer: %v, want nil", i, err)
		}
		if i == 4 && !errors.Is(err, context.Canceled) {
			t.Fatalf("Ping with an ended context: %v, want context.Canceled", err)
		}
	}
	c.frame(frames.OpText, true, []byte("after"))
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "after" {
		t.Fatalf("got %v %q; want the echo, and no PING before it", h.Op, p)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

// Ping: "payload (at most 125 bytes)": 125 bytes go out as they are; 126
// are refused with frames.ErrControlTooLong and nothing is sent.
func TestGodocPingPayloadLimitAtTheBoundary(t *testing.T) {
	results := make(chan [2]error, 1)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		over := out.Ping(ctx, make([]byte, 126))
		results <- [2]error{out.Ping(ctx, bytesOf('p', 125)), over}
		return echo(ctx, in, out, s)
	})
	c := dialRaw(t, url)
	r := waitFor(t, results, "the pings")
	if r[0] != nil || !errors.Is(r[1], frames.ErrControlTooLong) {
		t.Fatalf("Ping(125 bytes) = %v, Ping(126 bytes) = %v; want nil, ErrControlTooLong", r[0], r[1])
	}
	if h, p := c.read(); h.Op != frames.OpPing || string(p) != string(bytesOf('p', 125)) {
		t.Fatalf("first frame %v with %d bytes, want the 125-byte PING", h.Op, len(p))
	}
	c.frame(frames.OpText, true, []byte("x"))
	if h, _ := c.read(); h.Op != frames.OpText {
		t.Fatalf("after the PING: %v, want the echo (nothing of the refused PING)", h.Op)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

func bytesOf(b byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

// ---- invalid arguments ----

// WriteMessage "sends m"; messages.Message says Kind is KindText or
// KindBinary. A zero Message (or any other Kind) is put on the wire as a
// frame with that opcode: a zero Kind sends a continuation frame that
// continues nothing, which the peer must fail with 1002; Kind 9 sends a
// PING. The write is refused with ErrInvalidKind instead, and nothing
// is sent.
func TestGodocWriteMessageRefusesAKindThatIsNotAMessage(t *testing.T) {
	for _, kind := range []messages.Kind{0, 9} {
		t.Run(kind.String(), func(t *testing.T) {
			results := make(chan [2]error, 1)
			url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				err := out.WriteMessage(ctx, messages.Message{Kind: kind, Payload: []byte("x")})
				if err != nil {
					err = out.WritePrepared(ctx, wsconn.Prepare(messages.Message{Kind: kind, Payload: []byte("y")}))
				}
				_, werr := out.Writer(ctx, kind)
				results <- [2]error{err, werr}
				if werr == nil {
					return nil
				}
				_ = out.WriteText(ctx, "marker")
				return echo(ctx, in, out, s)
			})
			c := dialRaw(t, url)
			r := waitFor(t, results, "the write")
			h, p := c.read()
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			if !errors.Is(r[0], wsconn.ErrInvalidKind) || !errors.Is(r[1], wsconn.ErrInvalidKind) || h.Op != frames.OpText || string(p) != "marker" {
				t.Fatalf("Kind %d: WriteMessage (then WritePrepared) %v, Writer %v, then the peer got %v %q; want all refused and nothing sent", kind, r[0], r[1], h.Op, p)
			}
		})
	}
}

// ---- Side ----

// Side.String: "local" or "peer", and "unknown" for the zero Side.
func TestGodocSideString(t *testing.T) {
	for s, want := range map[wsconn.Side]string{0: "unknown", wsconn.SideLocal: "local", wsconn.SidePeer: "peer"} {
		if got := s.String(); got != want {
			t.Errorf("Side(%d).String() = %q, want %q", s, got, want)
		}
	}
}

// ---- Observer.ConnOpened ----

// gdrServe serves each upgraded connection with serve, called in the
// HTTP handler's goroutine with a context that holds the connection's
// place in a group; the group is shut down at cleanup, which waits for
// the connections.
func gdrServe(t *testing.T, serve func(ctx context.Context, u wsconn.Upgraded)) string {
	t.Helper()
	g := &group.Group{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, u, ok := enterAndAccept(g, w, r, nil)
		if ok {
			serve(ctx, u)
		}
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// gdrOpened counts ConnOpened calls and notes whether they saw the
// request.
type gdrOpened struct {
	wsconn.NopObserver
	calls   atomic.Int32
	request atomic.Bool
}

func (o *gdrOpened) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	o.calls.Add(1)
	o.request.Store(c.Request() != nil)
	return nil
}

// Observer.ConnOpened: "called once per connection, after the opening
// handshake and before the handler runs, on the goroutine that starts the
// connection (Start's caller, or Serve's)", and (Conn.Request) it sees
// the request even without KeepRequest: when Start returns it has run,
// once, and the handler finds it done.
func TestGodocConnOpenedRunsInStartsCaller(t *testing.T) {
	obs := &gdrOpened{}
	results := make(chan string, 2)
	url := gdrServe(t, func(ctx context.Context, u wsconn.Upgraded) {
		err := wsconn.Start(ctx, u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			results <- fmt.Sprintf("handler: %d calls, request %v, Request() %v", obs.calls.Load(), obs.request.Load(), s.Request() != nil)
			return echo(ctx, in, out, s)
		}, &wsconn.Config{Observer: obs, Logger: quietLogger})
		results <- fmt.Sprintf("Start returned %v: %d calls", err, obs.calls.Load())
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("hi"))
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "hi" {
		t.Fatalf("echo %v %q", h.Op, p)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	got := []string{waitFor(t, results, "Start"), waitFor(t, results, "the handler")}
	sort.Strings(got)
	want := []string{"Start returned <nil>: 1 calls", "handler: 1 calls, request true, Request() false"}
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// ---- Prepared ----

// Prepare: "The payload is copied, so the caller may reuse it";
// WritePrepared on a server connection without compression: "as one
// frame, whatever its size"; Len: "the number of bytes the prepared
// message puts on the wire", which holds there.
func TestGodocPreparedCopiesAndIsOneFrame(t *testing.T) {
	payload := bytesOf('p', 3000)
	p := wsconn.Prepare(messages.Binary(payload))
	clear(payload)
	url, _ := testServer(t, &wsconn.Config{FragmentSize: 100}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.WritePrepared(ctx, p); err != nil {
			return err
		}
		return echo(ctx, in, out, s)
	})
	c := dialRaw(t, url)
	hb := make([]byte, 4)
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.br, hb); err != nil {
		t.Fatal(err)
	}
	h, err := frames.ParseHeader(hb)
	if err != nil || h.Op != frames.OpBinary || !h.Fin || h.Length != 3000 {
		t.Fatalf("header %+v (%v), want one binary FIN frame of 3000 bytes", h, err)
	}
	body := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, body); err != nil {
		t.Fatal(err)
	}
	if string(body) != string(bytesOf('p', 3000)) {
		t.Fatal("the payload changed with the caller's slice")
	}
	if p.Len() != len(hb)+len(body) {
		t.Fatalf("Len %d, %d bytes on the wire", p.Len(), len(hb)+len(body))
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

// ---- Serve's result ----

// Serve: "returns the handler's error, or the reason the connection
// failed (nil after a clean close)".
func TestGodocServeReturnsTheHandlersErrorOrWhyItFailed(t *testing.T) {
	handlerErr := errors.New("database down")
	taskErr := errors.New("feed failed")
	loop := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		return nil // whatever the loop saw
	}
	tests := []struct {
		name    string
		handler handlerFunc
		peer    func(c *rawClient)
		check   func(err error) bool
		want    string
	}{{
		name: "handler error",
		handler: func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
			return handlerErr
		},
		peer:  func(c *rawClient) { c.expectClose(frames.CloseInternalError); c.answerClose(frames.CloseInternalError) },
		check: func(err error) bool { return err == handlerErr },
		want:  "the handler's error itself",
	}, {
		name:    "clean close by the peer",
		handler: loop,
		peer: func(c *rawClient) {
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
		},
		check: func(err error) bool { return err == nil },
		want:  "nil",
	}, {
		name:    "protocol violation",
		handler: loop,
		peer: func(c *rawClient) {
			c.frame(frames.OpContinuation, true, nil)
			c.expectClose(frames.CloseProtocolError)
			_ = c.nc.Close() // the server reads until the peer closes
		},
		check: func(err error) bool {
			_, isViolation := errors.AsType[*frames.Violation](err)
			return wsconn.CloseStatus(err) == frames.CloseProtocolError && isViolation
		},
		want: "the 1002 *CloseError wrapping the violation",
	}, {
		name: "task failure",
		handler: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			_ = s.Go(func(context.Context) error { return taskErr })
			return loop(ctx, in, out, s)
		},
		peer:  func(c *rawClient) { c.expectClose(frames.CloseInternalError); c.answerClose(frames.CloseInternalError) },
		check: func(err error) bool { return errors.Is(err, taskErr) },
		want:  "the task's error",
	}, {
		name:    "peer vanished",
		handler: loop,
		peer:    func(c *rawClient) { _ = c.nc.Close() },
		check: func(err error) bool {
			return wsconn.CloseStatus(err) == frames.CloseAbnormal && errors.Is(err, io.EOF)
		},
		want: "a 1006 *CloseError wrapping io.EOF",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			served := make(chan error, 1)
			url := gdrServe(t, func(ctx context.Context, u wsconn.Upgraded) {
				served <- wsconn.Serve(ctx, u, struct{}{}, tt.handler, &wsconn.Config{Logger: quietLogger, PingInterval: -1})
			})
			c := dialRaw(t, url)
			tt.peer(c)
			if err := waitFor(t, served, "Serve"); !tt.check(err) {
				t.Fatalf("Serve returned %v, want %s", err, tt.want)
			}
		})
	}
}

// ---- the limit of a loop that has ended ----

// Messages: a message larger than maxSize closes with 1009, maxSize being
// the loop's (Config.MaxMessageSize when <= 0). After a Messages(10)
// loop has ended, a 100-byte message, within MaxMessageSize, followed by
// the peer's CLOSE 1000, is judged by the background reader against the
// ended loop's limit of 10: the server fails the connection with 1009
// instead of echoing the peer's 1000. Without the CLOSE behind it, the
// same message is kept and a later Messages(0) loop yields it (the test
// below).
func TestGodocEndedLoopsLimitDoesNotJudgeLaterMessages(t *testing.T) {
	errs := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(10) { // a small first message, such as a login
			break
		}
		if err := out.WriteText(ctx, "ok"); err != nil {
			return err
		}
		<-ctx.Done() // busy: the background reader reads meanwhile
		for range in.Messages(0) {
		}
		errs <- in.Err()
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("login"))
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "ok" {
		t.Fatalf("got %v %q", h.Op, p)
	}
	c.frame(frames.OpBinary, true, make([]byte, 100))
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	_, code := gdrReadUntilClose(c)
	err := waitFor(t, errs, "the handler")
	if code != frames.CloseNormal || err != nil {
		t.Fatalf("after the Messages(10) loop ended, a 100-byte message and the peer's CLOSE 1000: CLOSE %v, in.Err() %v; want 1000 echoed and nil", code, err)
	}
}

// Messages' limit is the reading loop's: a message the background reader
// kept while no loop ran, after a Messages(10) loop ended, is yielded by
// a later Messages(0) loop however large it is within MaxMessageSize.
func TestGodocKeptMessageIsJudgedByTheLoopThatReadsIt(t *testing.T) {
	kept := make(chan struct{})
	got := make(chan string, 1)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(10) {
			break
		}
		if err := out.WriteText(ctx, "ok"); err != nil {
			return err
		}
		<-kept
		for m := range in.Messages(0) {
			got <- fmt.Sprintf("%v %d", m.Kind, len(m.Payload))
			break
		}
		return echo(ctx, in, out, s)
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("login"))
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "ok" {
		t.Fatalf("got %v %q", h.Op, p)
	}
	c.frame(frames.OpBinary, true, make([]byte, 100))
	c.frame(frames.OpPing, true, []byte("behind"))
	// The PONG means the background reader has read past the message,
	// keeping it.
	if h, p := c.read(); h.Op != frames.OpPong || string(p) != "behind" {
		t.Fatalf("got %v %q, want the PONG", h.Op, p)
	}
	close(kept)
	if m := waitFor(t, got, "the second loop"); m != "binary 100" {
		t.Fatalf("second loop yielded %s", m)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

// Messages: "A message larger than maxSize bytes (Config.MaxMessageSize
// when maxSize <= 0) closes the connection with 1009 before the excess is
// read", at the boundary: maxSize bytes pass, across fragments too; one
// more, announced and not sent, gets 1009; a negative maxSize means
// MaxMessageSize.
func TestGodocMessagesLimitAtTheBoundary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfgMax  int64
		maxSize int64
		limit   int
	}{
		{"maxSize 5", 0, 5, 5},
		{"negative maxSize", 8, -1, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := testServer(t, &wsconn.Config{MaxMessageSize: tc.cfgMax}, sizesUnder(tc.maxSize))
			c := dialRaw(t, url)
			c.frame(frames.OpBinary, true, make([]byte, tc.limit))
			c.frame(frames.OpText, false, bytesOf('a', tc.limit-1))
			c.frame(frames.OpContinuation, true, []byte("b"))
			for _, want := range []string{fmt.Sprintf("binary %d", tc.limit), fmt.Sprintf("text %d", tc.limit)} {
				if h, p := c.read(); h.Op != frames.OpText || string(p) != want {
					t.Fatalf("got %v %q, want %q", h.Op, p, want)
				}
			}
			c.frame(frames.OpText, false, []byte("a"))
			cfgpAnnounce(c, frames.OpContinuation, true, int64(tc.limit)) // one byte over, never sent
			c.expectClose(frames.CloseMessageTooBig)
		})
	}
}

// Extension.Param: "the value of e's first parameter called name, and
// whether e has one"; names are compared as written, case included.
// String: the header form, a value that is not a token quoted.
func TestGodocExtensionParamAndString(t *testing.T) {
	e := wsconn.Extension{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{
		{Name: "server_max_window_bits", Value: "10"},
		{Name: "server_no_context_takeover"},
		{Name: "server_max_window_bits", Value: "12"},
		{Name: "x", Value: "a b"},
	}}
	if v, ok := e.Param("server_max_window_bits"); !ok || v != "10" {
		t.Errorf("Param = %q %v, want the first, 10", v, ok)
	}
	if v, ok := e.Param("server_no_context_takeover"); !ok || v != "" {
		t.Errorf("Param of a parameter without value = %q %v", v, ok)
	}
	if _, ok := e.Param("Server_Max_Window_Bits"); ok {
		t.Error("Param matched a name written in another case")
	}
	if _, ok := e.Param("client_max_window_bits"); ok {
		t.Error("Param found a parameter e lacks")
	}
	want := `permessage-deflate; server_max_window_bits=10; server_no_context_takeover; server_max_window_bits=12; x="a b"`
	if got := e.String(); got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

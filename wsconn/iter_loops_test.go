package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvIterServe serves handler with wsconn.Serve on a loopback port, one
// connection expected; the returned channel closes once Serve has returned
// (the connection is over and its transport closed).
func rvIterServe(t *testing.T, cfg *wsconn.Config, handler handlerFunc) (string, <-chan struct{}) {
	t.Helper()
	return rvIterServeCtx(t, context.Background(), cfg, handler)
}

// rvIterServeCtx is rvIterServe with the context given to Serve.
func rvIterServeCtx(t *testing.T, ctx context.Context, cfg *wsconn.Config, handler handlerFunc) (string, <-chan struct{}) {
	t.Helper()
	if cfg == nil {
		cfg = &wsconn.Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	served := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = wsconn.Serve(ctx, u, struct{}{}, handler, cfg)
			once.Do(func() { close(served) })
		}()
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), served
}

// rvIterHeader sends the header of a masked frame (zero mask key, so the
// payload goes as it is) announcing n payload bytes.
func (c *rawClient) rvIterHeader(op frames.Opcode, fin bool, n int64) {
	c.t.Helper()
	var hb [frames.MaxHeaderSize]byte
	k := frames.PutHeader(hb[:], frames.Header{Op: op, Fin: fin, Masked: true, Length: n})
	c.write(hb[:k])
}

// A Readers body that has read enough of a message and returns an error
// (here the *CloseError the docs recommend) must close the connection
// with that code promptly. The docs advise bounding a Readers message with
// io.LimitReader; the body then gives up on a message that goes on, and
// what it left unread must not hold the handler hostage: the peer below
// keeps trickling a 64 MiB frame, and the CLOSE should come at once, not
// after the whole rest has been discarded.
func TestReadersBodyReturningMidMessageClosesPromptly(t *testing.T) {
	for _, fragmented := range []bool{false, true} {
		name := "one huge frame"
		if fragmented {
			name = "endless fragments"
		}
		t.Run(name, func(t *testing.T) {
			returned := make(chan struct{})
			url, _ := testServer(t, &wsconn.Config{PingInterval: -1, CloseTimeout: time.Second}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				defer close(returned)
				for _, r := range in.Readers() {
					b, _ := io.ReadAll(io.LimitReader(r, 1024))
					if len(b) == 1024 {
						return &wsconn.CloseError{Code: frames.CloseMessageTooBig, Reason: "upload too large"}
					}
				}
				return in.Err()
			})
			c := dialRaw(t, url)
			chunk := bytes.Repeat([]byte("x"), 2048)
			var tick []byte
			if fragmented {
				c.frame(frames.OpBinary, false, chunk)
				tick = maskedFrame(frames.Header{Op: frames.OpContinuation}, bytes.Repeat([]byte("y"), 512))
			} else {
				c.rvIterHeader(frames.OpBinary, true, 64<<20)
				c.write(chunk)
				tick = bytes.Repeat([]byte("y"), 512) // zero mask: payload as is
			}
			stop := make(chan struct{})
			writing := c.writeEvery(5*time.Millisecond, tick, stop)
			defer func() {
				close(stop)
				<-writing
				c.nc.Close()
				<-returned
			}()
			select {
			case <-returned:
			case <-time.After(3 * time.Second):
				t.Fatal("the handler returned its CloseError inside a Readers body and is still stuck 3 s later, discarding the peer's message")
			}
			c.expectClose(frames.CloseMessageTooBig)
		})
	}
}

// A loop started from a goroutine that outlived its connection (Serve has
// returned, the transport is closed) must end at once, yielding nothing,
// whatever the iterator, and never hang or panic; a reader kept from a
// Readers body reports ErrClosed.
func TestLoopFromLeakedGoroutineAfterServeReturned(t *testing.T) {
	for _, loop := range []string{"Messages", "Frames", "Readers", "kept reader"} {
		t.Run(loop, func(t *testing.T) {
			type result struct {
				yielded int
				err     error
				readErr error
			}
			res := make(chan result, 1)
			start := make(chan struct{})
			url, served := rvIterServe(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var kept io.Reader
				for _, r := range in.Readers() {
					kept = r
					break
				}
				go func() { // leaked on purpose: it outlives the handler
					<-start
					var r result
					switch loop {
					case "Messages":
						for range in.Messages(0) {
							r.yielded++
						}
					case "Frames":
						for range in.Frames() {
							r.yielded++
						}
					case "Readers":
						for range in.Readers() {
							r.yielded++
						}
					case "kept reader":
						_, r.readErr = kept.Read(make([]byte, 8))
					}
					r.err = in.Err()
					res <- r
				}()
				return nil
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("first"))
			c.frame(frames.OpText, true, []byte("unread"))
			c.expectClose(frames.CloseNormal)
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			waitFor(t, served, "Serve to return")
			close(start)
			r := waitWithin(t, res, 3*time.Second, "the leaked goroutine's loop to end")
			if r.yielded != 0 {
				t.Errorf("a loop after the connection was over yielded %d values", r.yielded)
			}
			if loop == "kept reader" && !errors.Is(r.readErr, wsconn.ErrClosed) {
				t.Errorf("kept reader read after Serve returned: %v, want ErrClosed", r.readErr)
			}
			t.Logf("in.Err() = %v", r.err)
		})
	}
}

// A reader from Readers handed to another goroutine that keeps reading
// after the loop body returned (a leaked goroutine, as the docs warn
// against) must get ErrClosed from the Read, the way the same goroutine
// does (TestPromiseReaderIsBorrowed), without a data race inside colibri:
// a framework may refuse a misuse, not corrupt its own state with it.
func TestReaderReadFromAGoroutineAfterTheBodyReturned(t *testing.T) {
	lateErr := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		first := true
		for _, r := range in.Readers() {
			if !first {
				continue
			}
			first = false
			b := make([]byte, 2)
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			// The body hands the reader over and returns at once; the
			// goroutine reads on without any synchronisation with the
			// loop, as a careless body's goroutine would.
			go func() {
				var err error
				buf := make([]byte, 1)
				for err == nil {
					_, err = r.Read(buf)
				}
				lateErr <- err
			}()
		}
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("ab"))
	for range 50 {
		c.frame(frames.OpContinuation, false, []byte("cdefgh"))
	}
	c.frame(frames.OpContinuation, true, []byte("z"))
	c.frame(frames.OpText, true, []byte("second"))
	err := waitFor(t, lateErr, "the goroutine's reads to fail")
	if !errors.Is(err, wsconn.ErrClosed) && !errors.Is(err, io.EOF) {
		t.Errorf("late Read: %v", err)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

// "A reader from Readers is ... valid only in its loop body": valid
// includes a goroutine the body waits for. A body that streams the
// message from another goroutine while it waits (longer than the 20 ms
// after which the background reader would take over) gets the whole
// message, fragments and PINGs between them included, and the next
// message follows intact.
func TestReaderReadByAGoroutineTheBodyWaitsFor(t *testing.T) {
	got := make(chan []string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var seen []string
		for kind, r := range in.Readers() {
			done := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(r)
				done <- b
			}()
			seen = append(seen, kind.String()+" "+string(<-done))
			if len(seen) == 2 {
				break
			}
		}
		got <- seen
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("slow "))
	time.Sleep(40 * time.Millisecond) // the body waits past the background reader's 20 ms
	c.frame(frames.OpPing, true, []byte("p"))
	if h, p := c.read(); h.Op != frames.OpPong || string(p) != "p" {
		t.Fatalf("got %v %q, want the PONG", h.Op, p)
	}
	c.frame(frames.OpContinuation, false, []byte("upload "))
	time.Sleep(40 * time.Millisecond)
	c.frame(frames.OpContinuation, true, []byte("done"))
	c.frame(frames.OpBinary, true, []byte("next"))
	seen := waitFor(t, got, "the handler")
	want := []string{"text slow upload done", "binary next"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", seen, want)
	}
	c.expectClose(frames.CloseNormal)
}

// "If a Frames loop left a fragmented message half-read", a following
// Readers loop (the docs: "the next loop, with the same or another
// iterator, continues where the last one stopped") yields the rest of it,
// with the kind of the message, not of its continuation frame.
func TestReadersFinishesWhatFramesLeftHalfRead(t *testing.T) {
	got := make(chan []string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var seen []string
		for f := range in.Frames() {
			seen = append(seen, f.Op.String()+" "+string(f.Payload))
			break
		}
		for kind, r := range in.Readers() {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			seen = append(seen, kind.String()+" "+string(b))
			if len(seen) == 3 {
				break
			}
		}
		got <- seen
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("h\xc3"))
	c.frame(frames.OpContinuation, false, []byte("\xa9llo "))
	c.frame(frames.OpContinuation, true, []byte("world"))
	c.frame(frames.OpBinary, true, []byte("next"))
	seen := waitFor(t, got, "the loops")
	want := []string{"text h\xc3", "text \xa9llo world", "binary next"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", seen, want)
	}
	c.expectClose(frames.CloseNormal)
}

// Two loops started at the same instant from two goroutines: exactly one
// ranges and sees every message, the other ends at once, yielding nothing
// (with ErrBusyReading, unless the other's start reset the connection's
// Err first), whichever iterators they use.
func TestTwoLoopsStartedTogether(t *testing.T) {
	for _, pair := range [][2]string{{"Messages", "Messages"}, {"Frames", "Readers"}, {"Readers", "Messages"}} {
		t.Run(pair[0]+"+"+pair[1], func(t *testing.T) {
			type result struct {
				got []string
				err error
			}
			results := make(chan result, 2)
			url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var ready sync.WaitGroup
				ready.Add(2)
				gate := make(chan struct{})
				for _, loop := range pair {
					_ = s.Go(func(ctx context.Context) error {
						var r result
						ready.Done()
						<-gate
						switch loop {
						case "Messages":
							for m := range in.Messages(0) {
								r.got = append(r.got, m.Text())
							}
						case "Frames":
							for f := range in.Frames() {
								r.got = append(r.got, string(f.Payload))
							}
						case "Readers":
							for _, rd := range in.Readers() {
								b, _ := io.ReadAll(rd)
								r.got = append(r.got, string(b))
							}
						}
						if errors.Is(in.Err(), wsconn.ErrBusyReading) {
							r.err = wsconn.ErrBusyReading // in.Err is the connection's: read it as the loop ends
						}
						results <- r
						return nil
					})
				}
				ready.Wait()
				close(gate)
				<-ctx.Done()
				return nil
			})
			c := dialRaw(t, url)
			// in.Err is the connection's: the ranging loop's start may reset
			// it before the other reads its ErrBusyReading, so only what
			// the refused loop yielded tells.
			r1 := waitFor(t, results, "the first loop to end")
			if len(r1.got) != 0 {
				t.Fatalf("the loop that ended first yielded %q (Err %v); want nothing", r1.got, r1.err)
			}
			for _, m := range []string{"a", "b", "c"} {
				c.frame(frames.OpText, true, []byte(m))
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
			r2 := waitFor(t, results, "the ranging loop")
			if r2.err != nil || strings.Join(r2.got, "") != "abc" {
				t.Fatalf("the ranging loop yielded %q, err %v; want abc and no ErrBusyReading", r2.got, r2.err)
			}
		})
	}
}

// "A yielded payload is borrowed. It stays valid until the loop body
// returns": while a body holds a payload past the 20 ms after which the
// background reader reads on (answering the PING behind more messages,
// which it keeps), the payload is untouched; the messages read meanwhile
// reach the next iterations intact.
func TestPayloadValidWhileTheBackgroundReaderReads(t *testing.T) {
	for _, loop := range []string{"Messages", "Frames"} {
		t.Run(loop, func(t *testing.T) {
			pinged := make(chan struct{})
			got := make(chan []string, 1)
			url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var seen []string
				check := func(p []byte) bool {
					if len(seen) == 0 {
						want := bytes.Repeat([]byte("A"), 3000)
						<-pinged // the background reader has read the messages behind
						if !bytes.Equal(p, want) {
							seen = append(seen, "first payload changed during its body")
						}
					}
					seen = append(seen, string(p[:1]))
					return len(seen) < 3
				}
				switch loop {
				case "Messages":
					for m := range in.Messages(0) {
						if !check(m.Payload) {
							break
						}
					}
				case "Frames":
					for f := range in.Frames() {
						if !check(f.Payload) {
							break
						}
					}
				}
				got <- seen
				return nil
			})
			c := dialRaw(t, url)
			c.frame(frames.OpBinary, true, bytes.Repeat([]byte("A"), 3000))
			c.frame(frames.OpBinary, true, bytes.Repeat([]byte("B"), 3000))
			c.frame(frames.OpBinary, true, bytes.Repeat([]byte("C"), 3000))
			c.frame(frames.OpPing, true, []byte("behind"))
			if h, p := c.read(); h.Op != frames.OpPong || string(p) != "behind" {
				t.Fatalf("got %v %q, want the PONG", h.Op, p)
			}
			close(pinged)
			seen := waitFor(t, got, "the handler")
			if strings.Join(seen, "") != "ABC" {
				t.Fatalf("got %q, want A, B, C with the first payload intact", seen)
			}
			c.expectClose(frames.CloseNormal)
		})
	}
}

// in.Err after each way a loop ends, for every iterator (handlers.md,
// "Err after the loop"): peer CLOSE with 1000, 1001, no code (nil);
// with 4001 and a reason (a *CloseError with Err nil, the code and
// reason); invalid UTF-8 split across fragments with a PING between them
// (1007, a Violation); idle timeout (1001 wrapping ErrIdleTimeout); the
// context given to Serve ending (its cause: not a clean nil).
func TestErrAfterEachEnding(t *testing.T) {
	type ending struct {
		name  string
		cfg   wsconn.Config
		send  func(c *rawClient)
		close frames.CloseCode // what the server sends
		check func(err error) bool
	}
	peerClose := func(p []byte) func(c *rawClient) {
		return func(c *rawClient) { c.frame(frames.OpClose, true, p) }
	}
	isNil := func(err error) bool { return err == nil }
	endings := []ending{
		{"peer 1000", wsconn.Config{}, peerClose(closePayload(1000, "done")), 1000, isNil},
		{"peer 1001", wsconn.Config{}, peerClose(closePayload(1001, "")), 1001, isNil},
		{"peer no code", wsconn.Config{}, peerClose(nil), frames.CloseNoStatus, isNil},
		{"peer 4001 reason", wsconn.Config{}, peerClose(closePayload(4001, "bye now")), 4001, func(err error) bool {
			ce, ok := errors.AsType[*wsconn.CloseError](err)
			return ok && ce.Code == 4001 && ce.Reason == "bye now" && ce.Err == nil
		}},
		{"utf8 split around a ping", wsconn.Config{}, func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("ok \xe2\x82"))
			c.frame(frames.OpPing, true, []byte("mid"))
			c.frame(frames.OpContinuation, true, []byte("(")) // E2 82 28: bad third byte
		}, 1007, func(err error) bool {
			_, isV := errors.AsType[*frames.Violation](err)
			return isV && errors.Is(err, messages.ErrInvalidUTF8) && wsconn.CloseStatus(err) == 1007
		}},
		{"frame over MaxFrameSize", wsconn.Config{MaxFrameSize: 10}, func(c *rawClient) {
			c.frame(frames.OpBinary, true, make([]byte, 11))
		}, 1009, func(err error) bool {
			_, isV := errors.AsType[*frames.Violation](err)
			return isV && errors.Is(err, messages.ErrTooLarge) && wsconn.CloseStatus(err) == 1009
		}},
		{"idle timeout", wsconn.Config{IdleTimeout: 200 * time.Millisecond}, func(*rawClient) {}, 1001, func(err error) bool {
			return errors.Is(err, wsconn.ErrIdleTimeout) && wsconn.CloseStatus(err) == 1001
		}},
	}
	for _, e := range endings {
		for _, loop := range []string{"Messages", "Frames", "Readers"} {
			t.Run(e.name+"/"+loop, func(t *testing.T) {
				errc := make(chan error, 1)
				cfg := e.cfg
				url, _ := testServer(t, &cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					switch loop {
					case "Messages":
						for range in.Messages(0) {
						}
					case "Frames":
						for range in.Frames() {
						}
					case "Readers":
						for _, r := range in.Readers() {
							_, _ = io.Copy(io.Discard, r)
						}
					}
					errc <- in.Err()
					return in.Err()
				})
				c := dialRaw(t, url)
				e.send(c)
				c.expectClose(e.close)
				if err := waitFor(t, errc, "the loop"); !e.check(err) {
					t.Fatalf("in.Err() = %v (%T)", err, err)
				}
			})
		}
	}
}

// "the context given to wsconn.Serve ... ended": the connection closes
// with 1001, and a loop ranging then ends with in.Err() reporting that
// cause (handlers.md: "another cause of ctx"), not nil, whatever the
// iterator.
func TestErrWhenServesContextEnds(t *testing.T) {
	for _, loop := range []string{"Messages", "Frames", "Readers"} {
		t.Run(loop, func(t *testing.T) {
			why := errors.New("review: operator pulled the plug")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			errc := make(chan error, 1)
			ranging := make(chan struct{})
			url, _ := rvIterServeCtx(t, ctx, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				switch loop {
				case "Messages":
					for range in.Messages(0) {
						close(ranging)
					}
				case "Frames":
					for range in.Frames() {
						close(ranging)
					}
				case "Readers":
					for _, r := range in.Readers() {
						_, _ = io.Copy(io.Discard, r)
						close(ranging)
					}
				}
				errc <- in.Err()
				return in.Err()
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("hi"))
			waitFor(t, ranging, "the loop to range")
			cancel(why)
			c.expectClose(frames.CloseGoingAway)
			err := waitFor(t, errc, "the loop")
			if !errors.Is(err, why) {
				t.Fatalf("in.Err() = %v, want the cause of Serve's context", err)
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseGoingAway, ""))
		})
	}
}

// "a running loop yields every message the peer sent before its CLOSE,
// whoever read the CLOSE": a Readers body that stops reading mid-message
// until the background reader has taken the peer's CLOSE (its context
// ends) then reads the rest of the message whole, and the loop yields the
// message that followed, before ending with nil.
func TestReadersBodyFinishesItsMessageAfterThePeersClose(t *testing.T) {
	got := make(chan []string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var seen []string
		for _, r := range in.Readers() {
			if len(seen) == 0 {
				b := make([]byte, 1)
				if _, err := io.ReadFull(r, b); err != nil {
					return err
				}
				<-ctx.Done() // busy until the background reader takes the CLOSE
				rest, err := io.ReadAll(r)
				seen = append(seen, string(b)+string(rest)+errString(err))
				continue
			}
			b, err := io.ReadAll(r)
			seen = append(seen, string(b)+errString(err))
		}
		seen = append(seen, "err="+errString(in.Err()))
		got <- seen
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("hel"))
	c.frame(frames.OpContinuation, false, []byte("lo "))
	c.frame(frames.OpPing, true, nil)
	c.frame(frames.OpContinuation, true, []byte("world"))
	c.frame(frames.OpBinary, true, []byte("second"))
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, "bye"))
	c.expectClose(frames.CloseNormal)
	seen := waitFor(t, got, "the handler")
	if want := "hello world|second|err="; strings.Join(seen, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(seen, "|"), want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// handlers.md, "The reading contract": a running loop yields the frames
// kept before the peer's CLOSE; a loop begun after the context ended
// yields nothing (the Inbound godoc), so a message kept while no loop ran
// (between two loops) is not yielded.
func TestNewLoopAfterTheCloseYieldsNothing(t *testing.T) {
	got := make(chan []string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var seen []string
		for m := range in.Messages(0) {
			seen = append(seen, m.Text())
			break
		}
		<-ctx.Done() // between two loops: the background reader keeps "two", takes the CLOSE
		for m := range in.Messages(0) {
			seen = append(seen, m.Text())
		}
		seen = append(seen, "err="+errString(in.Err()))
		got <- seen
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("one"))
	c.frame(frames.OpText, true, []byte("two"))
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	seen := waitFor(t, got, "the handler")
	if want := "one|err="; strings.Join(seen, "|") != want {
		t.Fatalf("got %q, want %q (the kept \"two\" is not yielded by a loop begun after the close)", strings.Join(seen, "|"), want)
	}
}

package wsconn_test

// Adversarial tests of the writing side of a connection (outbound.go,
// write.go, prepared.go, deflate.go): many concurrent writers of every
// kind racing each other and the close, slow peers, compression with
// small fragments, Writer edge cases, cancelled contexts, and what Stats
// and the observer count after partial failures. Every peer checks the
// frames it gets byte by byte.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// ---- a peer that checks every frame ----

// wadvEvent is what a wadvWire saw: a whole data message, or a control
// frame.
type wadvEvent struct {
	op         frames.Opcode // OpText/OpBinary for messages
	compressed bool
	frames     int
	maxFrame   int    // the longest frame payload, as sent
	payload    []byte // inflated for compressed messages
}

// wadvWire reads a server's frames and checks RFC 6455/7692 framing: no
// data frame inside another message, control frames whole and short,
// RSV1 only on the first frame of a message and only with compression,
// nothing after the CLOSE, no frame longer than maxFrag.
type wadvWire struct {
	t         *testing.T
	br        *bufio.Reader
	nc        net.Conn
	deflate   bool
	takeover  bool   // the server keeps its context: inflate with a window
	window    []byte // the last 32 KiB the server compressed
	maxFrag   int    // 0: no limit
	closeSeen bool
	trace     []string
	msg       *wadvEvent // the message being read, across control frames
	body      []byte
}

// frame reads the server's next frame, waiting at most 10 s.
func (w *wadvWire) frame() (frames.Header, []byte, error) {
	_ = w.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return readFrame(w.br)
}

// next returns the next message or control frame; it fails the test on
// any framing error.
func (w *wadvWire) next() wadvEvent {
	w.t.Helper()
	for {
		msg, body := w.msg, w.body
		h, p, err := w.frame()
		if err != nil {
			w.t.Fatalf("reading the server: %v", err)
		}
		w.trace = append(w.trace, fmt.Sprintf("%v fin=%v rsv=%d len=%d %.12q", h.Op, h.Fin, h.Rsv, len(p), p))
		if len(w.trace) > 12 {
			w.trace = w.trace[1:]
		}
		if w.closeSeen {
			w.t.Fatalf("frame %v after the server's CLOSE", h.Op)
		}
		if h.Masked {
			w.t.Fatal("server frame masked")
		}
		if h.Op.IsControl() {
			if !h.Fin || h.Length > frames.MaxControlPayload || h.Rsv != 0 {
				w.t.Fatalf("bad control frame %+v", h)
			}
			if h.Op == frames.OpClose {
				w.closeSeen = true
			}
			return wadvEvent{op: h.Op, payload: p}
		}
		if w.maxFrag > 0 && len(p) > w.maxFrag {
			w.t.Fatalf("data frame of %d bytes, FragmentSize %d", len(p), w.maxFrag)
		}
		switch {
		case msg == nil && h.Op == frames.OpContinuation:
			w.t.Fatalf("continuation frame without a message; last frames:\n%s", strings.Join(w.trace, "\n"))
		case msg != nil && h.Op != frames.OpContinuation:
			w.t.Fatalf("new %v frame inside a fragmented message (interleaved); last frames:\n%s", h.Op, strings.Join(w.trace, "\n"))
		case msg == nil:
			if h.Rsv&^frames.Rsv1 != 0 || (h.Rsv != 0 && !w.deflate) {
				w.t.Fatalf("first frame with RSV %b", h.Rsv)
			}
			msg = &wadvEvent{op: h.Op, compressed: h.Rsv != 0}
		default:
			if h.Rsv != 0 {
				w.t.Fatalf("continuation frame with RSV %b", h.Rsv)
			}
		}
		msg.frames++
		msg.maxFrame = max(msg.maxFrame, len(p))
		body = append(body, p...)
		w.msg, w.body = msg, body
		if !h.Fin {
			continue
		}
		w.msg, w.body = nil, nil
		if msg.compressed {
			var dict []byte
			if w.takeover {
				dict = w.window
			}
			out, err := cmpInflate(body, dict)
			if err != nil {
				w.t.Fatalf("message does not inflate: %v", err)
			}
			if w.takeover {
				w.window = append(w.window, out...)
				if len(w.window) > 32<<10 {
					w.window = append([]byte(nil), w.window[len(w.window)-32<<10:]...)
				}
			}
			body = out
		}
		msg.payload = body
		return *msg
	}
}

// send sends a masked frame from the peer.
func (w *wadvWire) send(op frames.Opcode, payload []byte) {
	h := frames.Header{Op: op, Fin: true}
	_, _ = rand.Read(h.Mask[:])
	_ = w.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.nc.Write(maskedFrame(h, payload)); err != nil {
		w.t.Errorf("peer write: %v", err)
	}
}

// wadvDial opens a raw connection offering ext (if any), with a small
// receive buffer when small is set, so that a peer that reads slowly
// holds the server's writes back soon.
func wadvDial(t *testing.T, url, ext string, small bool) (*wadvWire, *http.Response) {
	t.Helper()
	d := &net.Dialer{}
	if small {
		d = smallBufferDialer()
	}
	var extra http.Header
	if ext != "" {
		extra = http.Header{"Sec-WebSocket-Extensions": {ext}}
	}
	c, resp := handshakeRawWith(t, d, url, extra)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d", resp.StatusCode)
	}
	on := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	if (ext != "") != on {
		t.Fatalf("offered %q, answer %q", ext, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return &wadvWire{t: t, br: c.br, nc: c.nc, deflate: on,
		takeover: on && !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "server_no_context_takeover")}, resp
}

// ---- many writers of every kind, racing the close ----

// wadvLog records which writes returned nil and what the failed ones
// returned.
type wadvLog struct {
	mu    sync.Mutex
	ok    map[string]bool // ids of messages and pings whose write returned nil
	errs  []error
	count atomic.Int64 // writes that returned nil
}

func (l *wadvLog) done(id string, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("%s: %w", id, err))
		return false
	}
	if l.ok[id] {
		panic("id twice: " + id)
	}
	l.ok[id] = true
	l.count.Add(1)
	return true
}

// wadvPayload is the message id followed by n filler letters.
func wadvPayload(id string, r *mrand.Rand, n int) []byte {
	b := []byte(id + "|")
	for range n {
		b = append(b, 'a'+byte(r.IntN(4))) // compressible
	}
	return b
}

// wadvWriters runs writers of every kind (one goroutine per kind, twice)
// until a write fails or each made limit writes (0: until a write fails).
// Ids are "g/seq"; pings are "P"+id.
func wadvWriters(ctx context.Context, out *wsconn.Outbound, log *wadvLog, limit int) {
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(g), 1))
			for seq := 0; limit == 0 || seq < limit; seq++ {
				if limit == 0 && seq > 20000 {
					return // safety
				}
				id := fmt.Sprintf("%d/%d", g, seq)
				size := r.IntN(700)
				var err error
				switch g % 6 {
				case 0:
					err = out.WriteText(ctx, string(wadvPayload(id, r, size)))
				case 1:
					err = out.WriteBinary(ctx, wadvPayload(id, r, size), wsconn.Uncompressed)
				case 2:
					err = out.WriteMessage(ctx, messages.Message{Kind: messages.KindBinary, Payload: wadvPayload(id, r, size)})
				case 3:
					p := wadvPayload(id, r, size)
					var w io.WriteCloser
					if seq%2 == 0 {
						w, err = out.Writer(ctx, messages.KindText)
					} else {
						w, err = out.Writer(ctx, messages.KindBinary, wsconn.Uncompressed)
					}
					if err == nil {
						for len(p) > 0 && err == nil {
							k := min(len(p), r.IntN(300))
							_, err = w.Write(p[:k]) // k may be 0
							p = p[k:]
						}
						if cerr := w.Close(); err == nil {
							err = cerr
						}
					}
				case 4:
					// A batch of three prepared messages: ids seq.0 to seq.2.
					var ps []*wsconn.Prepared
					for i := range 3 {
						ps = append(ps, wsconn.Prepare(messages.Text(string(wadvPayload(id+"."+strconv.Itoa(i), r, size)))))
					}
					n, berr := out.WritePreparedBatch(ctx, ps)
					for i := range 3 {
						var e error
						if i >= n {
							e = berr
							if e == nil {
								e = errors.New("batch returned n < len without an error")
							}
						}
						log.done(id+"."+strconv.Itoa(i), e)
					}
					if berr != nil {
						return
					}
					continue
				case 5:
					err = out.Ping(ctx, []byte("P"+id))
					id = "P" + id
				}
				if !log.done(id, err) {
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestWriteAdvEveryWriterKindRacesTheClose(t *testing.T) {
	type mode struct {
		name     string
		ext      string // the peer's offer
		takeover bool
		close    string // "none", "out" (out.Close), "peer" (the peer's CLOSE)
	}
	var modes []mode
	for _, c := range []string{"none", "out", "peer"} {
		modes = append(modes,
			mode{"plain/" + c, "", false, c},
			mode{"deflate/" + c, "permessage-deflate", false, c},
			mode{"takeover/" + c, "permessage-deflate", true, c})
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			const frag = 64
			cfg := &wsconn.Config{FragmentSize: frag, PingInterval: -1,
				Compression: wsconn.Compression{Enabled: m.ext != "", Threshold: 100, ContextTakeover: m.takeover}}
			log := &wadvLog{ok: map[string]bool{}}
			finished := make(chan struct{})
			url, _ := testServerAccept(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				defer close(finished)
				switch m.close {
				case "none":
					wadvWriters(ctx, out, log, 40)
				case "out":
					closed := make(chan error, 1)
					go func() {
						for deadline := time.Now().Add(5 * time.Second); log.count.Load() < 150 && time.Now().Before(deadline); {
							time.Sleep(time.Millisecond)
						}
						closed <- out.Close(4000, "bye")
					}()
					wadvWriters(ctx, out, log, 0)
					if err := <-closed; err != nil {
						t.Errorf("out.Close: %v", err)
					}
				case "peer":
					wadvWriters(ctx, out, log, 0)
				}
				return nil
			})
			w, _ := wadvDial(t, url, m.ext, false)
			wantCode := map[string]frames.CloseCode{"none": 1000, "out": 4000, "peer": 4001}[m.close]
			got := map[string]bool{}
			last := map[string]int{} // writer -> last seq seen
			var pings []string
			data, peerClosed := 0, false
			for {
				e := w.next()
				if e.op == frames.OpClose {
					code, _, err := frames.ParseClose(e.payload)
					if err != nil || code != wantCode {
						t.Fatalf("server CLOSE %v %v, want %v", code, err, wantCode)
					}
					break
				}
				switch e.op {
				case frames.OpPing:
					pings = append(pings, string(e.payload))
					continue
				case frames.OpPong:
					if string(e.payload) != "peer" {
						t.Fatalf("PONG %q", e.payload)
					}
					continue
				}
				id, _, ok := strings.Cut(string(e.payload), "|")
				if !ok {
					t.Fatalf("message %q", e.payload)
				}
				if got[id] {
					t.Fatalf("message %s twice", id)
				}
				got[id] = true
				g, rest, _ := strings.Cut(id, "/")
				seqStr, _, _ := strings.Cut(rest, ".")
				seq, _ := strconv.Atoi(seqStr)
				if prev, seen := last[g]; seen && seq < prev {
					t.Fatalf("writer %s: message %d after %d", g, seq, prev)
				}
				last[g] = seq
				// Prepared messages go out as one frame, whatever their size.
				// The final frame of a compressed Writer may be longer:
				// TestWriteAdvCompressedWriterFramesOverFragmentSize.
				if gi, _ := strconv.Atoi(g); gi%6 != 4 && !(gi%6 == 3 && e.compressed) && e.maxFrame > frag {
					t.Fatalf("message %s has a frame of %d bytes, FragmentSize %d", id, e.maxFrame, frag)
				}
				data++
				if data%25 == 0 && !peerClosed {
					w.send(frames.OpPing, []byte("peer"))
				}
				if m.close == "peer" && data == 150 {
					w.send(frames.OpClose, closePayload(4001, "peer bye"))
					peerClosed = true
				}
			}
			if !peerClosed {
				w.send(frames.OpClose, closePayload(wantCode, ""))
			}
			waitFor(t, finished, "the handler")
			_ = w.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := io.Copy(io.Discard, w.br); n != 0 || err != nil {
				t.Errorf("after the CLOSE: %d bytes, %v", n, err)
			}

			log.mu.Lock()
			defer log.mu.Unlock()
			for _, p := range pings {
				got[p] = true
			}
			for id := range log.ok {
				if !got[id] {
					t.Errorf("write %s returned nil but did not arrive before the CLOSE", id)
				}
			}
			for id := range got {
				if !log.ok[id] {
					t.Errorf("%s arrived but its write did not return nil", id)
				}
			}
			if m.close == "none" && len(log.errs) > 0 {
				t.Errorf("writes failed on an open connection: %v", log.errs[0])
			}
			for _, err := range log.errs {
				if !errors.Is(err, wsconn.ErrClosed) || wsconn.CloseStatus(err) != wantCode {
					t.Errorf("refused write: %v (status %v), want ErrClosed wrapping %v", err, wsconn.CloseStatus(err), wantCode)
					break
				}
			}
			if m.close != "none" && len(log.errs) == 0 {
				t.Error("no write was refused")
			}
		})
	}
}

// ---- a slow peer while control frames are due ----

// TestWriteAdvSlowPeerGetsControlFramesBetweenFragments: a peer with a
// tiny receive buffer reads a long message slowly; the PONG to its PING
// and colibri's own Ping go out between the fragments, and a second
// writer's message waits for the end of the long one.
func TestWriteAdvSlowPeerGetsControlFramesBetweenFragments(t *testing.T) {
	const size, frag = 12 << 20, 4096
	for _, tc := range []struct {
		name, ext string
		writer    bool
	}{
		{"WriteBinary", "", false},
		{"Writer", "", true},
		{"compressed Writer", "permessage-deflate", true},
		{"compressed WriteBinary", "permessage-deflate", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pinged := make(chan error, 1)
			waiting := make(chan error, 1)
			started := make(chan struct{}) // the peer has the first fragment
			url, _ := testServerAccept(t, &wsconn.Config{FragmentSize: frag, PingInterval: -1, Compression: wsconn.Compression{Enabled: tc.ext != ""}},
				func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					big := cmpRandom(1, size) // does not compress
					_ = s.Go(func(ctx context.Context) error {
						<-started
						pinged <- out.Ping(ctx, []byte("srv"))
						waiting <- out.WriteText(ctx, "after")
						return nil
					})
					if tc.writer {
						w, err := out.Writer(ctx, messages.KindBinary)
						if err != nil {
							return err
						}
						for p := big; len(p) > 0; p = p[min(len(p), 100<<10):] {
							if _, err := w.Write(p[:min(len(p), 100<<10)]); err != nil {
								return err
							}
						}
						if err := w.Close(); err != nil {
							return err
						}
					} else {
						if err := out.WriteBinary(ctx, big); err != nil {
							return err
						}
					}
					for range in.Messages(0) {
					}
					return in.Err()
				})
			w, _ := wadvDial(t, url, tc.ext, true)
			w.maxFrag = frag
			// Read the first data frame by hand, then ask for a PONG and let
			// the server's second writer go.
			var seenPong, seenPing bool
			if h, _, err := w.frame(); err != nil || h.Fin || h.Op != frames.OpBinary {
				t.Fatalf("first frame %+v %v", h, err)
			}
			w.send(frames.OpPing, []byte("cli"))
			close(started)
			var frags int
			for {
				h, p, err := w.frame()
				if err != nil {
					t.Fatal(err)
				}
				if h.Op.IsControl() {
					switch {
					case h.Op == frames.OpPong && string(p) == "cli":
						seenPong = true
					case h.Op == frames.OpPing && string(p) == "srv" && !seenPing:
						seenPing = true
					default:
						t.Fatalf("control frame %v %q", h.Op, p)
					}
					continue
				}
				if h.Op != frames.OpContinuation || len(p) > frag {
					t.Fatalf("frame %v of %d bytes inside the long message", h.Op, len(p))
				}
				frags++
				if h.Fin {
					break
				}
			}
			if !seenPong || !seenPing {
				t.Fatalf("PONG seen %v, our PING seen %v before the end of the message (%d fragments)", seenPong, seenPing, frags)
			}
			if err := waitFor(t, pinged, "Ping"); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if e := w.next(); e.op != frames.OpText || string(e.payload) != "after" {
				t.Fatalf("after the long message: %v %q", e.op, e.payload)
			}
			if err := waitFor(t, waiting, "the waiting write"); err != nil {
				t.Fatal(err)
			}
			w.send(frames.OpClose, closePayload(1000, ""))
			if e := w.next(); e.op != frames.OpClose {
				t.Fatalf("got %v, want CLOSE", e.op)
			}
		})
	}
}

// ---- Writer edge cases ----

// TestWriteAdvWriterEdges: zero-length and huge writes fragment exactly,
// an empty message is one empty final frame, and a Writer open when
// out.Close is called finishes its message before the CLOSE; afterwards
// every call fails with ErrClosed carrying the code.
func TestWriteAdvWriterEdges(t *testing.T) {
	for _, ext := range []string{"", "permessage-deflate"} {
		t.Run("ext="+ext, func(t *testing.T) {
			const frag = 1000
			huge := cmpLetters(3, 3<<20+7)
			type res struct {
				name string
				err  error
			}
			results := make(chan res, 32)
			report := func(name string, err error) { results <- res{name, err} }
			url, _ := testServerAccept(t, &wsconn.Config{FragmentSize: frag, PingInterval: -1, Compression: wsconn.Compression{Enabled: ext != ""}},
				func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					// 1: an empty message, written with empty writes.
					w, err := out.Writer(ctx, messages.KindText)
					if err != nil {
						return err
					}
					n, err := w.Write(nil)
					report("empty write", errors.Join(err, wadvIf(n != 0, "n=%d", n)))
					n, err = w.Write([]byte{})
					report("empty write 2", errors.Join(err, wadvIf(n != 0, "n=%d", n)))
					report("empty close", w.Close())
					_, err = w.Write([]byte("x"))
					report("write after close", wadvWant(err, wsconn.ErrClosed))
					report("close twice", wadvWant(w.Close(), wsconn.ErrClosed))

					// 2: one huge write, exactly fragmented.
					w, err = out.Writer(ctx, messages.KindBinary, wsconn.Uncompressed)
					if err != nil {
						return err
					}
					n, err = w.Write(huge)
					report("huge write", errors.Join(err, wadvIf(n != len(huge), "n=%d", n)))
					report("huge close", w.Close())

					// 3: a Writer open across out.Close finishes first.
					w, err = out.Writer(ctx, messages.KindText)
					if err != nil {
						return err
					}
					_, err = w.Write([]byte(strings.Repeat("y", 2500)))
					report("before out.Close", err)
					closed := make(chan error, 1)
					go func() { closed <- out.Close(4002, "bye") }()
					report("out.Close", <-closed)
					_, err = w.Write([]byte("tail"))
					report("write after out.Close", err)
					report("close after out.Close", w.Close())
					_, err = out.Writer(ctx, messages.KindText)
					report("new Writer", wadvWantCode(err, 4002))
					report("WriteText", wadvWantCode(out.WriteText(ctx, "no"), 4002))
					report("Ping", wadvWantCode(out.Ping(ctx, nil), 4002))
					_, err = out.WritePreparedBatch(ctx, []*wsconn.Prepared{wsconn.Prepare(messages.Text("no"))})
					report("batch", wadvWantCode(err, 4002))
					report("Close again", wadvWant(out.Close(1000, ""), wsconn.ErrClosed))
					close(results)
					for range in.Messages(0) {
					}
					return nil
				})
			w, _ := wadvDial(t, url, ext, false)
			w.maxFrag = frag // compressed frames too
			if e := w.next(); e.op != frames.OpText || len(e.payload) != 0 || e.frames != 1 {
				t.Fatalf("empty message: %v %d bytes in %d frames", e.op, len(e.payload), e.frames)
			}
			e := w.next()
			if e.op != frames.OpBinary || e.compressed || !bytes.Equal(e.payload, huge) {
				t.Fatalf("huge message: %v compressed %v, %d bytes", e.op, e.compressed, len(e.payload))
			}
			if want := (len(huge) + frag - 1) / frag; e.frames != want {
				t.Fatalf("huge message in %d frames, want %d", e.frames, want)
			}
			e = w.next()
			if e.op != frames.OpText || string(e.payload) != strings.Repeat("y", 2500)+"tail" {
				t.Fatalf("message across out.Close: %v %q", e.op, e.payload)
			}
			if e := w.next(); e.op != frames.OpClose {
				t.Fatalf("got %v, want CLOSE", e.op)
			}
			for r := range results {
				if r.err != nil {
					t.Errorf("%s: %v", r.name, r.err)
				}
			}
			w.send(frames.OpClose, closePayload(4002, ""))
		})
	}
}

func wadvIf(bad bool, format string, args ...any) error {
	if bad {
		return fmt.Errorf(format, args...)
	}
	return nil
}

func wadvWant(err, target error) error {
	if !errors.Is(err, target) {
		return fmt.Errorf("got %v, want %v", err, target)
	}
	return nil
}

func wadvWantCode(err error, code frames.CloseCode) error {
	if !errors.Is(err, wsconn.ErrClosed) || wsconn.CloseStatus(err) != code {
		return fmt.Errorf("got %v, want ErrClosed with %v", err, code)
	}
	return nil
}

// ---- cancelled contexts ----

// TestWriteAdvCancelledContext: a context that ended bounds only the wait
// for the writer: with a Writer open, writes with it fail at once with
// its cause and send nothing; once closing began they fail with
// ErrClosed instead.
func TestWriteAdvCancelledContext(t *testing.T) {
	cause := errors.New("caller gave up")
	results := make(chan error, 16)
	url, _ := testServerAccept(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		dead, cancel := context.WithCancelCause(ctx)
		cancel(cause)
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("owner"))
		done := make(chan struct{})
		go func() {
			defer close(done)
			results <- wadvWant(out.WriteText(dead, "no"), cause)
			_, err := out.Writer(dead, messages.KindText)
			results <- wadvWant(err, cause)
			n, err := out.WritePreparedBatch(dead, []*wsconn.Prepared{wsconn.Prepare(messages.Text("no"))})
			results <- errors.Join(wadvWant(err, cause), wadvIf(n != 0, "n=%d", n))
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			results <- errors.New("writes with an ended context waited")
		}
		if err := w.Close(); err != nil {
			return err
		}
		// The lock is free now: the write goes ahead.
		if err := out.WriteText(ctx, "next"); err != nil {
			return err
		}
		if err := out.Close(4003, ""); err != nil {
			return err
		}
		results <- wadvWantCode(out.WriteText(dead, "no"), 4003)
		results <- wadvWantCode(out.Ping(dead, nil), 4003)
		close(results)
		for range in.Messages(0) {
		}
		return nil
	})
	w, _ := wadvDial(t, url, "", false)
	for _, want := range []string{"owner", "next"} {
		if e := w.next(); e.op != frames.OpText || string(e.payload) != want {
			t.Fatalf("got %v %q, want %q", e.op, e.payload, want)
		}
	}
	if e := w.next(); e.op != frames.OpClose {
		t.Fatalf("got %v %q, want CLOSE", e.op, e.payload)
	}
	for err := range results {
		if err != nil {
			t.Error(err)
		}
	}
	w.send(frames.OpClose, closePayload(4003, ""))
}

// ---- counting after partial failures ----

// wadvObserver counts Sent events and keeps the final CloseInfo.
type wadvObserver struct {
	wsconn.NopObserver
	sent   atomic.Int64
	bytes  atomic.Int64
	closed chan wsconn.CloseInfo
}

func (o *wadvObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }
func (o *wadvObserver) Sent(_ messages.Kind, size int64)            { o.sent.Add(1); o.bytes.Add(size) }
func (o *wadvObserver) Closed(info wsconn.CloseInfo)                { o.closed <- info }

// TestWriteAdvBatchTimeoutCountsWhatWentOut: a peer that stops reading
// makes a long WritePreparedBatch time out; n is the number of messages
// the peer can then read whole, and Stats and the observer count exactly
// those.
func TestWriteAdvBatchTimeoutCountsWhatWentOut(t *testing.T) {
	const size, count = 64 << 10, 300
	obs := &wadvObserver{closed: make(chan wsconn.CloseInfo, 1)}
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	url, _ := testServerAccept(t, &wsconn.Config{WriteTimeout: 300 * time.Millisecond, PingInterval: -1, Observer: obs},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			var ps []*wsconn.Prepared
			for i := range count {
				p := bytes.Repeat([]byte{byte(i)}, size)
				ps = append(ps, wsconn.Prepare(messages.Binary(p)))
			}
			n, err := out.WritePreparedBatch(ctx, ps)
			wrote <- result{n, err}
			return nil
		})
	w, _ := wadvDial(t, url, "", true)
	r := waitFor(t, wrote, "the batch")
	if r.n >= count || r.n < 0 || !errors.Is(r.err, wsconn.ErrClosed) || !errors.Is(r.err, wsconn.ErrWriteTimeout) {
		t.Fatalf("WritePreparedBatch = %d, %v; want fewer than %d and ErrClosed wrapping ErrWriteTimeout", r.n, r.err, count)
	}
	info := waitFor(t, obs.closed, "the close")
	// Now read what went out: exactly n whole messages, then at most part
	// of one, then the end.
	whole := 0
	for {
		h, p, err := w.frame()
		if err != nil {
			break
		}
		if h.Op != frames.OpBinary || !h.Fin || len(p) != size || p[0] != byte(whole) {
			t.Fatalf("frame %d: %+v", whole, h)
		}
		whole++
	}
	if whole != r.n {
		t.Errorf("the peer read %d whole messages, WritePreparedBatch said %d", whole, r.n)
	}
	if info.MessagesOut != int64(r.n) || info.BytesOut != int64(r.n*size) || obs.sent.Load() != int64(r.n) {
		t.Errorf("counted %d messages, %d bytes, %d Sent events; want %d, %d, %d",
			info.MessagesOut, info.BytesOut, obs.sent.Load(), r.n, r.n*size, r.n)
	}
}

// TestWriteAdvMessageTimeoutCountsNothing: a fragmented message that
// times out halfway is not counted as sent, and BytesOut holds only the
// whole fragments that went out.
func TestWriteAdvMessageTimeoutCountsNothing(t *testing.T) {
	const size, frag = 16 << 20, 64 << 10
	obs := &wadvObserver{closed: make(chan wsconn.CloseInfo, 1)}
	wrote := make(chan error, 1)
	url, _ := testServerAccept(t, &wsconn.Config{WriteTimeout: 300 * time.Millisecond, FragmentSize: frag, PingInterval: -1, Observer: obs},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			if err := out.WriteText(ctx, "small"); err != nil {
				return err
			}
			err := out.WriteBinary(ctx, make([]byte, size))
			wrote <- err
			wrote <- out.WriteText(ctx, "after")
			return nil
		})
	w, _ := wadvDial(t, url, "", true)
	if err := waitFor(t, wrote, "the write"); !errors.Is(err, wsconn.ErrClosed) || !errors.Is(err, wsconn.ErrWriteTimeout) {
		t.Fatalf("write to a peer that stopped reading: %v", err)
	}
	if err := waitFor(t, wrote, "the later write"); !errors.Is(err, wsconn.ErrClosed) || !errors.Is(err, wsconn.ErrWriteTimeout) {
		t.Fatalf("write after the timeout: %v, want ErrClosed wrapping ErrWriteTimeout", err)
	}
	info := waitFor(t, obs.closed, "the close")
	var fragBytes int64
	for {
		h, p, err := w.frame()
		if err != nil {
			break
		}
		if h.Op != frames.OpText {
			fragBytes += int64(len(p))
		}
	}
	if info.MessagesOut != 1 || obs.sent.Load() != 1 {
		t.Errorf("counted %d messages and %d Sent events, want 1 (the unfinished one is not)", info.MessagesOut, obs.sent.Load())
	}
	// Whole fragments are counted; the peer may have got part of one more.
	if info.BytesOut-5 != fragBytes || fragBytes%frag != 0 {
		t.Errorf("BytesOut %d, the peer read %d bytes of the unfinished message", info.BytesOut, fragBytes)
	}
}

// TestWriteAdvBytesOutCountsCompressedPrepared: BytesOut counts "the
// payload bytes of data frames as they crossed the wire (compressed, when
// permessage-deflate is on)", for every way to write.
func TestWriteAdvBytesOutCountsCompressedPrepared(t *testing.T) {
	msg := bytes.Repeat([]byte("colibri compresses this well. "), 400)
	for _, way := range []string{"WriteBinary", "Writer", "WritePrepared", "WritePreparedBatch"} {
		t.Run(way, func(t *testing.T) {
			obs := &wadvObserver{closed: make(chan wsconn.CloseInfo, 1)}
			url, _ := testServerAccept(t, &wsconn.Config{PingInterval: -1, Observer: obs, Compression: wsconn.Compression{Enabled: true}},
				func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					var err error
					switch way {
					case "WriteBinary":
						err = out.WriteBinary(ctx, msg)
					case "Writer":
						var w io.WriteCloser
						if w, err = out.Writer(ctx, messages.KindBinary); err == nil {
							_, _ = w.Write(msg)
							err = w.Close()
						}
					case "WritePrepared":
						err = out.WritePrepared(ctx, wsconn.Prepare(messages.Binary(msg)))
					case "WritePreparedBatch":
						_, err = out.WritePreparedBatch(ctx, []*wsconn.Prepared{wsconn.Prepare(messages.Binary(msg))})
					}
					return err
				})
			w, _ := wadvDial(t, url, "permessage-deflate", false)
			var wire int64
			for {
				h, p, err := w.frame()
				if err != nil {
					t.Fatal(err)
				}
				if h.Op == frames.OpClose {
					break
				}
				if h.Op == frames.OpBinary || h.Op == frames.OpContinuation {
					if h.Op == frames.OpBinary && h.Rsv == 0 {
						t.Fatal("message not compressed")
					}
					wire += int64(len(p))
				}
			}
			w.send(frames.OpClose, closePayload(1000, ""))
			info := waitFor(t, obs.closed, "the close")
			if info.MessagesOut != 1 || obs.bytes.Load() != int64(len(msg)) {
				t.Errorf("counted %d messages of %d bytes, want 1 of %d", info.MessagesOut, obs.bytes.Load(), len(msg))
			}
			if info.BytesOut != wire {
				t.Errorf("BytesOut %d, but %d payload bytes crossed the wire (uncompressed %d)", info.BytesOut, wire, len(msg))
			}
		})
	}
}

// ---- compression: memory and gorilla ----

// TestWriteAdvCompressedWriterStreamsInBoundedMemory: a compressed
// Writer "compresses as it streams and sends a frame per fragment": what
// it holds must not grow with the message.
func TestWriteAdvCompressedWriterStreamsInBoundedMemory(t *testing.T) {
	// The heap is the process's: what other tests leave behind (a
	// connection still closing, with its buffers) counts too, so the
	// stream is made large enough that a Writer keeping what it streamed
	// (three times the stream, as it once did) stands out from that.
	const total, chunk, bound = 32 << 20, 256 << 10, 12 << 20
	for _, ext := range []string{"", "permessage-deflate"} {
		t.Run("ext="+ext, func(t *testing.T) {
			grew := make(chan uint64, 1)
			url, _ := testServerAccept(t, &wsconn.Config{PingInterval: -1, Compression: wsconn.Compression{Enabled: ext != ""}},
				func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					p := cmpRandom(5, chunk) // does not compress
					var ms runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&ms)
					before := ms.HeapAlloc
					w, err := out.Writer(ctx, messages.KindBinary)
					if err != nil {
						return err
					}
					for range total / chunk {
						if _, err := w.Write(p); err != nil {
							return err
						}
					}
					runtime.GC()
					runtime.ReadMemStats(&ms)
					grew <- ms.HeapAlloc - min(ms.HeapAlloc, before)
					return w.Close()
				})
			w, _ := wadvDial(t, url, ext, false)
			var n int
			for {
				h, p, err := w.frame()
				if err != nil {
					t.Fatal(err)
				}
				if h.Op.IsControl() {
					break
				}
				n += len(p)
			}
			g := waitFor(t, grew, "the writer")
			t.Logf("the heap grew by %.1f MiB", float64(g)/(1<<20))
			if g > bound {
				t.Errorf("the heap grew by %d MiB while a Writer streamed %d MiB (%d bytes on the wire)", g>>20, total>>20, n)
			}
		})
	}
}

// TestWriteAdvGorillaReadsCompressedFragments: gorilla with
// EnableCompression reads every way colibri writes, with tiny fragments
// and Threshold on both sides of the message size.
func TestWriteAdvGorillaReadsCompressedFragments(t *testing.T) {
	var want [][]byte
	for i, n := range []int{0, 1, 99, 100, 101, 1000, 70000} {
		want = append(want, cmpLetters(uint64(i), n))
	}
	url, _ := testServerAccept(t, &wsconn.Config{FragmentSize: 7, PingInterval: -1, Compression: wsconn.Compression{Enabled: true, Threshold: 100}},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for _, p := range want {
				if err := out.WriteText(ctx, string(p)); err != nil {
					return err
				}
				if err := out.WriteBinary(ctx, p, wsconn.Uncompressed); err != nil {
					return err
				}
				w, err := out.Writer(ctx, messages.KindText)
				if err != nil {
					return err
				}
				for q := p; len(q) > 0; q = q[min(len(q), 13):] {
					if _, err := w.Write(q[:min(len(q), 13)]); err != nil {
						return err
					}
				}
				if err := w.Close(); err != nil {
					return err
				}
				if _, err := out.WritePreparedBatch(ctx, []*wsconn.Prepared{wsconn.Prepare(messages.Binary(p)), wsconn.Prepare(messages.Text(string(p)))}); err != nil {
					return err
				}
			}
			for range in.Messages(0) {
			}
			return in.Err()
		})
	d := gorilla.Dialer{EnableCompression: true}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, p := range want {
		for j := range 5 {
			_, got, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("message %d.%d: %v", i, j, err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("message %d.%d: %d bytes, want %d", i, j, len(got), len(p))
			}
		}
	}
	_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""))
	if code := readClose(t, c); code != 1000 {
		t.Fatalf("close %d", code)
	}
}

// ---- out.Close arguments ----

// TestWriteAdvRefusedCloseLeavesTheConnectionOpen: out.Close with
// arguments that cannot go on the wire returns an error and changes
// nothing; 1005 without a reason sends an empty CLOSE.
func TestWriteAdvRefusedCloseLeavesTheConnectionOpen(t *testing.T) {
	refused := make(chan error, 16)
	url, _ := testServerAccept(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, c := range []struct {
			code   wsconn.CloseCode
			reason string
		}{
			{0, ""}, {999, ""}, {1004, ""}, {1005, "x"}, {1006, ""}, {1015, ""}, {2999, ""}, {5000, ""},
			{1000, strings.Repeat("a", 124)}, {4000, strings.Repeat("é", 62)}, {1000, "\xff"},
		} {
			if err := out.Close(c.code, c.reason); err == nil || errors.Is(err, wsconn.ErrClosed) {
				refused <- fmt.Errorf("Close(%d, %d bytes) = %v, want an argument error", c.code, len(c.reason), err)
			}
		}
		if err := out.WriteText(ctx, "still open"); err != nil {
			refused <- err
		}
		if err := out.Close(1005, ""); err != nil {
			refused <- err
		}
		if err := out.WriteText(ctx, "no"); !errors.Is(err, wsconn.ErrClosed) {
			refused <- fmt.Errorf("write after Close(1005): %v", err)
		}
		close(refused)
		for range in.Messages(0) {
		}
		return nil
	})
	w, _ := wadvDial(t, url, "", false)
	if e := w.next(); string(e.payload) != "still open" {
		t.Fatalf("got %v %q", e.op, e.payload)
	}
	if e := w.next(); e.op != frames.OpClose || len(e.payload) != 0 {
		t.Fatalf("got %v %x, want an empty CLOSE", e.op, e.payload)
	}
	for err := range refused {
		t.Error(err)
	}
	w.send(frames.OpClose, nil)
}

// TestWriteAdvCompressedWriterFramesOverFragmentSize: "FragmentSize is
// the largest payload colibri puts in one outgoing frame" holds for a
// compressed Writer too, whose output the compressor buffers and lets
// out at Close.
func TestWriteAdvCompressedWriterFramesOverFragmentSize(t *testing.T) {
	const frag, total, chunk = 64, 4096, 512
	url, _ := testServerAccept(t, &wsconn.Config{FragmentSize: frag, PingInterval: -1, Compression: wsconn.Compression{Enabled: true}},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			p := cmpLetters(9, total)
			w, err := out.Writer(ctx, messages.KindText)
			if err != nil {
				return err
			}
			for q := p; len(q) > 0; q = q[chunk:] {
				if _, err := w.Write(q[:chunk]); err != nil {
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
	w, _ := wadvDial(t, url, "permessage-deflate", false)
	e := w.next()
	if !e.compressed || !bytes.Equal(e.payload, cmpLetters(9, total)) {
		t.Fatalf("message: compressed %v, %d bytes", e.compressed, len(e.payload))
	}
	if e.maxFrame > frag {
		t.Errorf("a frame of %d bytes (FragmentSize %d); the message took %d frames", e.maxFrame, frag, e.frames)
	}
	w.send(frames.OpClose, closePayload(1000, ""))
}

// A write under way when the peer's CLOSE arrives, and that then fails
// because the peer also reset the transport, returns what every write
// returns after the peer's CLOSE: ErrClosed wrapping the peer's close, with
// its code for CloseStatus. The network error is wrapped too.
func TestWriteBrokenAfterPeerCloseCarriesThePeersCode(t *testing.T) {
	failed := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		chunk := make([]byte, 256<<10)
		for {
			if err := out.WriteBinary(context.Background(), chunk); err != nil {
				failed <- err
				return nil
			}
		}
	})
	c := dialRawSmall(t, url)
	// The peer reads nothing, so the server's write blocks on a full
	// socket; then the peer's CLOSE goes in, and is read by the
	// background reader while the write still waits.
	time.Sleep(100 * time.Millisecond)
	c.frame(frames.OpClose, true, closePayload(4001, "leaving"))
	time.Sleep(300 * time.Millisecond)
	if err := c.nc.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.nc.Close() // a reset: the waiting write fails
	err := waitFor(t, failed, "the failed write")
	if !errors.Is(err, wsconn.ErrClosed) {
		t.Errorf("write: %v, want ErrClosed", err)
	}
	if code := wsconn.CloseStatus(err); code != 4001 {
		t.Errorf("CloseStatus(write's error) = %d, want the peer's 4001 (error: %v)", code, err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write: %v, want the network error wrapped too", err)
	}
}

package wsclient_test

// Corners of the client, through real loopback sockets, against servers
// colibri shares no code with: gorilla/websocket's Upgrader,
// coder/websocket's Accept, and raw servers written on net.Listener
// (rawServer, advServer, pReadFrame... from the package's other test
// files). Each test names the promise it checks: docs/client.md,
// docs/closing.md, docs/handlers.md, docs/compression.md, RFC 6455 and
// RFC 7692.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// ---- helpers ----

// cornerRecorder is a raw server that answers the handshake, reads the
// client's frames up to its CLOSE, answers the CLOSE with the same code
// and reports every frame.
func cornerRecorder(t *testing.T) (string, <-chan []wireFrame) {
	t.Helper()
	got := make(chan []wireFrame, 4)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		var fs []wireFrame
		defer func() { got <- fs }()
		if _, err := io.WriteString(conn, switchAnswer(req, "")); err != nil {
			return
		}
		for {
			f, err := readWireFrame(br)
			if err != nil {
				return
			}
			fs = append(fs, f)
			if f.h.Op == frames.OpClose {
				conn.Write(advFrame(0x88, f.p))
				return
			}
		}
	})
	return addr, got
}

// cornerPayload returns n bytes: compressible text when text, else
// pseudo-random bytes, both derived from seed.
func cornerPayload(n int, text bool, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	p := make([]byte, n)
	if text {
		words := []string{"colibri ", "hummingbird ", "nectar ", "wing ", "{\"id\":", "42}, "}
		for i := 0; i < n; {
			i += copy(p[i:], words[r.IntN(len(words))])
		}
		return p
	}
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// cornerEchoGorilla is a gorilla/websocket echo server, compression taken
// when offered.
func cornerEchoGorilla(t *testing.T) string {
	return wsURL(pServer(t, gorillaEchoUpTo(4<<20), nil))
}

// cornerEchoCoder is a coder/websocket echo server in the given
// compression mode.
func cornerEchoCoder(t *testing.T, mode coder.CompressionMode) string {
	return cornerEchoCoderThreshold(t, mode, 1)
}

// cornerEchoCoderThreshold is cornerEchoCoder with coder's threshold
// under which messages go out uncompressed (0: coder's default).
func cornerEchoCoderThreshold(t *testing.T, mode coder.CompressionMode, threshold int) string {
	srv := pServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: mode, CompressionThreshold: threshold})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(4 << 20)
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	}, nil)
	return wsURL(srv)
}

// ---- masking and framing of what the client sends ----

// TestClientCornerMaskingAroundLengthBoundaries: RFC 6455 §5.2: the
// payload length takes 7 bits up to 125, the 16-bit form from 126 to
// 65535 and the 64-bit form beyond, always the shortest; §5.3: every
// client frame is masked with a fresh key. docs/client.md: "Every frame
// the client sends is masked with a fresh key from crypto/rand". Sizes
// sit around each boundary and around the 32 KiB chunks the client masks
// in; FragmentSize is large enough that each message is one frame; the
// caller's buffer is left as it was.
func TestClientCornerMaskingAroundLengthBoundaries(t *testing.T) {
	sizes := []int{0, 1, 124, 125, 126, 127, 32754, 32758, 32759, 32760, 32768, 65535, 65536, 65537, 100003}
	addr, got := cornerRecorder(t)
	var sent [][]byte
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for i, n := range sizes {
			p := cornerPayload(n, false, uint64(i))
			orig := bytes.Clone(p)
			sent = append(sent, orig)
			if err := out.WriteBinary(ctx, p); err != nil {
				return err
			}
			if !bytes.Equal(p, orig) {
				return fmt.Errorf("the client modified the caller's %d bytes", n)
			}
		}
		return nil
	}, advOpts(wsconn.Config{FragmentSize: 1 << 20, PingInterval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	fs := after(t, got, "the server's frames")
	if len(fs) != len(sizes)+1 {
		t.Fatalf("server read %d frames, want %d messages and a CLOSE", len(fs), len(sizes))
	}
	keys := map[[4]byte]bool{}
	for i, f := range fs {
		if !f.h.Masked {
			t.Fatalf("frame %d (%v) not masked", i, f.h.Op)
		}
		keys[f.h.Mask] = true
		if i == len(sizes) {
			break
		}
		n := sizes[i]
		wantLen7 := byte(n)
		switch {
		case n > 65535:
			wantLen7 = 127
		case n > 125:
			wantLen7 = 126
		}
		if f.raw[0] != 0x82 || f.raw[1] != 0x80|wantLen7 {
			t.Errorf("%d bytes: header starts % x, want 82 %02x", n, f.raw[:2], 0x80|wantLen7)
		}
		if !bytes.Equal(f.p, sent[i]) {
			t.Errorf("%d bytes: the payload unmasks to something else (%d bytes)", n, len(f.p))
		}
	}
	if len(keys) != len(fs) {
		t.Fatalf("%d distinct mask keys for %d frames", len(keys), len(fs))
	}
}

// TestClientCornerWriterStreamMaskedFragments: docs/handlers.md: "Writer
// sends a frame each time FragmentSize bytes have been written and a
// final frame on Close." Writes of awkward sizes (empty, one byte, one
// short of a fragment, several fragments at once) go out as frames of
// exactly FragmentSize, the first binary and the rest continuations, FIN
// on the last only, each masked with its own key, and the server
// reassembles exactly what was written.
func TestClientCornerWriterStreamMaskedFragments(t *testing.T) {
	const frag = 1000
	writes := []int{0, 1, 998, 1, 1000, 3333, 0, 999, 2, 1}
	addr, got := cornerRecorder(t)
	var want []byte
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		w, err := out.Writer(ctx, messages.KindBinary)
		if err != nil {
			return err
		}
		for i, n := range writes {
			p := cornerPayload(n, false, uint64(100+i))
			want = append(want, p...)
			if k, err := w.Write(p); err != nil || k != n {
				return fmt.Errorf("write %d of %d bytes: %d, %v", i, n, k, err)
			}
		}
		return w.Close()
	}, advOpts(wsconn.Config{FragmentSize: frag, PingInterval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	fs := after(t, got, "the server's frames")
	var msg []byte
	keys := map[[4]byte]bool{}
	data := fs[:len(fs)-1]
	for i, f := range data {
		keys[f.h.Mask] = true
		wantOp := frames.OpContinuation
		if i == 0 {
			wantOp = frames.OpBinary
		}
		last := i == len(data)-1
		if !f.h.Masked || f.h.Op != wantOp || f.h.Fin != last || f.h.Rsv != 0 {
			t.Fatalf("frame %d: %+v, want a masked %v with fin %v", i, f.h, wantOp, last)
		}
		if !last && len(f.p) != frag {
			t.Fatalf("frame %d carries %d bytes, want FragmentSize %d", i, len(f.p), frag)
		}
		msg = append(msg, f.p...)
	}
	if !bytes.Equal(msg, want) {
		t.Fatalf("server reassembled %d bytes, not the %d written", len(msg), len(want))
	}
	if len(keys) != len(data) || fs[len(fs)-1].h.Op != frames.OpClose {
		t.Fatalf("%d keys for %d data frames; last frame %v", len(keys), len(data), fs[len(fs)-1].h.Op)
	}
}

// ---- compression ----

// TestClientCornerCompressionInterop: permessage-deflate negotiated with
// gorilla (EnableCompression), and coder with CompressionContextTakeover
// and CompressionNoContextTakeover (compressing from 1 byte, and from its
// default threshold), with the client's ContextTakeover off
// and on. Messages of sizes around the threshold, the 32 KiB window and
// FragmentSize, compressible and not, written whole and streamed with a
// Writer, come back byte-exact: both directions compress (coder's
// threshold is 1 byte), and a sequence of similar messages exercises the
// windows kept across messages (RFC 7692 §7.1.1).
func TestClientCornerCompressionInterop(t *testing.T) {
	servers := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"gorilla", cornerEchoGorilla},
		{"coder takeover", func(t *testing.T) string { return cornerEchoCoder(t, coder.CompressionContextTakeover) }},
		{"coder no takeover", func(t *testing.T) string { return cornerEchoCoder(t, coder.CompressionNoContextTakeover) }},
		// Messages under coder's default threshold come uncompressed,
		// between compressed ones, and stay out of the window.
		{"coder takeover default threshold", func(t *testing.T) string {
			return cornerEchoCoderThreshold(t, coder.CompressionContextTakeover, 0)
		}},
	}
	sizes := []int{0, 1, 255, 256, 257, 4096, 32767, 32768, 32769, 65536, 70001, 150000}
	for _, srv := range servers {
		url := srv.url(t)
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/client takeover %v", srv.name, takeover), func(t *testing.T) {
				o := advOpts(wsconn.Config{FragmentSize: 16 << 10, PingInterval: -1})
				o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: takeover}
				err := wsclient.Run(testCtx(t), url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
					if e := s.Extensions(); len(e) != 1 || e[0].Name != "permessage-deflate" {
						return fmt.Errorf("negotiated %v", e)
					}
					for i, n := range sizes {
						for _, text := range []bool{true, false} {
							// Each size goes once whole and once streamed.
							stream := text == (i%2 == 0)
							p := cornerPayload(n, text, uint64(i))
							kind := messages.KindBinary
							if text {
								kind = messages.KindText
							}
							if stream {
								w, err := out.Writer(ctx, kind)
								if err != nil {
									return err
								}
								for q := p; len(q) > 0; {
									k := min(len(q), 7777)
									if _, err := w.Write(q[:k]); err != nil {
										return err
									}
									q = q[k:]
								}
								if err := w.Close(); err != nil {
									return err
								}
							} else if err := out.WriteMessage(ctx, messages.Message{Kind: kind, Payload: p}); err != nil {
								return err
							}
							var echo messages.Message
							for m := range in.Messages(1 << 20) {
								echo = m.Clone()
								break
							}
							if err := in.Err(); err != nil {
								return fmt.Errorf("%d bytes (text %v, stream %v): %w", n, text, stream, err)
							}
							if echo.Kind != kind || !bytes.Equal(echo.Payload, p) {
								return fmt.Errorf("%d bytes (text %v, stream %v) came back as %v of %d bytes", n, text, stream, echo.Kind, len(echo.Payload))
							}
						}
					}
					return nil
				}, o)
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// ---- the closing handshake ----

// TestClientCornerServerCloseAnsweredWhileHandlerBusy: docs/closing.md
// "The closing handshake and TCP": "colibri answers the peer's CLOSE
// without waiting for the handler". A handler that neither reads nor
// watches its context for a while: the server's CLOSE 4001 is echoed
// within the background reader's delay, not when the handler returns.
func TestClientCornerServerCloseAnsweredWhileHandlerBusy(t *testing.T) {
	const busy = 800 * time.Millisecond
	answered := make(chan time.Duration, 1)
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		start := time.Now()
		conn.Write(advClose(4001, "leaving"))
		advReadClient(br, r)
		answered <- time.Since(start)
	})
	var cause error
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		time.Sleep(busy)
		cause = context.Cause(ctx)
		return nil
	}, advOpts(wsconn.Config{PingInterval: -1}))
	if err != nil {
		t.Fatalf("Run returned %v after the server's clean close and a nil handler", err)
	}
	if d := after(t, answered, "the answer"); d > busy/2 {
		t.Fatalf("the client answered the server's CLOSE after %v, while its handler was busy for %v", d, busy)
	}
	r := after(t, reports, "the server")
	if r.closeCode != 4001 || r.closeText != "leaving" || len(r.frames) != 1 {
		t.Fatalf("client answered %d %q in %d frames, want the echo 4001 \"leaving\" alone", r.closeCode, r.closeText, len(r.frames))
	}
	if wsconn.CloseStatus(cause) != 4001 || !errors.Is(cause, wsconn.ErrClosed) {
		t.Fatalf("the handler's context ended with %v, want a *CloseError 4001 matching ErrClosed", cause)
	}
}

// TestClientCornerSimultaneousClose: the server sends CLOSE 4000 as the
// 101 goes out, while the handler returns a *CloseError 4002 at once:
// both sides close at the same moment (RFC 6455 §7.1.3 allows it). The
// client sends exactly one CLOSE, masked, with one of the two codes; Run
// returns the handler's error (docs/client.md: "A handler that returns a
// *wsconn.CloseError ... gets that same error back from Run") promptly,
// since the server closes TCP once both CLOSEs crossed; nothing leaks.
func TestClientCornerSimultaneousClose(t *testing.T) {
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		conn.Write(advClose(4000, "server first"))
		advReadClient(br, r)
	})
	snap := goleak.IgnoreCurrent()
	for i := range 20 {
		bye := &wsconn.CloseError{Code: 4002, Reason: "client first"}
		start := time.Now()
		err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			return bye
		}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: 3 * time.Second}))
		took := time.Since(start)
		if err != bye {
			t.Fatalf("run %d: Run returned %v, want the handler's *CloseError", i, err)
		}
		if took > time.Second {
			t.Fatalf("run %d: Run took %v; the server closed TCP after the CLOSEs crossed", i, took)
		}
		r := after(t, reports, "the server")
		if len(r.frames) != 1 || !r.gotClose || r.unmasked != 0 || (r.closeCode != 4000 && r.closeCode != 4002) {
			t.Fatalf("run %d: client sent %d frames, close %d %q", i, len(r.frames), r.closeCode, r.closeText)
		}
	}
	if err := goleak.Find(snap); err != nil {
		t.Fatal(err)
	}
}

// TestClientCornerCancelGoingAwayReason: docs/closing.md lists "the
// context given to wsconn.Serve or Start ended | 1001 | going away", and
// docs/client.md says cancelling Run's context "sends 1001 Going Away".
// Against a server that answers and closes TCP, Run returns at once with
// what the handler returned (context.Canceled), and the CLOSE carries
// 1001 "going away".
func TestClientCornerCancelGoingAwayReason(t *testing.T) {
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		advReadClient(br, r)
		if r.gotClose {
			conn.Write(advClose(uint16(r.closeCode), ""))
		}
	})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var took time.Duration
	var start time.Time
	err := wsclient.Run(ctx, "ws://"+addr, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		start = time.Now()
		cancel()
		<-hctx.Done()
		return hctx.Err()
	}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: 3 * time.Second}))
	took = time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if took > time.Second {
		t.Fatalf("Run returned %v after the cancellation", took)
	}
	r := after(t, reports, "the server")
	if r.closeCode != frames.CloseGoingAway || r.closeText != "going away" || r.unmasked != 0 {
		t.Fatalf("server got close %d %q, want 1001 \"going away\"", r.closeCode, r.closeText)
	}
}

// TestClientCornerCancelWithSilentServer: the context ends and the server
// reads the client's 1001 but never answers nor closes TCP. Run returns
// about CloseTimeout after the CLOSE went out (docs/closing.md: reads
// "until the peer's CLOSE arrives or Config.CloseTimeout ... has passed"),
// not later, and leaves no goroutine behind.
func TestClientCornerCancelWithSilentServer(t *testing.T) {
	const closeTimeout = 400 * time.Millisecond
	addr, reports, sawClose, runDone := advSilentServer(t, 5*time.Second)
	snap := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	err := wsclient.Run(ctx, "ws://"+addr, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		time.AfterFunc(20*time.Millisecond, cancel)
		for range in.Messages(0) {
		}
		return in.Err()
	}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: closeTimeout}))
	end := time.Now()
	close(runDone)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if d := end.Sub(after(t, sawClose, "the CLOSE")); d < closeTimeout/2 || d > closeTimeout*2 {
		t.Fatalf("Run returned %v after its CLOSE went out to a silent server, want about CloseTimeout %v", d, closeTimeout)
	}
	if r := after(t, reports, "the server"); r.closeCode != frames.CloseGoingAway {
		t.Fatalf("server got close %d", r.closeCode)
	}
	if err := goleak.Find(snap); err != nil {
		t.Fatal(err)
	}
}

// ---- keep-alive ----

// TestClientCornerKeepAliveWithThirdPartyServers: docs/client.md:
// keep-alive is on on the client; docs/handlers.md: the connection stays
// healthy while the handler does not read. gorilla and coder answer the
// client's PINGs while they read; the handler stays quiet for many ping
// intervals without reading, then finds the connection alive, with a
// round-trip time measured (s.RTT, "the round-trip time of the last
// answered keep-alive PING").
func TestClientCornerKeepAliveWithThirdPartyServers(t *testing.T) {
	for _, srv := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"gorilla", cornerEchoGorilla},
		{"coder", func(t *testing.T) string { return cornerEchoCoder(t, coder.CompressionDisabled) }},
	} {
		t.Run(srv.name, func(t *testing.T) {
			o := advOpts(wsconn.Config{PingInterval: 40 * time.Millisecond, PongTimeout: 300 * time.Millisecond})
			err := wsclient.Run(testCtx(t), srv.url(t), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				select {
				case <-time.After(500 * time.Millisecond):
				case <-ctx.Done():
					return fmt.Errorf("connection ended while quiet: %w", context.Cause(ctx))
				}
				if s.RTT() <= 0 {
					return errors.New("no round-trip time after many answered PINGs")
				}
				got, err := roundTrip(ctx, in, out, messages.Text("still here"))
				if err == nil && got.Text() != "still here" {
					err = fmt.Errorf("echo %q", got.Payload)
				}
				return err
			}, o)
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClientCornerDataCountsAsLife: docs/closing.md: "If no frame at all
// arrives within Config.PongTimeout of that PING leaving, the connection
// closes"; the ping timer is reset by "any frame". A raw server that
// never answers PINGs but sends a data message every 30 ms keeps the
// connection for many pong timeouts, whether the handler reads or not.
func TestClientCornerDataCountsAsLife(t *testing.T) {
	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprint("read=", read), func(t *testing.T) {
			stop := make(chan struct{})
			addr, _ := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				go func() {
					tk := time.NewTicker(30 * time.Millisecond)
					defer tk.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tk.C:
							if _, err := conn.Write(advFrame(0x81, []byte("tick"))); err != nil {
								return
							}
						}
					}
				}()
				advReadClient(br, r)
				close(stop)
				conn.Write(advClose(uint16(r.closeCode), ""))
			})
			var n atomic.Int32
			err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				deadline := time.After(700 * time.Millisecond)
				if read {
					if err := s.Go(func(ctx context.Context) error {
						for range in.Messages(0) {
							n.Add(1)
						}
						return nil
					}); err != nil {
						return err
					}
				}
				select {
				case <-deadline:
					return nil
				case <-ctx.Done():
					return fmt.Errorf("connection ended: %w", context.Cause(ctx))
				}
			}, advOpts(wsconn.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}))
			if err != nil {
				t.Fatalf("Run returned %v: data from the server did not count as a sign of life", err)
			}
			if read && n.Load() < 5 {
				t.Fatalf("handler read %d messages", n.Load())
			}
		})
	}
}

// TestClientCornerPongBetweenFragments: docs/handlers.md: "Messages
// longer than Config.FragmentSize go out as several frames, and PING and
// PONG frames go out between them, so a large message does not hold up
// keep-alive." A gorilla server reads the first part of a 16 MiB message,
// pings, pauses, and reads on: its PONG handler runs before the message
// ends. The message is larger than loopback's socket buffers can hold
// while the server pauses, so the client is still writing it when the
// PING arrives, however fast it writes.
func TestClientCornerPongBetweenFragments(t *testing.T) {
	const size = 16 << 20
	report := make(chan string, 1)
	srv := pServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := (&gorilla.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var read int
		pongAt := -1
		c.SetPongHandler(func(string) error {
			pongAt = read
			return nil
		})
		_, mr, err := c.NextReader()
		if err != nil {
			report <- err.Error()
			return
		}
		buf := make([]byte, 32<<10)
		pinged := false
		for {
			n, err := mr.Read(buf)
			read += n
			if !pinged && read >= 512<<10 {
				pinged = true
				if err := c.WriteControl(gorilla.PingMessage, []byte("mid"), time.Now().Add(time.Second)); err != nil {
					report <- err.Error()
					return
				}
				time.Sleep(100 * time.Millisecond) // the client's writes fill the buffers
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				report <- err.Error()
				return
			}
		}
		report <- fmt.Sprintf("read %d, pong at %d", read, pongAt)
		c.ReadMessage() // the CLOSE
	}, nil)
	payload := make([]byte, size)
	err := wsclient.Run(testCtx(t), wsURL(srv), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		return out.WriteBinary(ctx, payload)
	}, advOpts(wsconn.Config{FragmentSize: 16 << 10, PingInterval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	var read, pongAt int
	got := after(t, report, "the server's report")
	if _, err := fmt.Sscanf(got, "read %d, pong at %d", &read, &pongAt); err != nil {
		t.Fatalf("server: %s", got)
	}
	if read != size || pongAt < 0 || pongAt >= size {
		t.Fatalf("server read %d bytes, the PONG came at %d; want it between the fragments of the %d-byte message", read, pongAt, size)
	}
}

// ---- the opening handshake ----

// TestClientCornerHandshakeFailuresLeakNothing: every way a handshake
// can fail ends Dial with the documented error (docs/client.md "Errors")
// and no goroutine left once Dial returned.
func TestClientCornerHandshakeFailuresLeakNothing(t *testing.T) {
	good := func(req *http.Request) string { return switchAnswer(req, "") }
	for _, tc := range []struct {
		name   string
		answer func(conn net.Conn, br *bufio.Reader, req *http.Request)
		opts   func(o *wsclient.Options)
		check  func(err error) bool
	}{
		{"404 with a body", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n")
			io.Copy(io.Discard, br)
		}, nil, func(err error) bool {
			he, ok := errors.AsType[*wsclient.HandshakeError](err)
			return ok && he.StatusCode == 404 && string(he.Body) == "no route\n" && err.Error() == "wsclient: handshake refused: 404 Not Found: no route"
		}},
		{"chunked 500", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nboom\r\n0\r\n\r\n")
			io.Copy(io.Discard, br)
		}, nil, func(err error) bool {
			he, ok := errors.AsType[*wsclient.HandshakeError](err)
			return ok && he.StatusCode == 500 && string(he.Body) == "boom"
		}},
		{"307 redirect", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://elsewhere/\r\nContent-Length: 0\r\n\r\n")
			io.Copy(io.Discard, br)
		}, nil, func(err error) bool {
			he, ok := errors.AsType[*wsclient.HandshakeError](err)
			return ok && he.StatusCode == 307 && he.Header.Get("Location") == "ws://elsewhere/"
		}},
		{"wrong accept", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
			io.Copy(io.Discard, br)
		}, nil, func(err error) bool {
			he, ok := errors.AsType[*wsclient.HandshakeError](err)
			return ok && he.StatusCode == 101 && strings.Contains(he.Reason, "Sec-WebSocket-Accept")
		}},
		{"subprotocol not offered", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, switchAnswer(req, "Sec-WebSocket-Protocol: mqtt\r\n"))
			io.Copy(io.Discard, br)
		}, func(o *wsclient.Options) { o.Subprotocols = []string{"chat", "superchat"} }, func(err error) bool {
			he, ok := errors.AsType[*wsclient.HandshakeError](err)
			return ok && he.StatusCode == 101 && strings.Contains(he.Reason, "mqtt")
		}},
		{"deflate not offered", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, switchAnswer(req, "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
			io.Copy(io.Discard, br)
		}, nil, func(err error) bool {
			he, ok := errors.AsType[*wsclient.HandshakeError](err)
			return ok && he.StatusCode == 101 && strings.Contains(he.Reason, "not offered")
		}},
		{"never answers", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.Copy(io.Discard, br)
		}, func(o *wsclient.Options) { o.HandshakeTimeout = 150 * time.Millisecond }, func(err error) bool {
			return errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, wsclient.ErrHandshake) && strings.Contains(err.Error(), "handshake took longer than 150ms")
		}},
		{"answers in part then stalls", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, good(req)[:40])
			io.Copy(io.Discard, br)
		}, func(o *wsclient.Options) { o.HandshakeTimeout = 150 * time.Millisecond }, func(err error) bool {
			return errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "handshake took longer than 150ms")
		}},
		{"answers in part then closes", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, good(req)[:40])
		}, nil, func(err error) bool {
			return err != nil && !errors.Is(err, wsclient.ErrHandshake) && !errors.Is(err, context.DeadlineExceeded)
		}},
		{"closes at once", func(conn net.Conn, br *bufio.Reader, req *http.Request) {}, nil, func(err error) bool {
			return err != nil && !errors.Is(err, wsclient.ErrHandshake) && !errors.Is(err, context.DeadlineExceeded)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, tc.answer)
			o := options()
			if tc.opts != nil {
				tc.opts(o)
			}
			snap := goleak.IgnoreCurrent()
			start := time.Now()
			u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr+"/x", o)
			took := time.Since(start)
			if u.Conn != nil {
				u.Conn.Close()
				t.Fatal("a failed Dial returned a connection")
			}
			if !tc.check(err) {
				t.Fatalf("Dial returned %v (%T)", err, err)
			}
			if took > time.Second {
				t.Fatalf("Dial took %v", took)
			}
			if err := goleak.Find(snap); err != nil {
				t.Fatalf("goroutines left after Dial returned: %v", err)
			}
		})
	}
}

// TestClientCornerContextCancelledBeforeRun: a context that has ended
// already: Run dials nothing, the handler never runs, and the error
// matches context.Canceled (docs/client.md "Errors": "ctx was cancelled
// | matches context.Canceled").
func TestClientCornerContextCancelledBeforeRun(t *testing.T) {
	var dialed atomic.Bool
	o := options()
	o.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed.Store(true)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	addr := silentServer(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	called := false
	err := wsclient.Run(ctx, "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		called = true
		return nil
	}, o)
	if !errors.Is(err, context.Canceled) || called {
		t.Fatalf("Run returned %v (handler called %v), want context.Canceled", err, called)
	}
}

// TestClientCornerFramesWithThe101: bytes the server sends with its 101,
// in the same write, are kept and read as frames (docs/client.md "What
// the client checks and sends"): here a text message larger than the
// connection's small idle buffer, a PING and a CLOSE, all in one write.
// The handler gets the message, the PING is answered, and the CLOSE is
// echoed and ends the connection cleanly.
func TestClientCornerFramesWithThe101(t *testing.T) {
	big := strings.Repeat("0123456789", 300)
	reports := make(chan *advSrvReport, 1)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		var b []byte
		b = append(b, switchAnswer(req, "")...)
		b = append(b, advFrame(0x81, []byte(big))...)
		b = append(b, advFrame(0x89, []byte("with the 101"))...)
		b = append(b, advClose(1000, "")...)
		conn.Write(b)
		r := &advSrvReport{}
		advReadClient(br, r)
		reports <- r
	})
	var got []string
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for m := range in.Messages(0) {
			got = append(got, m.Text())
		}
		return in.Err()
	}, advOpts(wsconn.Config{PingInterval: -1}))
	if err != nil || len(got) != 1 || got[0] != big {
		t.Fatalf("Run returned %v; handler got %d messages", err, len(got))
	}
	r := after(t, reports, "the server")
	var ops []frames.Opcode
	for _, f := range r.frames {
		ops = append(ops, f.h.Op)
	}
	if len(r.frames) != 2 || r.frames[0].h.Op != frames.OpPong || string(r.frames[0].p) != "with the 101" || r.closeCode != frames.CloseNormal {
		t.Fatalf("client sent %v (close %d), want the PONG then CLOSE 1000", ops, r.closeCode)
	}
}

// TestClientCornerWritesAfterServerClose: docs/closing.md: "A write after
// the peer closed with 4001, for example, fails with an error for which
// both errors.Is(err, wsconn.ErrClosed) and wsconn.CloseStatus(err) ==
// 4001 hold." On the client, for every way of writing, once the
// server's CLOSE has ended the handler's context.
func TestClientCornerWritesAfterServerClose(t *testing.T) {
	addr, _ := advWriteThenRead(t, advClose(4001, "gone"))
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		<-ctx.Done()
		_, werr := out.Writer(ctx, messages.KindText)
		_, berr := out.WritePreparedBatch(ctx, []*wsconn.Prepared{wsconn.Prepare(messages.Text("x"))})
		for name, err := range map[string]error{
			"WriteText":          out.WriteText(ctx, "late"),
			"WriteBinary":        out.WriteBinary(context.Background(), []byte("late")),
			"Writer":             werr,
			"Ping":               out.Ping(ctx, nil),
			"WritePreparedBatch": berr,
			"Close":              out.Close(4002, "me too"),
		} {
			if !errors.Is(err, wsconn.ErrClosed) || wsconn.CloseStatus(err) != 4001 {
				return fmt.Errorf("%s after the server's CLOSE 4001: %v", name, err)
			}
		}
		return nil
	}, advOpts(wsconn.Config{PingInterval: -1}))
	if err != nil {
		t.Fatal(err)
	}
}

// TestClientCornerOwnCloseSilentServer: docs/closing.md: after
// out.Close "the handler may keep ranging ... the loop ends when the
// peer's CLOSE arrives ..., or, if the peer stays silent, CloseTimeout
// after colibri's CLOSE went out, with a 1006 error". A client handler
// that calls out.Close(4100) and ranges on, against a server that reads
// the CLOSE and neither answers nor closes TCP: the loop ends about
// CloseTimeout after the CLOSE, with a 1006 *CloseError, and Run returns
// then, not a second CloseTimeout later.
func TestClientCornerOwnCloseSilentServer(t *testing.T) {
	const closeTimeout = 400 * time.Millisecond
	addr, reports, sawClose, runDone := advSilentServer(t, 5*time.Second)
	var loopEnded time.Time
	var inErr error
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if err := out.Close(4100, "done"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		loopEnded = time.Now()
		inErr = in.Err()
		return nil
	}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: closeTimeout}))
	end := time.Now()
	close(runDone)
	sent := after(t, sawClose, "the CLOSE")
	if r := after(t, reports, "the server"); r.closeCode != 4100 || r.closeText != "done" {
		t.Fatalf("server got close %d %q", r.closeCode, r.closeText)
	}
	if d := loopEnded.Sub(sent); d < closeTimeout/2 || d > 2*closeTimeout {
		t.Fatalf("the loop ended %v after the CLOSE went out, want about CloseTimeout %v", d, closeTimeout)
	}
	if wsconn.CloseStatus(inErr) != frames.CloseAbnormal {
		t.Fatalf("in.Err() = %v, want a 1006 *CloseError", inErr)
	}
	if d := end.Sub(loopEnded); d > closeTimeout/2 {
		t.Fatalf("Run returned %v after the loop ended: it waited for the silent server again", d)
	}
	// No closing handshake took place: Run reports why (docs/client.md:
	// "the reason the connection failed").
	if wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("Run returned %v, want the 1006 *CloseError", err)
	}
}

// TestClientCornerOwnCloseCauseOutlivesSilence: docs/handlers.md: "After
// out.Close it [ctx] stays open until the peer answers, and then ends
// with a *wsconn.CloseError carrying the code out.Close sent, whatever
// ended it"; docs/architecture.md: "whatever ends the context then, its
// cause is still the first, the code out.Close sent". A client calls
// out.Close(4100) and the server stays silent, so CloseTimeout ends the
// wait: the handler's context must end with the 4100 *CloseError, not
// with the 1006 of the failed read.
func TestClientCornerOwnCloseCauseOutlivesSilence(t *testing.T) {
	addr, _ := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		advReadClient(br, r)
		io.Copy(io.Discard, br) // until the client closes TCP
	})
	var cause error
	wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if err := out.Close(4100, "done"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		<-ctx.Done()
		cause = context.Cause(ctx)
		return nil
	}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: 300 * time.Millisecond}))
	if ce, ok := errors.AsType[*wsconn.CloseError](cause); !ok || ce.Code != 4100 || ce.Reason != "done" {
		t.Fatalf("the handler's context ended with %v, want the *CloseError 4100 \"done\" that out.Close sent", cause)
	}
}

// TestClientCornerPingTimeoutWhileBodyBusy: docs/closing.md: the pong
// timeout "strikes only while colibri is waiting on the socket (a loop,
// or the background reader ...)"; docs/handlers.md: when a loop body has
// been busy for 20 ms the background reader takes over. The server sends
// one message and then never answers: the handler's loop body is busy
// for a long time, and the client's CLOSE 1001 "ping timeout" still goes
// out about PingInterval + PongTimeout after the server went quiet, not
// once the body returns.
func TestClientCornerPingTimeoutWhileBodyBusy(t *testing.T) {
	const busy = 1500 * time.Millisecond
	closedAfter := make(chan time.Duration, 1)
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		start := time.Now()
		conn.Write(advFrame(0x81, []byte("work")))
		advReadClient(br, r)
		closedAfter <- time.Since(start)
	})
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for range in.Messages(0) {
			time.Sleep(busy) // a body that does not watch ctx
		}
		return in.Err()
	}, advOpts(wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond, CloseTimeout: 300 * time.Millisecond}))
	if !errors.Is(err, wsconn.ErrPingTimeout) {
		t.Fatalf("Run returned %v, want the ping timeout", err)
	}
	r := after(t, reports, "the server")
	if r.closeCode != frames.CloseGoingAway || r.closeText != "ping timeout" {
		t.Fatalf("server got close %d %q", r.closeCode, r.closeText)
	}
	if d := after(t, closedAfter, "the CLOSE"); d > busy*2/3 {
		t.Fatalf("the ping timeout's CLOSE went out %v after the server went quiet; the body was busy for %v", d, busy)
	}
}

// TestClientCornerCompressedReadersPartial: docs/handlers.md: a reader
// from Readers "is likewise valid only in its loop body; what the body
// leaves unread is discarded (and still checked)"; with context takeover
// the window must still hold what was discarded (RFC 7692 §7.1.1: the
// LZ77 window carries over from message to message). A coder server with
// context takeover echoes similar messages compressed; the handler reads
// only the first part of every other one, and every later message still
// inflates byte-exact, through Readers and then through Messages.
func TestClientCornerCompressedReadersPartial(t *testing.T) {
	url := cornerEchoCoder(t, coder.CompressionContextTakeover)
	o := advOpts(wsconn.Config{PingInterval: -1})
	o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: true}
	err := wsclient.Run(testCtx(t), url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for i, n := range []int{5000, 40000, 300, 70000, 12345, 33000, 90000, 1000} {
			p := cornerPayload(n, true, uint64(i%3))
			if err := out.WriteText(ctx, string(p)); err != nil {
				return err
			}
			partial := i%2 == 1
			var got []byte
			for kind, r := range in.Readers() {
				if kind != messages.KindText {
					return fmt.Errorf("message %d is %v", i, kind)
				}
				var err error
				if partial {
					got = make([]byte, n/3)
					_, err = io.ReadFull(r, got)
				} else {
					got, err = io.ReadAll(r)
				}
				if err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
				break
			}
			if err := in.Err(); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			if !bytes.Equal(got, p[:len(got)]) || !partial && len(got) != n {
				return fmt.Errorf("message %d of %d bytes read back as %d different bytes", i, n, len(got))
			}
		}
		p := cornerPayload(20000, true, 1)
		got, err := roundTrip(ctx, in, out, messages.Text(string(p)))
		if err != nil {
			return err
		}
		if !bytes.Equal(got.Payload, p) {
			return fmt.Errorf("the last message came back as %d different bytes", len(got.Payload))
		}
		return nil
	}, o)
	if err != nil {
		t.Fatal(err)
	}
}

// TestClientCornerServerClosesFirstOverTLS: docs/client.md: once the
// server's CLOSE has come, the client "shuts down its sending side and
// waits, up to Config.CloseTimeout, for the server to close TCP first".
// Over TLS too: a gorilla server that closes first and then closes its
// connection lets Run return at once, not after CloseTimeout.
func TestClientCornerServerClosesFirstOverTLS(t *testing.T) {
	p := gorillaPeer(t, true)
	o := advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: 3 * time.Second})
	o.TLSConfig = &tls.Config{RootCAs: certPool(p.srv)}
	start := time.Now()
	err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if err := out.WriteText(ctx, "close:4003:over tls"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		return in.Err()
	}, o)
	took := time.Since(start)
	if ce, ok := errors.AsType[*wsconn.CloseError](err); !ok || ce.Code != 4003 || ce.Reason != "over tls" {
		t.Fatalf("Run returned %v, want the server's 4003", err)
	}
	if took > time.Second {
		t.Fatalf("Run took %v after the server closed first over TLS", took)
	}
}

// TestClientCornerCloseWaitsForOpenWriter: docs/closing.md: "The CLOSE
// frame goes out after the message being written (a write under way, or
// an open Writer until its Close), so every write that returned nil
// reaches the peer before it". A client handler holds a Writer when the
// close begins, by Run's context ending (1001 "going away") or by the
// server's CLOSE 4001 (echoed): the Writer's later writes and its Close
// succeed, and the server reads the whole message, then the CLOSE.
func TestClientCornerCloseWaitsForOpenWriter(t *testing.T) {
	for _, how := range []string{"cancel", "server"} {
		t.Run(how, func(t *testing.T) {
			firstFrame := make(chan struct{})
			addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				for {
					h, p, err := pReadFrame(br)
					if err != nil {
						return
					}
					if len(r.frames) == 0 {
						close(firstFrame)
						if how == "server" {
							conn.Write(advClose(4001, "stop"))
						}
					}
					if r.record(h, p, p) {
						if how == "cancel" {
							conn.Write(advClose(uint16(r.closeCode), ""))
						}
						return
					}
				}
			})
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			want := cornerPayload(3500, false, 7)
			err := wsclient.Run(ctx, "ws://"+addr, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				w, err := out.Writer(hctx, messages.KindBinary)
				if err != nil {
					return err
				}
				if _, err := w.Write(want[:1000]); err != nil {
					return err
				}
				<-firstFrame
				if how == "cancel" {
					cancel()
				}
				<-hctx.Done() // closing has begun
				if _, err := w.Write(want[1000:]); err != nil {
					return fmt.Errorf("the open Writer's write after the close began: %w", err)
				}
				if err := w.Close(); err != nil {
					return fmt.Errorf("the open Writer's Close after the close began: %w", err)
				}
				return nil
			}, advOpts(wsconn.Config{FragmentSize: 1000, PingInterval: -1, CloseTimeout: time.Second}))
			if err != nil {
				t.Fatal(err)
			}
			r := after(t, reports, "the server")
			var msg []byte
			for _, f := range r.frames[:len(r.frames)-1] {
				msg = append(msg, f.p...)
			}
			last := r.frames[len(r.frames)-2]
			wantCode, wantText := frames.CloseCode(frames.CloseGoingAway), "going away"
			if how == "server" {
				wantCode, wantText = 4001, "stop"
			}
			if !bytes.Equal(msg, want) || !last.h.Fin || !r.gotClose || r.closeCode != wantCode || r.closeText != wantText {
				t.Fatalf("server read %d of %d bytes (last fin %v), then close %d %q; want the whole message, then %d %q",
					len(msg), len(want), last.h.Fin, r.closeCode, r.closeText, wantCode, wantText)
			}
		})
	}
}

// TestClientCornerCompressedFramesFromGorilla: docs/handlers.md: "With
// compression negotiated, a compressed message reaches Frames as one
// final frame, inflated". gorilla (1 KiB write buffer) sends a
// compressed message in many frames; the client's Frames loop gets it as
// one final text frame without RSV1, byte-exact, and a Readers loop
// streams the next one byte-exact.
func TestClientCornerCompressedFramesFromGorilla(t *testing.T) {
	p := gorillaPeer(t, false)
	o := advOpts(wsconn.Config{PingInterval: -1})
	o.Config.Compression.Enabled = true
	err := wsclient.Run(testCtx(t), p.url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		want := cornerPayload(60000, true, 3)
		if err := out.WriteText(ctx, string(want)); err != nil {
			return err
		}
		n := 0
		for f := range in.Frames() {
			n++
			if f.Op != frames.OpText || !f.Fin || f.Rsv != 0 || !bytes.Equal(f.Payload, want) {
				return fmt.Errorf("frame %d: %v fin %v rsv %d, %d bytes", n, f.Op, f.Fin, f.Rsv, len(f.Payload))
			}
			break
		}
		if n != 1 {
			return fmt.Errorf("Frames ended after %d frames: %w", n, in.Err())
		}
		if err := out.WriteText(ctx, string(want)); err != nil {
			return err
		}
		for _, r := range in.Readers() {
			got, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("Readers streamed %d different bytes", len(got))
			}
			return nil
		}
		return fmt.Errorf("Readers ended: %w", in.Err())
	}, o)
	if err != nil {
		t.Fatal(err)
	}
}

// TestClientCornerKeepAliveDuringLongMessage: docs/handlers.md: PING
// frames "go out between" the fragments of a long message, and
// docs/closing.md: the CLOSE of a keep-alive timeout goes out "ahead of
// data". A raw server reads the client's streamed message slowly and
// never answers PINGs: a keep-alive PING shows up between two fragments,
// then CLOSE 1001 "ping timeout" before the message ends, and the
// Writer's next write fails with ErrClosed wrapping ErrPingTimeout.
func TestClientCornerKeepAliveDuringLongMessage(t *testing.T) {
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		advReadClient(br, r)
	})
	var werr error
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		w, err := out.Writer(ctx, messages.KindBinary)
		if err != nil {
			return err
		}
		chunk := bytes.Repeat([]byte("f"), 1000)
		for range 200 { // 4 s at most
			if _, werr = w.Write(chunk); werr != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		w.Close()
		return nil
	}, advOpts(wsconn.Config{FragmentSize: 1000, PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond, CloseTimeout: 300 * time.Millisecond}))
	if !errors.Is(werr, wsconn.ErrClosed) || !errors.Is(werr, wsconn.ErrPingTimeout) {
		t.Fatalf("the Writer's write after the ping timeout returned %v", werr)
	}
	if !errors.Is(err, wsconn.ErrPingTimeout) {
		t.Fatalf("Run returned %v, want the ping timeout", err)
	}
	r := after(t, reports, "the server")
	var ops []frames.Opcode
	pingBetween, finSeen := false, false
	for i, f := range r.frames {
		ops = append(ops, f.h.Op)
		if f.h.Op == frames.OpPing && i > 0 && !finSeen {
			pingBetween = true
		}
		if !f.h.Op.IsControl() && f.h.Fin {
			finSeen = true
		}
	}
	if !pingBetween || finSeen || r.closeCode != frames.CloseGoingAway || r.closeText != "ping timeout" || r.unmasked != 0 {
		t.Fatalf("server read %d frames (PING between fragments %v, message finished %v), close %d %q",
			len(ops), pingBetween, finSeen, r.closeCode, r.closeText)
	}
}

// TestClientCornerChattyServerNeverAnswersClose: docs/closing.md: once
// the handler has returned, colibri "reads and discards data until the
// peer's CLOSE arrives or Config.CloseTimeout ... has passed since its
// CLOSE went out". A server that keeps sending data frames and never
// answers the CLOSE does not keep the client past CloseTimeout: the
// bound is from the CLOSE, not from the last byte read.
func TestClientCornerChattyServerNeverAnswersClose(t *testing.T) {
	const closeTimeout = 400 * time.Millisecond
	sawClose := make(chan time.Time, 1)
	addr, _ := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			frame := advFrame(0x82, bytes.Repeat([]byte("d"), 200))
			for {
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if _, err := conn.Write(frame); err != nil {
					return
				}
			}
		}()
		advReadClient(br, r)
		sawClose <- time.Now()
		io.Copy(io.Discard, br)
	})
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		time.Sleep(50 * time.Millisecond)
		return nil
	}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: closeTimeout}))
	end := time.Now()
	if d := end.Sub(after(t, sawClose, "the CLOSE")); d > closeTimeout*2 {
		t.Fatalf("Run returned %v after its CLOSE to a server that kept sending data (CloseTimeout %v)", d, closeTimeout)
	}
	if wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("Run returned %v, want a 1006 *CloseError: no closing handshake took place", err)
	}
}

// TestClientCornerStatsCountTheWire: docs/handlers.md: s.Stats() counts
// "MessagesIn, MessagesOut (whole data messages), BytesIn, BytesOut
// (payload bytes of data frames as they crossed the wire, compressed
// when permessage-deflate is on; control frames and frame headers are
// not counted)". A raw server that grants permessage-deflate counts what
// the client's data frames carried; the client's counts match, for
// whole, streamed, prepared and uncompressed messages; BytesIn counts the
// server's two frames.
func TestClientCornerStatsCountTheWire(t *testing.T) {
	type count struct{ msgs, bytes int64 }
	counted := make(chan count, 1)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"))
		conn.Write(append(advFrame(0x01, []byte("abc")), advFrame(0x80, []byte("defgh"))...))
		var c count
		for {
			f, err := readWireFrame(br)
			if err != nil {
				return
			}
			switch {
			case f.h.Op == frames.OpClose:
				counted <- c
				conn.Write(advFrame(0x88, f.p))
				return
			case !f.h.Op.IsControl():
				c.bytes += f.h.Length
				if f.h.Fin {
					c.msgs++
				}
			}
		}
	})
	o := advOpts(wsconn.Config{FragmentSize: 700, PingInterval: -1})
	o.Config.Compression.Enabled = true
	var st wsconn.Stats
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for m := range in.Messages(0) {
			if m.Text() != "abcdefgh" {
				return fmt.Errorf("message %q", m.Payload)
			}
			break
		}
		big := cornerPayload(20000, false, 9)
		if err := out.WriteText(ctx, string(cornerPayload(5000, true, 1))); err != nil {
			return err
		}
		if err := out.WriteBinary(ctx, big); err != nil {
			return err
		}
		if err := out.WriteBinary(ctx, big, wsconn.Uncompressed); err != nil {
			return err
		}
		if err := out.WritePrepared(ctx, wsconn.Prepare(messages.Text(string(cornerPayload(3000, true, 2))))); err != nil {
			return err
		}
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		for range 10 {
			w.Write(cornerPayload(999, true, 3))
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := out.WriteText(ctx, "tiny"); err != nil {
			return err
		}
		st = s.Stats()
		return nil
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	c := after(t, counted, "the server's count")
	if st.MessagesOut != c.msgs || st.BytesOut != c.bytes || st.MessagesIn != 1 || st.BytesIn != 8 {
		t.Fatalf("client counted %+v; the wire carried %d messages, %d payload bytes out, and 1 message of 8 bytes in", st, c.msgs, c.bytes)
	}
}

// TestClientCornerCancelWhileReadingMidMessage: docs/client.md:
// cancelling Run's context "cancels the handler's context; the handler
// returns and the connection closes", with 1001. The server sends part
// of a message (half a frame's payload, or the first fragment) and
// stalls: a loop waiting inside that message, with Messages or inside a
// Readers body, is woken, the handler returns, the server gets 1001 and
// Run returns promptly with the context's error.
func TestClientCornerCancelWhileReadingMidMessage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		partial []byte
		readers bool
	}{
		{"mid-payload, Messages", append([]byte{0x82, 126, 0x03, 0xE8}, make([]byte, 100)...), false},
		{"mid-payload, Readers", append([]byte{0x82, 126, 0x03, 0xE8}, make([]byte, 100)...), true},
		{"first fragment, Messages", advFrame(0x01, []byte("part one")), false},
		{"first fragment, Readers", advFrame(0x01, []byte("part one")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				conn.Write(tc.partial)
				advReadClient(br, r)
				if r.gotClose {
					conn.Write(advClose(uint16(r.closeCode), ""))
				}
			})
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var cancelled time.Time
			err := wsclient.Run(ctx, "ws://"+addr, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				time.AfterFunc(100*time.Millisecond, func() {
					cancelled = time.Now()
					cancel()
				})
				if tc.readers {
					for _, r := range in.Readers() {
						if _, err := io.Copy(io.Discard, r); err != nil {
							return err
						}
					}
				} else {
					for m := range in.Messages(0) {
						return fmt.Errorf("message of %d bytes", len(m.Payload))
					}
				}
				return in.Err()
			}, advOpts(wsconn.Config{PingInterval: -1, CloseTimeout: 2 * time.Second}))
			if d := time.Since(cancelled); d > time.Second {
				t.Fatalf("Run returned %v after the cancellation", d)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}
			if r := after(t, reports, "the server"); r.closeCode != frames.CloseGoingAway {
				t.Fatalf("server got close %d %q, want 1001", r.closeCode, r.closeText)
			}
		})
	}
}

package wsclient_test

// The client after the handshake, against hostile or broken servers
// written on raw loopback listeners (rawServer, switchAnswer, pReadFrame
// from the package's other test files): what the server sends must end
// the connection with the code docs/closing.md lists, Run must return what
// docs/client.md says, the client's own frames must all be masked with
// fresh keys, and nothing may hang or leak (TestMain runs goleak).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// ---- helpers ----

// advSrvReport is what an adversarial server saw of the client.
type advSrvReport struct {
	frames    []rawFrame // every frame the client sent, unmasked, up to its CLOSE
	unmasked  int        // frames that came without a mask
	keys      map[[4]byte]int
	closeCode frames.CloseCode
	closeText string
	gotClose  bool
}

// advReadClient reads the client's frames until its CLOSE (included) or
// an error, checking their masks.
func advReadClient(br *bufio.Reader, r *advSrvReport) {
	for {
		h, p, err := pReadFrame(br)
		if err != nil {
			return
		}
		if r.record(h, p, p) {
			return
		}
	}
}

// record notes a frame the client sent, keeping kept (p or a prefix of
// it) as its payload, and reports whether it is the client's CLOSE.
func (r *advSrvReport) record(h frames.Header, p, kept []byte) bool {
	if r.keys == nil {
		r.keys = map[[4]byte]int{}
	}
	if !h.Masked {
		r.unmasked++
	}
	r.keys[h.Mask]++
	r.frames = append(r.frames, rawFrame{h, kept})
	if h.Op != frames.OpClose {
		return false
	}
	r.gotClose = true
	r.closeCode, r.closeText, _ = frames.ParseClose(p)
	return true
}

// advWriteThenRead is a server that writes b after its 101, then reads
// the client's frames up to its CLOSE.
func advWriteThenRead(t *testing.T, b []byte) (string, <-chan *advSrvReport) {
	t.Helper()
	return advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		if len(b) > 0 {
			conn.Write(b)
		}
		advReadClient(br, r)
	})
}

// advSilentServer reads the client's frames up to its CLOSE, notes when
// the CLOSE came, and then holds TCP open and silent, even after the
// client's half-close, until runDone is closed (or hold has passed).
func advSilentServer(t *testing.T, hold time.Duration) (addr string, reports <-chan *advSrvReport, sawClose <-chan time.Time, runDone chan struct{}) {
	t.Helper()
	saw := make(chan time.Time, 1)
	runDone = make(chan struct{})
	addr, reports = advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		advReadClient(br, r)
		saw <- time.Now()
		_, _ = io.Copy(io.Discard, br)
		select {
		case <-runDone:
		case <-time.After(hold):
		}
	})
	return addr, reports, saw, runDone
}

// advServer answers the handshake with a valid 101, then runs script,
// and reports on the channel it returns once script is done.
func advServer(t *testing.T, script func(conn net.Conn, br *bufio.Reader, r *advSrvReport)) (string, <-chan *advSrvReport) {
	t.Helper()
	reports := make(chan *advSrvReport, 4)
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		r := &advSrvReport{}
		defer func() { reports <- r }()
		if _, err := io.WriteString(conn, switchAnswer(req, "")); err != nil {
			return
		}
		script(conn, br, r)
	})
	return addr, reports
}

// advFrame is an unmasked frame as a server writes it.
func advFrame(b0 byte, payload []byte) []byte {
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], frames.Header{Op: frames.Opcode(b0 & 0x0F), Fin: b0&0x80 != 0, Rsv: (b0 >> 4) & 7, Length: int64(len(payload))})
	return append(hb[:n:n], payload...)
}

// advClose is an unmasked CLOSE frame with code and reason.
func advClose(code uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, code)
	return advFrame(0x88, append(p, reason...))
}

// advOpts returns options with a quiet connection tuned by cfg.
func advOpts(cfg wsconn.Config) *wsclient.Options {
	o := options()
	cfg.Logger = quiet
	o.Config = &cfg
	return o
}

// advRun runs a client whose handler ranges over Messages (read true) or
// waits for its context (read false) and returns in.Err() or the
// context's cause. It returns what the handler received, how long Run
// took and Run's error.
func advRun(t *testing.T, addr string, o *wsclient.Options, read bool) ([]string, time.Duration, error) {
	t.Helper()
	var got []string
	start := time.Now()
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		if !read {
			<-ctx.Done()
			return context.Cause(ctx)
		}
		for m := range in.Messages(0) {
			got = append(got, string(m.Payload))
		}
		return in.Err()
	}, o)
	return got, time.Since(start), err
}

// ---- protocol violations by the server ----

// TestClientAdvServerViolations: every violation docs/closing.md lists
// that a server can commit, sent after a valid 101, whether the handler
// reads (the loop meets it) or only waits for its context (the
// background reader meets it). The client's CLOSE carries the row's code,
// goes out masked, and Run returns a *wsconn.CloseError with that code
// whose Err is the violation (docs/client.md "What the client checks and
// sends"). Nothing of the bad frame reaches the handler.
func TestClientAdvServerViolations(t *testing.T) {
	huge := []byte{0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}    // 2^63-1 bytes announced
	msb := []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 'a', 'b', 'c', 'd', 'e'} // top bit set
	for _, tc := range []struct {
		name   string
		send   []byte
		code   frames.CloseCode
		err    error
		noBack bool // the background reader leaves it to a loop (data frames past ReadAhead)
	}{
		{"masked PING", []byte{0x89, 0x82, 1, 2, 3, 4, 'p' ^ 1, 'i' ^ 2}, 1002, frames.ErrMasked, false},
		{"masked CLOSE", []byte{0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2}, 1002, frames.ErrMasked, false},
		{"masked continuation", append(advFrame(0x01, []byte("he")), 0x80, 0x81, 9, 9, 9, 9, 'y'^9), 1002, frames.ErrMasked, true},
		{"fragmented PING", advFrame(0x09, []byte("p")), 1002, frames.ErrFragmentedControl, false},
		{"fragmented CLOSE", advFrame(0x08, []byte{0x03, 0xe8}), 1002, frames.ErrFragmentedControl, false},
		{"PING of 126 bytes", advFrame(0x89, bytes.Repeat([]byte("p"), 126)), 1002, frames.ErrControlTooLong, false},
		{"CLOSE announcing 2^63-1 bytes", []byte{0x88, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 1002, frames.ErrControlTooLong, false},
		{"RSV1 without extension", advFrame(0x91|0x40, []byte("hi")), 1002, frames.ErrReservedBits, false},
		{"RSV2", advFrame(0xA1, []byte("hi")), 1002, frames.ErrReservedBits, false},
		{"RSV3 on binary", advFrame(0x92, []byte("hi")), 1002, frames.ErrReservedBits, false},
		{"RSV1 on PING", advFrame(0xC9, nil), 1002, frames.ErrReservedBits, false},
		{"reserved data opcode 3", advFrame(0x83, []byte("x")), 1002, frames.ErrReservedOpcode, false},
		{"reserved control opcode 0xB", advFrame(0x8B, nil), 1002, frames.ErrReservedOpcode, false},
		{"64-bit length with top bit", msb, 1002, frames.ErrLengthMSB, false},
		{"continuation first", advFrame(0x80, []byte("x")), 1002, messages.ErrUnexpectedContinuation, true},
		{"new text inside a fragmented one", append(advFrame(0x01, []byte("a")), advFrame(0x81, []byte("b"))...), 1002, messages.ErrExpectedContinuation, true},
		{"invalid UTF-8 text", advFrame(0x81, []byte{'o', 'k', 0xff}), 1007, messages.ErrInvalidUTF8, true},
		{"huge frame 2^63-1", huge, 1009, messages.ErrTooLarge, true},
		{"CLOSE of one byte", advFrame(0x88, []byte{0x03}), 1002, frames.ErrClosePayload, false},
		{"CLOSE reason invalid UTF-8", advClose(1000, "bad\xc3"), 1007, frames.ErrInvalidCloseReason, false},
	} {
		for _, read := range []bool{true, false} {
			if !read && tc.noBack {
				continue
			}
			t.Run(fmt.Sprintf("%s/read=%v", tc.name, read), func(t *testing.T) {
				addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
					conn.Write(tc.send)
					advReadClient(br, r)
					if r.gotClose {
						conn.Write(advClose(uint16(r.closeCode), ""))
					}
				})
				snap := goleak.IgnoreCurrent()
				got, took, err := advRun(t, addr, advOpts(wsconn.Config{}), read)
				var ce *wsconn.CloseError
				var v *frames.Violation
				if !errors.As(err, &ce) || ce.Code != tc.code || !errors.As(ce.Err, &v) || !errors.Is(err, tc.err) {
					t.Fatalf("Run returned %v (%T), want a *CloseError %d wrapping %v", err, err, tc.code, tc.err)
				}
				if len(got) != 0 {
					t.Fatalf("handler received %q", got)
				}
				r := after(t, reports, "the server's report")
				if !r.gotClose || r.closeCode != tc.code || r.unmasked != 0 {
					t.Fatalf("server got close %v code %d (%q), %d unmasked frames; want a masked CLOSE %d", r.gotClose, r.closeCode, r.closeText, r.unmasked, tc.code)
				}
				if took > 4*time.Second {
					t.Fatalf("Run took %v", took)
				}
				if err := goleak.Find(snap); err != nil {
					t.Fatalf("goroutines left: %v", err)
				}
			})
		}
	}
}

// TestClientAdvInvalidCloseCodes: a CLOSE from the server with a code that
// may not be sent (docs/closing.md: below 1000, 1004–1006, 1015–2999,
// 5000 and up) is a violation: the client answers 1002, not an echo.
func TestClientAdvInvalidCloseCodes(t *testing.T) {
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			addr, reports := advWriteThenRead(t, advClose(code, "x"))
			_, _, err := advRun(t, addr, advOpts(wsconn.Config{CloseTimeout: time.Second}), true)
			if wsconn.CloseStatus(err) != frames.CloseProtocolError || !errors.Is(err, frames.ErrInvalidCloseCode) {
				t.Fatalf("Run returned %v, want 1002 invalid close code", err)
			}
			if r := after(t, reports, "the server"); r.closeCode != frames.CloseProtocolError || r.unmasked != 0 {
				t.Fatalf("client closed with %d, want 1002", r.closeCode)
			}
		})
	}
}

// TestClientAdvValidCloseCodesEchoed: a CLOSE with a code that may be
// sent is answered with the same code (docs/closing.md "the peer's code,
// echoed at once"; an empty CLOSE for none). What the handler passes on
// from in.Err() is nil for 1000, 1001 and no code, else a *CloseError
// with the server's code and reason, which Run returns.
func TestClientAdvValidCloseCodesEchoed(t *testing.T) {
	for _, tc := range []struct {
		code    uint16
		reason  string
		empty   bool
		wantErr bool
	}{
		{1000, "bye", false, false},
		{1001, "", false, false},
		{0, "", true, false},
		{1003, "no binary", false, true},
		{1012, "restart", false, true},
		{1014, "", false, true},
		{3000, "app", false, true},
		{4999, "ünïcödé", false, true},
	} {
		t.Run(fmt.Sprint(tc.code, tc.empty), func(t *testing.T) {
			addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				if tc.empty {
					conn.Write([]byte{0x88, 0x00})
				} else {
					conn.Write(advClose(tc.code, tc.reason))
				}
				advReadClient(br, r)
			})
			_, took, err := advRun(t, addr, advOpts(wsconn.Config{}), true)
			if !tc.wantErr && err != nil {
				t.Fatalf("Run returned %v after a clean close", err)
			}
			if tc.wantErr {
				var ce *wsconn.CloseError
				if !errors.As(err, &ce) || int(ce.Code) != int(tc.code) || ce.Reason != tc.reason {
					t.Fatalf("Run returned %v, want the server's %d %q", err, tc.code, tc.reason)
				}
			}
			r := after(t, reports, "the server")
			if len(r.frames) != 1 || !r.gotClose || r.unmasked != 0 {
				t.Fatalf("client sent %d frames (close %v), want one masked CLOSE", len(r.frames), r.gotClose)
			}
			switch p := r.frames[0].p; {
			case tc.empty && len(p) != 0:
				t.Fatalf("answer to an empty CLOSE carries % x", p)
			case !tc.empty && r.closeCode != frames.CloseCode(tc.code):
				t.Fatalf("client answered %d, want the echo %d", r.closeCode, tc.code)
			}
			// The server closed TCP at once: the client waits no CloseTimeout.
			if took > 3*time.Second {
				t.Fatalf("Run took %v", took)
			}
		})
	}
}

// TestClientAdvDataAfterServerClose: RFC 6455 §5.5.1: nothing may follow
// a CLOSE. Data the server sends after its CLOSE never reaches the
// handler; the message before it does; the client sends only its CLOSE.
func TestClientAdvDataAfterServerClose(t *testing.T) {
	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprint("read=", read), func(t *testing.T) {
			addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				var b []byte
				b = append(b, advFrame(0x81, []byte("before"))...)
				b = append(b, advClose(1000, "")...)
				b = append(b, advFrame(0x81, []byte("after"))...)
				b = append(b, advFrame(0x89, []byte("ping after"))...)
				b = append(b, 0x81, 0x82, 1, 2, 3, 4, 5, 6) // masked garbage
				conn.Write(b)
				advReadClient(br, r)
			})
			if read {
				got, _, err := advRun(t, addr, advOpts(wsconn.Config{}), true)
				if err != nil || !slices.Equal(got, []string{"before"}) {
					t.Fatalf("Run %v, handler got %q; want nil and only \"before\"", err, got)
				}
			} else {
				// The background reader meets the CLOSE and the handler's
				// context ends (a loop started after that yields nothing:
				// docs Inbound); the client answers and sends nothing else.
				advRun(t, addr, advOpts(wsconn.Config{}), false)
			}
			r := after(t, reports, "the server")
			if len(r.frames) != 1 || r.closeCode != frames.CloseNormal || r.unmasked != 0 {
				t.Fatalf("client sent %d frames, close %d; want one masked CLOSE 1000 (no PONG to a PING after the CLOSE)", len(r.frames), r.closeCode)
			}
		})
	}
}

// ---- the closing handshake against servers that do not play along ----

// TestClientAdvServerNeverAnswersClose: the handler returns nil, the
// server reads our CLOSE and then neither answers nor closes TCP.
// wsconn.Config: "CloseTimeout is how long the closing handshake waits
// for the peer's CLOSE frame before closing the TCP connection, from the
// moment colibri's CLOSE went out." docs/client.md: the client "waits, up
// to Config.CloseTimeout, for the server to close TCP first". Either way
// the TCP connection is closed about CloseTimeout after our CLOSE, not
// twice that.
func TestClientAdvServerNeverAnswersClose(t *testing.T) {
	const closeTimeout = time.Second
	// The server holds TCP open and silent until Run has returned
	// (having closed TCP).
	addr, reports, sawClose, runDone := advSilentServer(t, 5*time.Second)
	_ = wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		return nil
	}, advOpts(wsconn.Config{CloseTimeout: closeTimeout}))
	end := time.Now()
	close(runDone)
	r := after(t, reports, "the server")
	if !r.gotClose || r.closeCode != frames.CloseNormal {
		t.Fatalf("client closed with %d (%v), want 1000", r.closeCode, r.gotClose)
	}
	start := after(t, sawClose, "the CLOSE")
	if d := end.Sub(start); d > closeTimeout*3/2 {
		t.Fatalf("Run closed TCP and returned %v after its CLOSE went out, want about CloseTimeout (%v)", d, closeTimeout)
	}
}

// TestClientAdvNeverAnsweredCloseRunError: the handler returned nil; the
// server read the CLOSE and half-closed without answering. No closing
// handshake took place, so Run reports the reason the connection failed,
// a 1006 *CloseError wrapping io.EOF (docs/closing.md: "the TCP
// connection ended without a CLOSE frame"), at once.
func TestClientAdvNeverAnsweredCloseRunError(t *testing.T) {
	addr, _ := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		advReadClient(br, r)
		// Half-close without a CLOSE: the client's read ends with EOF.
		conn.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, br)
	})
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		return nil
	}, advOpts(wsconn.Config{CloseTimeout: 2 * time.Second}))
	if wsconn.CloseStatus(err) != frames.CloseAbnormal || !errors.Is(err, io.EOF) {
		t.Fatalf("Run returned %v, want a 1006 *CloseError wrapping io.EOF", err)
	}
}

// TestClientAdvServerDropsTCPWithoutClose: the server sends a message and
// then closes TCP (fully, or only its sending side) without a CLOSE. The
// handler gets the message, in.Err() is a 1006 *CloseError wrapping
// io.EOF, Run returns it, quickly; a server that still reads gets the
// client's CLOSE 1000 (docs/closing.md: "the peer stopped sending without
// a CLOSE ... 1000").
func TestClientAdvServerDropsTCPWithoutClose(t *testing.T) {
	for _, half := range []bool{false, true} {
		t.Run(fmt.Sprint("half=", half), func(t *testing.T) {
			addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				conn.Write(advFrame(0x81, []byte("last words")))
				if !half {
					return // rawServer closes conn
				}
				conn.(*net.TCPConn).CloseWrite()
				advReadClient(br, r)
			})
			got, took, err := advRun(t, addr, advOpts(wsconn.Config{CloseTimeout: 5 * time.Second}), true)
			if !slices.Equal(got, []string{"last words"}) {
				t.Fatalf("handler got %q", got)
			}
			if wsconn.CloseStatus(err) != frames.CloseAbnormal || !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Run returned %v, want 1006 wrapping EOF", err)
			}
			if took > 3*time.Second {
				t.Fatalf("Run took %v", took)
			}
			r := after(t, reports, "the server")
			if half && (r.closeCode != frames.CloseNormal || r.unmasked != 0) {
				t.Fatalf("half-closed server got close %d", r.closeCode)
			}
		})
	}
}

// TestClientAdvServerStopsMidFrameThenCloses: the server closes TCP in
// the middle of a frame header or payload; the client must not hang and
// Run reports 1006.
func TestClientAdvServerStopsMidFrameThenCloses(t *testing.T) {
	for _, part := range [][]byte{
		{0x81},
		{0x82, 127, 0, 0},
		{0x82, 126, 0x10, 0x00, 'a', 'b'},
		{0x01, 0x02, 'h', 'i'}, // a fragment, then nothing
		{0x89, 0x05, 'p'},
	} {
		t.Run(fmt.Sprintf("% x", part), func(t *testing.T) {
			addr, _ := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
				conn.Write(part)
			})
			got, took, err := advRun(t, addr, advOpts(wsconn.Config{}), true)
			if wsconn.CloseStatus(err) != frames.CloseAbnormal || len(got) != 0 || took > 3*time.Second {
				t.Fatalf("Run %v after %v, handler got %q; want 1006 quickly", err, took, got)
			}
		})
	}
}

// ---- keep-alive and idle timeout ----

// TestClientAdvPongNeverComes: the server reads our PINGs and never
// answers: the client closes with 1001 "ping timeout" and Run returns the
// *CloseError wrapping ErrPingTimeout (docs/closing.md), whether the
// handler reads or not.
func TestClientAdvPongNeverComes(t *testing.T) {
	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprint("read=", read), func(t *testing.T) {
			addr, reports := advWriteThenRead(t, nil)
			_, took, err := advRun(t, addr, advOpts(wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond, CloseTimeout: 500 * time.Millisecond}), read)
			if !errors.Is(err, wsconn.ErrPingTimeout) || wsconn.CloseStatus(err) != frames.CloseGoingAway {
				t.Fatalf("Run returned %v, want 1001 ping timeout", err)
			}
			if took > 4*time.Second {
				t.Fatalf("Run took %v", took)
			}
			r := after(t, reports, "the server")
			if r.unmasked != 0 || r.closeCode != frames.CloseGoingAway || r.closeText != "ping timeout" {
				t.Fatalf("server got close %d %q", r.closeCode, r.closeText)
			}
			pings := 0
			for _, f := range r.frames {
				if f.h.Op == frames.OpPing {
					pings++
				}
			}
			if pings != 1 || len(r.keys) != len(r.frames) {
				t.Fatalf("%d PINGs, %d keys for %d frames; want one PING and a fresh key each", pings, len(r.keys), len(r.frames))
			}
		})
	}
}

// TestClientAdvLatePongKeepsConnection: a server that answers each PING
// late, but within PongTimeout (and with a payload of its own: any frame
// counts), keeps the connection; the handler ends it with 1000.
func TestClientAdvLatePongKeepsConnection(t *testing.T) {
	const pings = 3
	answered := make(chan struct{}, pings)
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		var mu sync.Mutex // the reader and the delayed PONGs write
		for {
			h, p, err := pReadFrame(br)
			if err != nil {
				return
			}
			closed := r.record(h, p, p)
			switch {
			case h.Op == frames.OpPing:
				time.AfterFunc(300*time.Millisecond, func() {
					mu.Lock()
					conn.Write(advFrame(0x8A, []byte("not your payload")))
					mu.Unlock()
					answered <- struct{}{}
				})
			case closed:
				mu.Lock()
				conn.Write(advClose(1000, ""))
				mu.Unlock()
				return
			}
		}
	})
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		// A sibling reads, so that the PONGs are seen at once; Run
		// waits for it.
		if err := s.Go(func(ctx context.Context) error {
			for m := range in.Messages(0) {
				return fmt.Errorf("message %q", m.Payload)
			}
			return in.Err()
		}); err != nil {
			return err
		}
		for range pings {
			select {
			case <-answered:
			case <-ctx.Done():
				return fmt.Errorf("connection ended: %w", context.Cause(ctx))
			}
		}
		return nil
	}, advOpts(wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: time.Second}))
	if err != nil {
		t.Fatalf("Run returned %v, want nil: late PONGs within PongTimeout keep the connection", err)
	}
	if r := after(t, reports, "the server"); r.closeCode != frames.CloseNormal || r.unmasked != 0 {
		t.Fatalf("client closed with %d", r.closeCode)
	}
}

// TestClientAdvPongTimeoutWhileServerStallsMidFrame: the server sends the
// start of a frame and stalls, never answering PINGs. The loop is waiting
// on the socket for the rest of the frame, so the pong timeout must
// strike (docs/closing.md "Keep-alive": "If no frame at all arrives within
// Config.PongTimeout of that PING leaving, the connection closes with
// 1001 ping timeout ... The timeout strikes only while colibri is waiting
// on the socket (a loop, or the background reader").
func TestClientAdvPongTimeoutWhileServerStallsMidFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		partial []byte
		readers bool
	}{
		{"data payload, Messages", append([]byte{0x82, 126, 0x03, 0xE8}, make([]byte, 10)...), false},
		{"data payload, Readers", append([]byte{0x82, 126, 0x03, 0xE8}, make([]byte, 10)...), true},
		{"PING payload", []byte{0x89, 0x7D, 'p'}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, reports := advWriteThenRead(t, tc.partial)
			o := advOpts(wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond, CloseTimeout: 500 * time.Millisecond})
			ctx, cancel := context.WithTimeout(testCtx(t), 4*time.Second)
			defer cancel()
			start := time.Now()
			err := wsclient.Run(ctx, "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				if tc.readers {
					for _, r := range in.Readers() {
						if _, err := io.Copy(io.Discard, r); err != nil {
							return err
						}
					}
				} else {
					for range in.Messages(0) {
					}
				}
				return in.Err()
			}, o)
			took := time.Since(start)
			r := after(t, reports, "the server")
			if !errors.Is(err, wsconn.ErrPingTimeout) || r.closeText != "ping timeout" {
				t.Fatalf("Run returned %v after %v (server got close %d %q), want the ping timeout within about 0.5 s", err, took, r.closeCode, r.closeText)
			}
			if took > 3*time.Second {
				t.Fatalf("ping timeout after %v", took)
			}
		})
	}
}

// TestClientAdvKeepAliveTimeoutDoesNotWaitForSilentServer: docs/closing.md
// "The closing handshake and TCP": "colibri, after a keep-alive or idle
// timeout | sends CLOSE at once and, once the handler has returned,
// closes TCP without waiting: the peer is not answering." A server that
// reads the client's CLOSE and stays silent must not hold Run for
// CloseTimeout.
func TestClientAdvKeepAliveTimeoutDoesNotWaitForSilentServer(t *testing.T) {
	const closeTimeout = 3 * time.Second
	addr, _, sawClose, runDone := advSilentServer(t, 8*time.Second)
	_, _, err := advRun(t, addr, advOpts(wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond, CloseTimeout: closeTimeout}), true)
	end := time.Now()
	close(runDone)
	if !errors.Is(err, wsconn.ErrPingTimeout) {
		t.Fatalf("Run returned %v, want the ping timeout", err)
	}
	if d := end.Sub(after(t, sawClose, "the CLOSE")); d > closeTimeout/2 {
		t.Fatalf("Run returned %v after its CLOSE went out to a server that stopped answering; want no wait (CloseTimeout %v)", d, closeTimeout)
	}
}

// TestClientAdvIdleTimeoutWhileServerStallsMidFrame: the same stalled
// server, PINGs answered or not, with keep-alive off and IdleTimeout set:
// no data frame completes, so the idle timeout closes with 1001 "idle
// timeout".
func TestClientAdvIdleTimeoutWhileServerStallsMidFrame(t *testing.T) {
	for _, partial := range [][]byte{
		append([]byte{0x82, 126, 0x03, 0xE8}, make([]byte, 10)...), // mid-payload
		{0x82, 127, 0, 0}, // mid-header
		{0x01, 0x01, 'a'}, // a first fragment, and no more
		{0x89, 0x04, 'p'}, // mid-PING
	} {
		t.Run(fmt.Sprintf("% x", partial[:min(4, len(partial))]), func(t *testing.T) {
			const idle = 400 * time.Millisecond
			addr, reports := advWriteThenRead(t, partial)
			_, took, err := advRun(t, addr, advOpts(wsconn.Config{PingInterval: -1, IdleTimeout: idle, CloseTimeout: 500 * time.Millisecond}), true)
			if !errors.Is(err, wsconn.ErrIdleTimeout) || wsconn.CloseStatus(err) != frames.CloseGoingAway {
				t.Fatalf("Run returned %v, want 1001 idle timeout", err)
			}
			if took < idle || took > 4*time.Second {
				t.Fatalf("Run took %v, want about %v", took, idle)
			}
			if r := after(t, reports, "the server"); r.closeText != "idle timeout" || r.unmasked != 0 {
				t.Fatalf("server got close %d %q", r.closeCode, r.closeText)
			}
		})
	}
}

// TestClientAdvPingFloodNeverReading: the server floods PINGs and never
// reads the client's PONGs. The client's PONG writes block once the
// socket fills, and WriteTimeout ends the connection: Run returns a 1006
// *CloseError wrapping ErrWriteTimeout (docs/closing.md) within seconds.
func TestClientAdvPingFloodNeverReading(t *testing.T) {
	stop := make(chan struct{})
	addr, _ := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		tc := conn.(*net.TCPConn)
		_ = tc.SetReadBuffer(4096)
		frame := advFrame(0x89, bytes.Repeat([]byte("p"), 125))
		batch := bytes.Repeat(frame, 100)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.Write(batch); err != nil {
				return
			}
		}
	})
	o := advOpts(wsconn.Config{WriteTimeout: 300 * time.Millisecond, PingInterval: -1, CloseTimeout: 500 * time.Millisecond})
	o.NetDial = func(ctx context.Context, network, a string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, a)
		if err == nil {
			_ = c.(*net.TCPConn).SetWriteBuffer(4096)
		}
		return c, err
	}
	_, took, err := advRun(t, addr, o, true)
	close(stop)
	if !errors.Is(err, wsconn.ErrWriteTimeout) || wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("Run returned %v, want 1006 wrapping ErrWriteTimeout", err)
	}
	if took > 6*time.Second {
		t.Fatalf("Run took %v", took)
	}
}

// ---- what the client sends ----

// TestClientAdvControlFramesMaskedAndBuffersKept: PONGs to the server's
// PINGs, the handler's own PING, prepared messages (which a server
// shares, but a client must mask afresh) and the CLOSE are all masked,
// each with a key of its own, unmask to the right payload, and leave the
// caller's buffers as they were (docs/client.md "What the client checks
// and sends").
func TestClientAdvControlFramesMaskedAndBuffersKept(t *testing.T) {
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		conn.Write(advFrame(0x89, []byte("srv-ping-1")))
		conn.Write(advFrame(0x89, []byte("srv-ping-2")))
		conn.Write(advFrame(0x81, []byte("go")))
		advReadClient(br, r)
		conn.Write(advClose(uint16(r.closeCode), ""))
	})
	pingBuf := []byte("client ping payload")
	pingOrig := slices.Clone(pingBuf)
	prep := wsconn.Prepare(messages.Binary(bytes.Repeat([]byte{0xAB, 0xCD}, 3000)))
	prepOrig := slices.Clone(prep.Message().Payload)
	smallPrep := wsconn.Prepare(messages.Text("prepared"))
	err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		// The loop answers the two PINGs before it yields "go".
		for m := range in.Messages(0) {
			if m.Text() != "go" {
				return fmt.Errorf("message %q", m.Payload)
			}
			break
		}
		if err := out.Ping(ctx, pingBuf); err != nil {
			return err
		}
		for range 2 {
			if err := out.WritePrepared(ctx, prep); err != nil {
				return err
			}
		}
		if n, err := out.WritePreparedBatch(ctx, []*wsconn.Prepared{smallPrep, smallPrep, prep}); err != nil || n != 3 {
			return fmt.Errorf("batch %d, %v", n, err)
		}
		return &wsconn.CloseError{Code: 4321, Reason: "done here"}
	}, advOpts(wsconn.Config{}))
	if ce, ok := errors.AsType[*wsconn.CloseError](err); !ok || ce.Code != 4321 {
		t.Fatalf("Run returned %v, want the handler's *CloseError back (docs/client.md)", err)
	}
	r := after(t, reports, "the server")
	if !bytes.Equal(pingBuf, pingOrig) || !bytes.Equal(prep.Message().Payload, prepOrig) || smallPrep.Message().Text() != "prepared" {
		t.Fatal("the client modified a caller's buffer")
	}
	if r.unmasked != 0 || len(r.keys) != len(r.frames) {
		t.Fatalf("%d unmasked frames, %d keys for %d frames", r.unmasked, len(r.keys), len(r.frames))
	}
	var pongs []string
	var prepared, texts int
	for _, f := range r.frames {
		switch f.h.Op {
		case frames.OpPong:
			pongs = append(pongs, string(f.p))
		case frames.OpPing:
			if !bytes.Equal(f.p, pingOrig) {
				t.Fatalf("PING unmasks to %q", f.p)
			}
		case frames.OpBinary:
			if !bytes.Equal(f.p, prepOrig) {
				t.Fatalf("prepared binary unmasks to something else (%d bytes)", len(f.p))
			}
			prepared++
		case frames.OpText:
			if string(f.p) != "prepared" {
				t.Fatalf("prepared text unmasks to %q", f.p)
			}
			texts++
		}
	}
	// A newer PONG may replace an unsent one (RFC 6455 §5.5.3): at least
	// the last PING is answered.
	if len(pongs) == 0 || pongs[len(pongs)-1] != "srv-ping-2" || prepared != 3 || texts != 2 {
		t.Fatalf("pongs %q, %d prepared binary, %d prepared text", pongs, prepared, texts)
	}
	if r.closeCode != 4321 || r.closeText != "done here" {
		t.Fatalf("close %d %q", r.closeCode, r.closeText)
	}
}

// TestClientAdvContextEndMidMessage: Run's context ends while the
// handler writes a long fragmented message to a server that reads slowly.
// docs/client.md: "colibri sends 1001 Going Away after the message being
// written": the server gets the whole message, every fragment masked,
// then CLOSE 1001; Run returns.
func TestClientAdvContextEndMidMessage(t *testing.T) {
	const size = 8 << 20
	firstFrame := make(chan struct{})
	goOn := make(chan struct{})
	addr, reports := advServer(t, func(conn net.Conn, br *bufio.Reader, r *advSrvReport) {
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		first := true
		for {
			h, p, err := pReadFrame(br)
			if err != nil {
				return
			}
			if r.record(h, p, p[:min(len(p), 16)]) {
				conn.Write(advClose(uint16(r.closeCode), ""))
				return
			}
			if first {
				first = false
				close(firstFrame)
				<-goOn
			}
		}
	})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	payload := bytes.Repeat([]byte("z"), size)
	writeErr := make(chan error, 1)
	runErr := make(chan error, 1)
	go func() {
		runErr <- wsclient.Run(ctx, "ws://"+addr, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
			err := out.WriteBinary(hctx, payload)
			writeErr <- err
			<-hctx.Done()
			return err
		}, advOpts(wsconn.Config{FragmentSize: 16 << 10, PingInterval: -1}))
	}()
	after(t, firstFrame, "the first fragment")
	cancel()
	close(goOn)
	if err := after(t, writeErr, "the write"); err != nil {
		t.Fatalf("the write under way when the context ended failed: %v", err)
	}
	after(t, runErr, "Run")
	r := after(t, reports, "the server")
	var total int
	for _, f := range r.frames {
		if f.h.Op != frames.OpClose {
			total += int(f.h.Length)
		}
	}
	last := r.frames[len(r.frames)-2]
	if total != size || !last.h.Fin || r.closeCode != frames.CloseGoingAway || r.unmasked != 0 || len(r.keys) != len(r.frames) {
		t.Fatalf("server got %d of %d bytes (last fin %v), close %d, %d unmasked, %d keys/%d frames; want the whole message, then 1001",
			total, size, last.h.Fin, r.closeCode, r.unmasked, len(r.keys), len(r.frames))
	}
}

// ---- proxies ----

// advProxy is a raw "proxy": it reads the CONNECT request and lets answer
// write whatever it likes.
func advProxy(t *testing.T, answer func(conn net.Conn, br *bufio.Reader, req *http.Request)) *url.URL {
	t.Helper()
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		if req.Method != http.MethodConnect {
			return
		}
		answer(conn, br, req)
	})
	return &url.URL{Scheme: "http", Host: addr}
}

func advProxyOpts(p *url.URL) *wsclient.Options {
	o := options()
	o.Proxy = http.ProxyURL(p)
	o.HandshakeTimeout = 2 * time.Second
	return o
}

// TestClientAdvProxyAnswers: an HTTP CONNECT proxy that refuses with 407
// (with and without a body), answers 200 and then garbage, closes in the
// middle of its answer, or stalls. A refusal is a HandshakeError with
// Proxy set; the others fail Dial quickly (or at the handshake timeout)
// with an error that is not a HandshakeError and leave nothing behind.
func TestClientAdvProxyAnswers(t *testing.T) {
	const target = "ws://ws.invalid:81/x"
	for _, tc := range []struct {
		name    string
		answer  func(conn net.Conn, br *bufio.Reader, req *http.Request)
		refusal int // the HandshakeError's status; 0: not a HandshakeError
		timeout bool
		text    string
	}{
		{"407 with body", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 4\r\n\r\nauth")
			io.Copy(io.Discard, br)
		}, 407, false, ""},
		{"407 with an empty body, connection kept", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
			io.Copy(io.Discard, br)
		}, 407, false, ""},
		// RFC 9112 §6.3: without Content-Length or chunking, a response's
		// body runs until the connection closes; a proxy that keeps it
		// open never finishes its refusal, and the handshake times out.
		{"407 without framing, connection kept", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
			io.Copy(io.Discard, br)
		}, 0, true, "read the body of a 407"},
		{"101 to CONNECT", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(io.Discard, br)
		}, 101, false, ""},
		{"200 then garbage", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
			http.ReadRequest(br) // the upgrade request, through the "tunnel"
			io.WriteString(conn, "\x00\x01\x02 garbage that is not HTTP\r\n\r\n")
			io.Copy(io.Discard, br)
		}, 0, false, "malformed HTTP"},
		{"200 and garbage in one write", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\n\r\nSSH-2.0-OpenSSH\r\n")
			io.Copy(io.Discard, br)
		}, 0, false, "malformed HTTP"},
		{"200 then close", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		}, 0, false, ""},
		{"close inside the status line", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 20")
		}, 0, false, "read CONNECT response"},
		{"close inside the headers", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nVia: 1.1 pro")
		}, 0, false, "read CONNECT response"},
		{"close inside a 407 body", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 100\r\n\r\nshort")
		}, 407, false, ""},
		{"stall inside the headers", func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nVia: 1.1 pro")
			io.Copy(io.Discard, br)
		}, 0, true, "handshake took longer than 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := advProxy(t, tc.answer)
			start := time.Now()
			u, resp, err := wsclient.Dial(testCtx(t), target, advProxyOpts(p))
			took := time.Since(start)
			if err == nil {
				u.Conn.Close()
				t.Fatal("Dial succeeded")
			}
			if u.Conn != nil {
				t.Fatal("a failed Dial returned a connection")
			}
			var he *wsclient.HandshakeError
			isHE := errors.As(err, &he)
			switch {
			case tc.refusal != 0:
				if !isHE || !he.Proxy || he.StatusCode != tc.refusal || resp == nil || resp.StatusCode != tc.refusal {
					t.Fatalf("got %v (%T), want a proxy HandshakeError %d", err, err, tc.refusal)
				}
			case isHE:
				t.Fatalf("got HandshakeError %v, want a dial error", err)
			case !strings.HasPrefix(err.Error(), "wsclient: dial "+target+": "):
				t.Fatalf("error %q not wrapped with the URL", err)
			}
			if tc.timeout != errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v; want the handshake timeout: %v", err, tc.timeout)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not say %q", err, tc.text)
			}
			if !tc.timeout && took > time.Second {
				t.Fatalf("Dial took %v", took)
			}
		})
	}
}

// TestClientAdvProxyTunnelThenServer: a proxy whose
// 200 to CONNECT carries a Content-Length (RFC 9110 §9.3.6: a client
// ignores it; the bytes belong to the tunnel). Here the "body" is a
// valid 101 that the proxy writes only after the upgrade request came
// through: the tunnel works.
func TestClientAdvProxyTunnelThenServer(t *testing.T) {
	p := advProxy(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\nContent-Length: 0\r\n\r\n")
		up, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(conn, switchAnswer(up, "")+string(advFrame(0x81, []byte("via proxy"))))
		var r advSrvReport
		advReadClient(br, &r)
		if r.gotClose {
			conn.Write(advClose(1000, ""))
		}
	})
	var got []string
	err := wsclient.Run(testCtx(t), "ws://ws.invalid:81/x", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
		for m := range in.Messages(0) {
			got = append(got, m.Text())
			return nil
		}
		return in.Err()
	}, advProxyOpts(p))
	if err != nil || !slices.Equal(got, []string{"via proxy"}) {
		t.Fatalf("Run %v, got %q", err, got)
	}
}

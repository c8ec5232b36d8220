package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// r3Claimed reports, within d, whether some goroutine is in startLoop
// waiting for the read side (takeRead): a loop has claimed the Inbound.
func r3Claimed(d time.Duration) bool {
	buf := make([]byte, 1<<20)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "wsconn.(*Conn).takeRead") && strings.Contains(g, "wsconn.(*Conn).startLoop") {
				return true
			}
		}
	}
	return false
}

// r3Hook is a ConnObserver whose PingRTT, run by the background reader
// as it handles the PONG to colibri's keep-alive PING, tells the handler
// to start its next loop and returns only once that loop has claimed the
// Inbound and waits for the read side (seen in the goroutine stacks): the
// background reader then takes the CLOSE buffered behind the PONG.
type r3Hook struct {
	wsconn.NopObserver
	start   chan struct{}
	claimed chan bool
}

func newR3Hook() *r3Hook {
	return &r3Hook{start: make(chan struct{}), claimed: make(chan bool, 1)}
}

func (o *r3Hook) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }

func (o *r3Hook) PingRTT(time.Duration) {
	select {
	case <-o.start:
		return
	default:
	}
	close(o.start)
	o.claimed <- r3Claimed(3 * time.Second)
}

// r3AfterPing waits for colibri's PING, then sends tail, the PONG and
// the peer's CLOSE 1000 in one write, and returns the code of the
// server's CLOSE.
func r3AfterPing(t *testing.T, c *rawClient, tail []byte) frames.CloseCode {
	t.Helper()
	var ping []byte
	for {
		h, p := c.read()
		if h.Op == frames.OpPing {
			ping = p
			break
		}
	}
	b := append([]byte(nil), tail...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpPong, Fin: true, Mask: [4]byte{5, 6, 7, 8}}, ping)...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpClose, Fin: true, Mask: [4]byte{9, 9, 9, 9}}, closePayload(frames.CloseNormal, ""))...)
	c.write(b)
	for {
		h, p := c.read()
		if h.Op == frames.OpClose {
			code, _, err := frames.ParseClose(p)
			if err != nil {
				t.Fatalf("bad close payload %x: %v", p, err)
			}
			return code
		}
	}
}

func r3Frame(op frames.Opcode, fin bool, p []byte) []byte {
	return maskedFrame(frames.Header{Op: op, Fin: fin, Mask: [4]byte{1, 2, 3, 4}}, p)
}

// TestCornerReadersAfterPanickedBodyYieldsKeptMessageBehindTheRest: a Readers
// body reads one byte of a 100-byte message and panics (recovered). While
// no loop runs, the peer sends a second message, the PONG and its CLOSE;
// a new Readers loop claims the Inbound before the background reader
// takes the CLOSE. It must discard the first message's rest, yield the
// second message, and end with Err nil after a 1000.
func TestCornerReadersAfterPanickedBodyYieldsKeptMessageBehindTheRest(t *testing.T) {
	obs := newR3Hook()
	type item struct {
		kind messages.Kind
		p    []byte
	}
	got := make(chan item, 8)
	errc := make(chan error, 1)
	cfg := &wsconn.Config{MaxMessageSize: 1024, PingInterval: 40 * time.Millisecond, Observer: obs}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		func() {
			defer func() { _ = recover() }()
			for _, r := range in.Readers() {
				var one [1]byte
				_, _ = r.Read(one[:])
				panic("body")
			}
		}()
		select {
		case <-obs.start:
		case <-ctx.Done():
		}
		for k, r := range in.Readers() {
			p, _ := io.ReadAll(r)
			got <- item{k, p}
		}
		errc <- in.Err()
		return nil
	})
	c := dialRaw(t, url)
	c.write(r3Frame(frames.OpBinary, true, bytes.Repeat([]byte{'a'}, 100)))
	code := r3AfterPing(t, c, r3Frame(frames.OpText, true, []byte("second")))
	if !waitWithin(t, obs.claimed, 5*time.Second, "the hook") {
		t.Fatal("the second loop never claimed the Inbound while the background reader waited")
	}
	err := waitWithin(t, errc, 3*time.Second, "the handler")
	if code != frames.CloseNormal {
		t.Errorf("server closed with %d, want 1000", code)
	}
	if err != nil {
		t.Errorf("in.Err = %v, want nil", err)
	}
	select {
	case it := <-got:
		if it.kind != messages.KindText || string(it.p) != "second" {
			t.Errorf("the loop yielded %v %q, want text \"second\"", it.kind, it.p)
		}
	default:
		t.Fatalf("the loop yielded nothing (Err %v)", err)
	}
	if len(got) != 0 {
		t.Errorf("the loop yielded %d more", len(got))
	}
}

// TestCornerKeptDataJudgedByTheClaimingLoop: the first loop takes a message
// and breaks; the data kept while no loop runs, before the peer's CLOSE,
// must be judged by the limits of the loop that claimed the Inbound
// before the background reader took the CLOSE: what it accepts it
// yields after a 1000, what it refuses closes with 1009 (not 1000 with
// the loop failing later).
func TestCornerKeptDataJudgedByTheClaimingLoop(t *testing.T) {
	twenty := bytes.Repeat([]byte{'z'}, 20)
	split := append(r3Frame(frames.OpBinary, false, twenty[:10]), r3Frame(frames.OpContinuation, true, twenty[10:])...)
	single := r3Frame(frames.OpBinary, true, twenty)
	// a frame over MaxMessageSize (1 KiB), a Frames loop's cap, that
	// Messages(2048) accepts
	big := r3Frame(frames.OpBinary, true, bytes.Repeat([]byte{'b'}, 1500))
	cases := []struct {
		name, first, second string
		maxFrame            int64 // Config.MaxFrameSize
		tail                []byte
		want                frames.CloseCode
		wantBytes           int
	}{
		// accepted by the claiming loop, refused by the last one
		{"Messages10ThenFrames", "messages10", "frames", 0, split, frames.CloseNormal, 20},
		{"FramesThenMessages2048", "frames", "messages2048", 0, big, frames.CloseNormal, 1500},
		{"Messages10ThenReaders", "messages10", "readers", 0, single, frames.CloseNormal, 20},
		// refused by the claiming loop, accepted by the last one
		{"ReadersThenMessages10", "readers", "messages10", 0, single, frames.CloseMessageTooBig, 0},
		{"FramesThenMessages10", "frames", "messages10", 0, split, frames.CloseMessageTooBig, 0},
		{"ReadersThenFrames", "readers", "frames", 0, big, frames.CloseMessageTooBig, 0},
		{"Messages2048ThenFrames", "messages2048", "frames", 0, big, frames.CloseMessageTooBig, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := newR3Hook()
			got := make(chan int, 8)
			errc := make(chan error, 1)
			cfg := &wsconn.Config{MaxMessageSize: 1024, MaxFrameSize: tc.maxFrame, PingInterval: 40 * time.Millisecond, Observer: obs}
			run := func(in *wsconn.Inbound, which string, count bool) {
				switch which {
				case "messages10", "messages2048":
					n := int64(10)
					if which == "messages2048" {
						n = 2048
					}
					for m := range in.Messages(n) {
						if !count {
							break
						}
						got <- len(m.Payload)
					}
				case "frames":
					for f := range in.Frames() {
						if !count {
							break
						}
						got <- len(f.Payload)
					}
				case "readers":
					for _, r := range in.Readers() {
						n, _ := io.Copy(io.Discard, r) // read to its end: no frame left under way
						if !count {
							break
						}
						got <- int(n)
					}
				}
			}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
				run(in, tc.first, false)
				select {
				case <-obs.start:
				case <-ctx.Done():
				}
				run(in, tc.second, true)
				errc <- in.Err()
				return nil
			})
			c := dialRaw(t, url)
			c.write(r3Frame(frames.OpText, true, []byte("a")))
			code := r3AfterPing(t, c, tc.tail)
			if !waitWithin(t, obs.claimed, 5*time.Second, "the hook") {
				t.Fatal("the second loop never claimed the Inbound while the background reader waited")
			}
			err := waitWithin(t, errc, 3*time.Second, "the handler")
			total := 0
			for len(got) > 0 {
				total += <-got
			}
			if code != tc.want {
				t.Errorf("server closed with %d, want %d (in.Err %v)", code, tc.want, err)
			}
			if total != tc.wantBytes {
				t.Errorf("the %s loop got %d bytes, want %d", tc.second, total, tc.wantBytes)
			}
			if tc.want == frames.CloseNormal && err != nil {
				t.Errorf("in.Err = %v, want nil", err)
			}
			if tc.want == frames.CloseMessageTooBig && !errors.Is(err, messages.ErrTooLarge) {
				t.Errorf("in.Err = %v, want one matching ErrTooLarge", err)
			}
		})
	}
}

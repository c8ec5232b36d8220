package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/memconn"
	"github.com/colibri-ws/colibri/internal/race"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// inboundMode is how FuzzInbound serves the fuzzed bytes, packed in one
// byte so that the fuzzer explores configurations too.
type inboundMode struct {
	loop     int  // bits 0-1: 0 echo with Messages, 1 Frames, 2 Readers, 3 one item from each in turn
	deflate  bool // bit 2: permessage-deflate was negotiated
	takeover bool // bit 3: with context takeover
	small    bool // bit 4: MaxMessageSize 256 and MaxFrameSize 128 instead of 64 KiB and none
	trickle  bool // bit 5: the server gets at most 7 bytes per read
	skipUTF8 bool // bit 6: Config.SkipUTF8Check
	buffered bool // bit 7: the first 200 bytes came in with the handshake
}

func decodeInboundMode(m byte) inboundMode {
	return inboundMode{
		loop:     int(m & 3),
		deflate:  m&4 != 0,
		takeover: m&8 != 0,
		small:    m&16 != 0,
		trickle:  m&32 != 0,
		skipUTF8: m&64 != 0,
		buffered: m&128 != 0,
	}
}

func (m inboundMode) limit() int64 {
	if m.small {
		return 256
	}
	return 64 << 10
}

// inboundDeadline bounds one FuzzInbound run. Nothing in it may wait for a
// timer: the client shuts its side at once, so the server sees EOF, and
// every Config timeout is set far beyond this.
const inboundDeadline = 5 * time.Second

// FuzzInbound serves one connection whose client sends arbitrary bytes
// after the handshake, then shuts its sending side, and reads all the
// server sends until it closes the transport. mode picks the handler's
// loop and the configuration (see inboundMode). Whatever the bytes:
//
//   - nothing panics, and the connection ends within inboundDeadline;
//   - no goroutine is left once Serve has returned;
//   - what the server allocates is bounded by the bytes received and the
//     limits, never by the lengths that frame headers announce;
//   - the server sends well-formed frames only: unmasked, fragments in
//     order, valid UTF-8 in the text it echoes, exactly one CLOSE with a
//     code that may go on the wire, nothing after it, and the code of the
//     violation that ended the loop when there was one.
//
// The seeds are the frames Chromium sent in testdata/frames and the
// corpus in testdata/fuzz/FuzzInbound.
func FuzzInbound(f *testing.F) {
	for _, seed := range []struct {
		file string
		mode byte
	}{
		{"chromium-plain.bin", 0},
		{"chromium-plain.bin", 1 | 32},
		{"chromium-plain.bin", 2 | 16},
		{"chromium-plain.bin", 3 | 128},
		{"chromium-deflate.bin", 4},
		{"chromium-deflate.bin", 4 | 1 | 32},
		{"chromium-deflate.bin", 4 | 2},
		{"chromium-deflate.bin", 4 | 3 | 16},
	} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "frames", seed.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, seed.mode)
	}
	f.Fuzz(func(t *testing.T, data []byte, modeBits byte) {
		runInbound(t, data, decodeInboundMode(modeBits))
	})
}

// inboundResult is what the server side of one run saw.
type inboundResult struct {
	mu    sync.Mutex
	inErr error // Inbound.Err when the handler returned
	serve error // what Serve returned
}

func runInbound(t *testing.T, data []byte, mode inboundMode) {
	baseGoroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	maxRead := 0
	if mode.trickle {
		maxRead = 7
	}
	client, server := memconn.Pipe(maxRead)
	defer client.Close()

	cfg := &wsconn.Config{
		MaxMessageSize: mode.limit(),
		PingInterval:   -1,
		WriteTimeout:   time.Minute,
		CloseTimeout:   time.Minute,
		SkipUTF8Check:  mode.skipUTF8,
		Logger:         quietLogger,
	}
	if mode.small {
		cfg.MaxFrameSize = 128
	}
	u := wsconn.Upgraded{Conn: server}
	if mode.deflate {
		offer := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		if mode.takeover {
			offer = "permessage-deflate"
		}
		cfg.Compression = wsconn.Compression{Enabled: true, ContextTakeover: mode.takeover}
		u.Extensions, _ = handshake.ParseExtensions(offer)
	}
	body := data
	if mode.buffered {
		n := min(len(body), 200)
		u.Buffered, body = body[:n], body[n:]
	}

	res := &inboundResult{}
	served := make(chan struct{})
	go func() {
		defer close(served)
		err := wsconn.Serve(context.Background(), u, struct{}{}, inboundHandler(t, mode, res), cfg)
		res.mu.Lock()
		res.serve = err
		res.mu.Unlock()
	}()

	// Everything the server sends, until it closes the transport.
	var out []byte
	var readErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		_ = client.SetReadDeadline(time.Now().Add(inboundDeadline))
		out, readErr = io.ReadAll(client)
	}()

	// The server may have closed already: what it got in Upgraded.Buffered
	// can end the connection before the client writes the rest, as a real
	// peer's late bytes meet a reset.
	if _, err := client.Write(body); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("client write: %v", err)
	}
	_ = client.CloseWrite()

	timeout := time.NewTimer(inboundDeadline)
	defer timeout.Stop()
	for _, ch := range []chan struct{}{served, read} {
		select {
		case <-ch:
		case <-timeout.C:
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
			t.Fatalf("mode %+v: the connection did not end within %v\n%s", mode, inboundDeadline, stacks.String())
		}
	}
	if readErr != nil {
		t.Fatalf("mode %+v: reading the server's bytes: %v", mode, readErr)
	}
	client.Close()

	res.mu.Lock()
	inErr := res.inErr
	res.mu.Unlock()
	checkServerFrames(t, out, mode, inErr)

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Buffers grow with the bytes received, capped by the limit; inflating
	// may fill the limit from a few bytes (a bomb). Pools and the flate
	// state account for the constant.
	budget := 64*uint64(len(data)) + 16*uint64(mode.limit()) + 4<<20
	if race.Enabled {
		budget *= 4 // sync.Pool drops items under -race
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > budget {
		t.Fatalf("mode %+v: %d bytes in allocated %d bytes, over the budget of %d", mode, len(data), grew, budget)
	}

	checkNoGoroutinesLeft(t, baseGoroutines)
}

// checkNoGoroutinesLeft waits briefly for the goroutine count to fall back
// to base: timer callbacks may still be on their way out.
func checkNoGoroutinesLeft(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines left over after the connection ended\n%s", runtime.NumGoroutine()-base, stacks.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// inboundHandler reads the connection the way mode says and records why
// its loops ended. It catches panics itself to report their stack.
func inboundHandler(t *testing.T, mode inboundMode, res *inboundResult) handlerFunc {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) (err error) {
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("mode %+v: handler panicked: %v\n%s", mode, v, debug.Stack())
				err = fmt.Errorf("panic: %v", v)
			}
		}()
		switch mode.loop {
		case 0:
			for m := range in.Messages(0) {
				if out.WriteMessage(ctx, m) != nil {
					break
				}
			}
		case 1:
			for fr := range in.Frames() {
				if len(fr.Payload) > int(mode.limit()) {
					t.Errorf("mode %+v: Frames yielded %d bytes, over the limit", mode, len(fr.Payload))
				}
			}
		case 2:
			for _, r := range in.Readers() {
				if _, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20)); err != nil {
					break
				}
			}
		case 3:
			// One item from each iterator in turn: loops that break hand
			// the socket to the background reader and take it back, and
			// a message a Frames loop left half-read is finished by the
			// next loop.
			for i := 0; ; i++ {
				got := false
				switch i % 3 {
				case 0:
					in.Messages(0)(func(messages.Message) bool {
						got = true
						return false
					})
				case 1:
					in.Frames()(func(frames.Frame) bool {
						got = true
						return false
					})
				case 2:
					in.Readers()(func(_ messages.Kind, r io.Reader) bool {
						_, _ = io.CopyN(io.Discard, r, 100)
						got = true
						return false
					})
				}
				if !got || in.Err() != nil {
					break
				}
			}
		}
		inErr := in.Err()
		res.mu.Lock()
		res.inErr = inErr
		res.mu.Unlock()
		return inErr
	}
}

// checkServerFrames parses everything the server sent and checks it.
func checkServerFrames(t *testing.T, out []byte, mode inboundMode, inErr error) {
	t.Helper()
	var allowedRsv byte
	if mode.deflate {
		allowedRsv = frames.Rsv1
	}
	var (
		closes     int
		inMessage  bool
		text       bool
		compressed bool
		msg        []byte
	)
	for len(out) > 0 {
		if len(out) < 2 || len(out) < frames.HeaderSize(out[0], out[1]) {
			t.Fatalf("mode %+v: the server's bytes end inside a frame header: % x", mode, out)
		}
		hn := frames.HeaderSize(out[0], out[1])
		h, err := frames.ParseHeader(out[:hn])
		if err != nil {
			t.Fatalf("mode %+v: server frame header % x: %v", mode, out[:hn], err)
		}
		if err := h.Check(false, allowedRsv); err != nil {
			t.Fatalf("mode %+v: server frame %+v breaks the protocol: %v", mode, h, err)
		}
		if int64(len(out)-hn) < h.Length {
			t.Fatalf("mode %+v: the server's bytes end inside a frame's payload", mode)
		}
		p := out[hn : hn+int(h.Length)]
		out = out[hn+int(h.Length):]
		if closes > 0 {
			t.Fatalf("mode %+v: the server sent a %v frame after its CLOSE", mode, h.Op)
		}
		switch h.Op {
		case frames.OpClose:
			closes++
			// An empty payload (1005) is allowed: it echoes an empty CLOSE.
			code, reason, err := frames.ParseClose(p)
			if err != nil {
				t.Fatalf("mode %+v: the server's CLOSE payload % x: code %v, %v", mode, p, code, err)
			}
			if v, ok := errors.AsType[*frames.Violation](inErr); ok && code != v.Code {
				t.Fatalf("mode %+v: the loop ended with %v but the server closed with %v %q", mode, inErr, code, reason)
			}
		case frames.OpPing, frames.OpPong:
		case frames.OpContinuation:
			if !inMessage {
				t.Fatalf("mode %+v: the server sent a continuation frame outside a message", mode)
			}
			if h.Rsv != 0 {
				t.Fatalf("mode %+v: RSV bits on a continuation frame", mode)
			}
		default:
			if inMessage {
				t.Fatalf("mode %+v: the server began a %v message inside another", mode, h.Op)
			}
			inMessage, text, compressed, msg = true, h.Op == frames.OpText, h.Rsv&frames.Rsv1 != 0, msg[:0]
		}
		if !h.Op.IsControl() {
			msg = append(msg, p...)
			if h.Fin {
				inMessage = false
				if text && !compressed && !mode.skipUTF8 && !utf8.Valid(msg) {
					t.Fatalf("mode %+v: the server echoed text that is not UTF-8: %q", mode, msg)
				}
			}
		}
	}
	if closes != 1 {
		t.Fatalf("mode %+v: the server sent %d CLOSE frames, want 1", mode, closes)
	}
}

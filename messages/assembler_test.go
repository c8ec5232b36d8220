package messages_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Frames for the tables.
func txt(p string, fin bool) frames.Frame {
	return frames.Frame{Op: frames.OpText, Fin: fin, Payload: []byte(p)}
}

func bin(p string, fin bool) frames.Frame {
	return frames.Frame{Op: frames.OpBinary, Fin: fin, Payload: []byte(p)}
}

func cont(p string, fin bool) frames.Frame {
	return frames.Continuation([]byte(p), fin)
}

// msg is a received message in a form that compares with ==.
type msg struct {
	kind    messages.Kind
	payload string
}

func (m msg) String() string { return fmt.Sprintf("%v %q", m.kind, m.payload) }

// failure says where a sequence of frames was refused.
type failure struct {
	frame int    // index of the frame
	phase string // "begin", "chunk" or "end"
	err   error
}

func (f *failure) String() string {
	if f == nil {
		return "no error"
	}
	return fmt.Sprintf("%v at frame %d %s", f.err, f.frame, f.phase)
}

// feed gives frames to a through Begin, Chunk and End, splitting each payload
// into pieces of at most chunk bytes (whole when chunk <= 0). It gathers
// payloads itself, as a connection would, and returns the messages completed
// before the first error, and the error.
func feed(t *testing.T, a *messages.Assembler, fs []frames.Frame, chunk int) ([]msg, *failure) {
	t.Helper()
	var out []msg
	var buf []byte
	for i, f := range fs {
		if err := a.Begin(f.Op, f.Fin, int64(len(f.Payload))); err != nil {
			return out, &failure{i, "begin", err}
		}
		p := f.Payload
		for len(p) > 0 || chunk <= 0 {
			n := len(p)
			if chunk > 0 {
				n = min(n, chunk)
			}
			if err := a.Chunk(p[:n]); err != nil {
				return out, &failure{i, "chunk", err}
			}
			buf = append(buf, p[:n]...)
			p = p[n:]
			if chunk <= 0 {
				break
			}
		}
		kind, done, err := a.End()
		if err != nil {
			return out, &failure{i, "end", err}
		}
		if done {
			out = append(out, msg{kind, string(buf)})
			buf = buf[:0]
		}
	}
	return out, nil
}

// push gives frames to a through Push and returns what feed does, without a
// phase.
func push(a *messages.Assembler, fs []frames.Frame) ([]msg, *failure) {
	var out []msg
	for i, f := range fs {
		m, done, err := a.Push(f)
		if err != nil {
			return out, &failure{i, "", err}
		}
		if done {
			out = append(out, msg{m.Kind, string(m.Payload)})
		}
	}
	return out, nil
}

func TestAssembler(t *testing.T) {
	tests := []struct {
		name     string
		limit    int64
		skipUTF8 bool
		frames   []frames.Frame
		want     []msg
		fail     *failure // nil when every frame is accepted
	}{
		{
			name:   "one text frame",
			frames: []frames.Frame{txt("hello", true)},
			want:   []msg{{messages.KindText, "hello"}},
		},
		{
			name:   "one binary frame",
			frames: []frames.Frame{bin("\x00\xff", true)},
			want:   []msg{{messages.KindBinary, "\x00\xff"}},
		},
		{
			name:   "empty text message",
			frames: []frames.Frame{txt("", true)},
			want:   []msg{{messages.KindText, ""}},
		},
		{
			name:   "fragmented text",
			frames: []frames.Frame{txt("he", false), cont("l", false), cont("lo", true)},
			want:   []msg{{messages.KindText, "hello"}},
		},
		{
			name:   "fragmented binary with empty fragments",
			frames: []frames.Frame{bin("", false), cont("", false), cont("ab", false), cont("", true)},
			want:   []msg{{messages.KindBinary, "ab"}},
		},
		{
			name:   "messages in a row",
			frames: []frames.Frame{txt("a", false), cont("b", true), bin("c", true), txt("d", true)},
			want:   []msg{{messages.KindText, "ab"}, {messages.KindBinary, "c"}, {messages.KindText, "d"}},
		},
		{
			name:   "continuation first",
			frames: []frames.Frame{cont("x", true)},
			fail:   &failure{0, "begin", messages.ErrUnexpectedContinuation},
		},
		{
			name:   "continuation after a whole message",
			frames: []frames.Frame{txt("a", true), cont("b", true)},
			want:   []msg{{messages.KindText, "a"}},
			fail:   &failure{1, "begin", messages.ErrUnexpectedContinuation},
		},
		{
			name:   "text inside fragmented text",
			frames: []frames.Frame{txt("a", false), txt("b", true)},
			fail:   &failure{1, "begin", messages.ErrExpectedContinuation},
		},
		{
			name:   "binary inside fragmented text",
			frames: []frames.Frame{txt("a", false), cont("b", false), bin("c", true)},
			fail:   &failure{2, "begin", messages.ErrExpectedContinuation},
		},
		{
			name:   "text inside fragmented binary",
			frames: []frames.Frame{bin("a", false), txt("b", false)},
			fail:   &failure{1, "begin", messages.ErrExpectedContinuation},
		},
		{
			name:   "invalid UTF-8 in one frame",
			frames: []frames.Frame{txt("ab\xffcd", true)},
			fail:   &failure{0, "chunk", messages.ErrInvalidUTF8},
		},
		{
			name:   "invalid UTF-8 in a later fragment",
			frames: []frames.Frame{txt("ok", false), cont("\xed\xa0\x80", true)},
			fail:   &failure{1, "chunk", messages.ErrInvalidUTF8},
		},
		{
			name:   "invalid continuation of a code point split across fragments",
			frames: []frames.Frame{txt("\xe2\x82", false), cont("A", true)},
			fail:   &failure{1, "chunk", messages.ErrInvalidUTF8},
		},
		{
			name:   "code point split across fragments",
			frames: []frames.Frame{txt("5\xe2", false), cont("\x82", false), cont("\xac", true)},
			want:   []msg{{messages.KindText, "5€"}},
		},
		{
			name:   "code point truncated at the end of the message",
			frames: []frames.Frame{txt("a", false), cont("\xf0\x9f\x98", true)},
			fail:   &failure{1, "end", messages.ErrInvalidUTF8},
		},
		{
			name:   "truncated code point may wait for the next fragment",
			frames: []frames.Frame{txt("\xf0\x9f\x98", false), cont("\x80", true)},
			want:   []msg{{messages.KindText, "😀"}},
		},
		{
			name:   "invalid UTF-8 in binary is fine",
			frames: []frames.Frame{bin("\xff\xc0\x80", true)},
			want:   []msg{{messages.KindBinary, "\xff\xc0\x80"}},
		},
		{
			name:     "SkipUTF8 lets invalid text through",
			skipUTF8: true,
			frames:   []frames.Frame{txt("\xff", false), cont("\xe2", true)},
			want:     []msg{{messages.KindText, "\xff\xe2"}},
		},
		{
			name:   "limit: one frame exactly at it",
			limit:  5,
			frames: []frames.Frame{txt("hello", true)},
			want:   []msg{{messages.KindText, "hello"}},
		},
		{
			name:   "limit: one frame one over",
			limit:  5,
			frames: []frames.Frame{txt("hello!", true)},
			fail:   &failure{0, "begin", messages.ErrTooLarge},
		},
		{
			name:   "limit: fragments exactly at it",
			limit:  5,
			frames: []frames.Frame{bin("he", false), cont("", false), cont("llo", true)},
			want:   []msg{{messages.KindBinary, "hello"}},
		},
		{
			name:   "limit: fragments one over",
			limit:  5,
			frames: []frames.Frame{bin("he", false), cont("llo", false), cont("!", true)},
			fail:   &failure{2, "begin", messages.ErrTooLarge},
		},
		{
			name:   "limit applies to each message, not the sum",
			limit:  3,
			frames: []frames.Frame{txt("abc", true), bin("de", false), cont("f", true)},
			want:   []msg{{messages.KindText, "abc"}, {messages.KindBinary, "def"}},
		},
		{
			name:   "limit before UTF-8",
			limit:  2,
			frames: []frames.Frame{txt("\xff\xff\xff", true)},
			fail:   &failure{0, "begin", messages.ErrTooLarge},
		},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, chunk), func(t *testing.T) {
				a := &messages.Assembler{Limit: tt.limit, SkipUTF8: tt.skipUTF8}
				got, fail := feed(t, a, tt.frames, chunk)
				checkOutcome(t, got, fail, tt.want, tt.fail)
			})
		}
		t.Run(tt.name+"/Push", func(t *testing.T) {
			a := &messages.Assembler{Limit: tt.limit, SkipUTF8: tt.skipUTF8}
			got, fail := push(a, tt.frames)
			var want *failure
			if tt.fail != nil {
				want = &failure{tt.fail.frame, "", tt.fail.err}
			}
			checkOutcome(t, got, fail, tt.want, want)
		})
	}
}

func checkOutcome(t *testing.T, got []msg, fail *failure, want []msg, wantFail *failure) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("messages = %v, want %v", got, want)
	}
	switch {
	case wantFail == nil && fail != nil:
		t.Errorf("frame %d %s: unexpected error %v", fail.frame, fail.phase, fail.err)
	case wantFail != nil && fail == nil:
		t.Errorf("no error, want %v at frame %d %s", wantFail.err, wantFail.frame, wantFail.phase)
	case wantFail != nil && *fail != *wantFail:
		t.Errorf("error %v at frame %d %s, want %v at frame %d %s",
			fail.err, fail.frame, fail.phase, wantFail.err, wantFail.frame, wantFail.phase)
	}
}

func TestAssemblerViolationCodes(t *testing.T) {
	tests := []struct {
		err    *frames.Violation
		code   frames.CloseCode
		reason string
	}{
		{err: messages.ErrTooLarge, code: frames.CloseMessageTooBig, reason: "message too large"},
		{err: messages.ErrInvalidUTF8, code: frames.CloseInvalidPayload, reason: "invalid UTF-8 in text message"},
		{err: messages.ErrUnexpectedContinuation, code: frames.CloseProtocolError, reason: "continuation frame without a message to continue"},
		{err: messages.ErrExpectedContinuation, code: frames.CloseProtocolError, reason: "new data frame inside a fragmented message"},
	}
	for _, tt := range tests {
		if code, ok := frames.CodeOf(tt.err); !ok || code != tt.code || tt.err.Error() != tt.reason {
			t.Errorf("%q: CodeOf = %v, %v; want %v", tt.err, code, ok, tt.code)
		}
		if _, err := frames.AppendClose(nil, tt.err.Code, tt.err.Reason); err != nil {
			t.Errorf("%q cannot be sent as a close reason: %v", tt.err, err)
		}
	}
}

func TestAssemblerLimitInBegin(t *testing.T) {
	// A frame that would take the message over the limit is refused on its
	// declared length, before any of its payload is given.
	a := &messages.Assembler{Limit: 10}
	if err := a.Begin(frames.OpBinary, false, 6); err != nil {
		t.Fatal(err)
	}
	if err := a.Chunk(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.End(); err != nil {
		t.Fatal(err)
	}
	if err := a.Begin(frames.OpContinuation, true, 5); err != messages.ErrTooLarge {
		t.Fatalf("Begin one over the limit: %v, want ErrTooLarge", err)
	}
	if a.Size() != 6 {
		t.Errorf("Size after refusal = %d, want 6", a.Size())
	}
	// A length near the int64 maximum must not overflow the sum.
	for _, limit := range []int64{10, math.MaxInt64 - 1, math.MaxInt64} {
		a := &messages.Assembler{Limit: limit}
		if err := a.Begin(frames.OpText, false, 6); err != nil {
			t.Fatal(err)
		}
		if err := a.Chunk([]byte("sixsix")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.End(); err != nil {
			t.Fatal(err)
		}
		if err := a.Begin(frames.OpContinuation, true, math.MaxInt64); err != messages.ErrTooLarge {
			t.Errorf("limit %d: Begin of 2^63-1 more bytes: %v, want ErrTooLarge", limit, err)
		}
	}
	// Without a limit any length is accepted.
	var b messages.Assembler
	if err := b.Begin(frames.OpBinary, true, math.MaxInt64); err != nil {
		t.Errorf("no limit: Begin of 2^63-1 bytes: %v", err)
	}
}

func TestAssemblerUTF8AcrossFragments(t *testing.T) {
	tests := []struct {
		name string
		text string
		bad  int // index of the first byte that makes the text invalid, or -1
	}{
		{name: "valid", text: "a€😀ä\xf4\x8f\xbf\xbf", bad: -1},
		{name: "surrogate", text: "ab\xed\xa0\x80cd", bad: 3},
		{name: "overlong", text: "é\xe0\x80\xaf", bad: 3},
		{name: "past U+10FFFF", text: "xy\xf4\x90\x80\x80", bad: 3},
		{name: "truncated at the end", text: "ok\xe2\x82", bad: len("ok\xe2\x82")},
	}
	for _, tt := range tests {
		p := []byte(tt.text)
		// Split into two frames at every boundary, then into three frames
		// at every pair of boundaries.
		var splits [][]int
		for i := 0; i <= len(p); i++ {
			splits = append(splits, []int{i})
			for j := i; j <= len(p); j++ {
				splits = append(splits, []int{i, j})
			}
		}
		for _, cut := range splits {
			bounds := append(append([]int{0}, cut...), len(p))
			var fs []frames.Frame
			for k := 0; k+1 < len(bounds); k++ {
				piece := string(p[bounds[k]:bounds[k+1]])
				fin := k+2 == len(bounds)
				if k == 0 {
					fs = append(fs, txt(piece, fin))
				} else {
					fs = append(fs, cont(piece, fin))
				}
			}
			var want []msg
			var wantFail *failure
			switch {
			case tt.bad < 0:
				want = []msg{{messages.KindText, tt.text}}
			case tt.bad == len(p):
				wantFail = &failure{len(fs) - 1, "end", messages.ErrInvalidUTF8}
			default:
				// The first frame holding the bad byte fails as it is
				// chunked, not later.
				k := 0
				for bounds[k+1] <= tt.bad {
					k++
				}
				wantFail = &failure{k, "chunk", messages.ErrInvalidUTF8}
			}
			var a messages.Assembler
			got, fail := feed(t, &a, fs, 0)
			t.Run(fmt.Sprintf("%s/%v", tt.name, cut), func(t *testing.T) {
				checkOutcome(t, got, fail, want, wantFail)
			})
		}
	}
}

func TestAssemblerState(t *testing.T) {
	var a messages.Assembler
	if a.Active() || a.Size() != 0 {
		t.Fatalf("zero Assembler: Active %v, Size %d", a.Active(), a.Size())
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Begin(frames.OpText, false, 3))
	if !a.Active() || a.Kind() != messages.KindText {
		t.Errorf("after Begin of a first fragment: Active %v, Kind %v; want true, text", a.Active(), a.Kind())
	}
	must(a.Chunk([]byte("ab")))
	if a.Size() != 2 {
		t.Errorf("Size = %d after 2 bytes, want 2", a.Size())
	}
	must(a.Chunk([]byte("c")))
	kind, done, err := a.End()
	if kind != messages.KindText || done || err != nil {
		t.Errorf("End of a first fragment = %v, %v, %v; want text, false, nil", kind, done, err)
	}
	if !a.Active() || a.Kind() != messages.KindText {
		t.Errorf("between fragments: Active %v, Kind %v; want true, text", a.Active(), a.Kind())
	}
	must(a.Begin(frames.OpContinuation, false, 0))
	if a.Kind() != messages.KindText {
		t.Errorf("Kind after Begin of a continuation = %v, want text", a.Kind())
	}
	must(endFrame(&a))
	must(a.Begin(frames.OpContinuation, true, 2))
	must(a.Chunk([]byte("de")))
	kind, done, err = a.End()
	if kind != messages.KindText || !done || err != nil {
		t.Errorf("End of the last fragment = %v, %v, %v; want text, true, nil", kind, done, err)
	}
	if a.Active() || a.Size() != 5 || a.Kind() != 0 {
		t.Errorf("after the message: Active %v, Size %d, Kind %v; want false, 5, 0", a.Active(), a.Size(), a.Kind())
	}
	must(a.Begin(frames.OpBinary, true, 0))
	if !a.Active() || a.Kind() != messages.KindBinary {
		t.Errorf("inside an unfragmented frame: Active %v, Kind %v; want true, binary", a.Active(), a.Kind())
	}
	must(endFrame(&a))
	if a.Active() || a.Kind() != 0 {
		t.Errorf("after an unfragmented message: Active %v, Kind %v; want false, 0", a.Active(), a.Kind())
	}

	// Reset abandons a message in progress, bad UTF-8 included.
	must(a.Begin(frames.OpText, false, 1))
	must(a.Chunk([]byte("\xe2")))
	a.Reset()
	if a.Active() || a.Size() != 0 {
		t.Errorf("after Reset: Active %v, Size %d", a.Active(), a.Size())
	}
	must(a.Begin(frames.OpText, true, 1))
	must(a.Chunk([]byte("A")))
	if _, done, err := a.End(); !done || err != nil {
		t.Errorf("message after Reset: done %v, err %v", done, err)
	}
}

// endFrame ends a frame begun on a with an empty payload.
func endFrame(a *messages.Assembler) error {
	_, _, err := a.End()
	return err
}

func TestAssemblerMisuse(t *testing.T) {
	// Calls out of order are the caller's bugs. They get errors, not
	// panics, and the errors are not Violations: they must not make the
	// connection blame the peer.
	tests := []struct {
		name string
		run  func(a *messages.Assembler) error
	}{
		{name: "Chunk without Begin", run: func(a *messages.Assembler) error { return a.Chunk([]byte("x")) }},
		{name: "End without Begin", run: func(a *messages.Assembler) error { _, _, err := a.End(); return err }},
		{name: "Begin twice", run: func(a *messages.Assembler) error {
			_ = a.Begin(frames.OpText, true, 1)
			return a.Begin(frames.OpText, true, 1)
		}},
		{name: "Chunk over the declared length", run: func(a *messages.Assembler) error {
			_ = a.Begin(frames.OpBinary, true, 2)
			_ = a.Chunk([]byte("a"))
			return a.Chunk([]byte("bc"))
		}},
		{name: "End before the whole payload", run: func(a *messages.Assembler) error {
			_ = a.Begin(frames.OpBinary, true, 2)
			_ = a.Chunk([]byte("a"))
			_, _, err := a.End()
			return err
		}},
		{name: "negative length", run: func(a *messages.Assembler) error { return a.Begin(frames.OpText, true, -1) }},
		{name: "Begin with a ping", run: func(a *messages.Assembler) error { return a.Begin(frames.OpPing, true, 0) }},
		{name: "Begin with a close", run: func(a *messages.Assembler) error { return a.Begin(frames.OpClose, true, 0) }},
		{name: "Begin with a reserved data opcode", run: func(a *messages.Assembler) error { return a.Begin(0x3, true, 0) }},
		{name: "Push of a ping", run: func(a *messages.Assembler) error { _, _, err := a.Push(frames.Ping(nil)); return err }},
		{name: "Push of a pong inside a message", run: func(a *messages.Assembler) error {
			_, _, _ = a.Push(txt("a", false))
			_, _, err := a.Push(frames.Pong(nil))
			return err
		}},
	}
	for _, tt := range tests {
		var a messages.Assembler
		err := tt.run(&a)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if code, ok := frames.CodeOf(err); ok {
			t.Errorf("%s: error %q is a Violation with code %v", tt.name, err, code)
		}
		if !strings.HasPrefix(err.Error(), "messages: ") {
			t.Errorf("%s: error %q lacks the package prefix", tt.name, err)
		}
	}
}

func TestPushControlFrameKeepsMessage(t *testing.T) {
	// A control frame refused by Push does not disturb the message in
	// progress, since control frames may arrive between fragments.
	var a messages.Assembler
	if _, _, err := a.Push(txt("ab", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Push(frames.Ping([]byte("p"))); err == nil {
		t.Fatal("Push of a ping: no error")
	}
	m, done, err := a.Push(cont("c", true))
	if err != nil || !done || m.Text() != "abc" {
		t.Errorf("Push after the ping = %v %q, %v, %v; want text \"abc\", true, nil", m.Kind, m.Payload, done, err)
	}
}

func TestPushRoundTrip(t *testing.T) {
	payloads := []string{"", "a", "hello, world", strings.Repeat("κόσμε 😀 ", 20)}
	for _, p := range payloads {
		for _, kind := range []messages.Kind{messages.KindText, messages.KindBinary} {
			for _, size := range []int{0, 1, 2, 3, 7, 64, 1000} {
				var a messages.Assembler
				a.Limit = int64(len(p))
				if a.Limit == 0 {
					a.Limit = 1 // 0 would mean no limit
				}
				in := messages.Message{Kind: kind, Payload: []byte(p)}
				var got []messages.Message
				for f := range messages.Fragments(in, size) {
					m, done, err := a.Push(f)
					if err != nil {
						t.Fatalf("%v of %d bytes in frames of %d: %v", kind, len(p), size, err)
					}
					if done {
						got = append(got, m.Clone())
					}
				}
				if len(got) != 1 || got[0].Kind != kind || !bytes.Equal(got[0].Payload, in.Payload) {
					t.Errorf("%v of %d bytes in frames of %d: got %d messages, first %v", kind, len(p), size, len(got), got)
				}
			}
		}
	}
}

func TestPushReusesBuffer(t *testing.T) {
	var a messages.Assembler
	m1, _, err := a.Push(bin("first message", true))
	if err != nil {
		t.Fatal(err)
	}
	m2, _, err := a.Push(bin("second", true))
	if err != nil {
		t.Fatal(err)
	}
	if string(m2.Payload) != "second" {
		t.Fatalf("second message = %q", m2.Payload)
	}
	// The first payload aliased the buffer, which the second reused.
	if &m1.Payload[0] != &m2.Payload[0] {
		t.Error("Push did not reuse its buffer")
	}
	if n := testing.AllocsPerRun(100, func() {
		_, _, _ = a.Push(bin("warm", false))
		_, _, _ = a.Push(cont("buffer", true))
	}); n != 0 {
		t.Errorf("Push with a warm buffer: %v allocations, want 0", n)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	errs := []error{messages.ErrTooLarge, messages.ErrInvalidUTF8, messages.ErrUnexpectedContinuation, messages.ErrExpectedContinuation}
	for i, a := range errs {
		for j, b := range errs {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%q, %q) = %v", a, b, errors.Is(a, b))
			}
		}
	}
}

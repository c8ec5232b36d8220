package wsconn_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvrw3Text returns n bytes of valid UTF-8 with 1- to 4-byte runes, so
// that any cut splits runes.
func rvrw3Text(n int) []byte {
	var b []byte
	for len(b) < n {
		b = append(b, "aé€😀"...)
	}
	b = b[:n]
	for len(b) > 0 && !strings.HasSuffix(string(b), "a") && !strings.HasSuffix(string(b), "é") &&
		!strings.HasSuffix(string(b), "€") && !strings.HasSuffix(string(b), "😀") {
		b = b[:len(b)-1]
	}
	return b
}

// docs/handlers.md: when a Readers body breaks out, "a next loop, if one
// comes, discards the rest". The body breaks after 10 bytes of a 1 MiB
// text frame (1- to 4-byte runes); the background reader discards the
// rest as it comes; a next loop of each kind starts while that discard
// is under way (before more of the rest came, or in the middle of it).
// The next message must come whole, with Err nil, and no 1007.
func TestReadersBreakMidHugeFrameThenLoopDuringDiscard(t *testing.T) {
	type report struct {
		head, next string
		err        error
	}
	payload := rvrw3Text(1 << 20)
	second := "second message, whole: aé€😀"
	for _, loop := range []string{"Messages", "Frames", "Readers"} {
		for _, at := range []int{0, 3, 15} { // 64 KiB chunks of the rest sent before the next loop starts
			t.Run(fmt.Sprintf("%s/after%d", loop, at), func(t *testing.T) {
				reports := make(chan report, 1)
				next := make(chan struct{})
				url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					var r report
					for _, rd := range in.Readers() {
						b := make([]byte, 10)
						n, _ := io.ReadFull(rd, b)
						r.head = string(b[:n])
						break
					}
					if err := out.WriteText(ctx, "broke"); err != nil {
						return err
					}
					select {
					case <-next:
					case <-ctx.Done():
					}
					r.next = rvrw1NextLoop(in, loop)
					r.err = in.Err()
					reports <- r
					for range in.Messages(0) {
					}
					return in.Err()
				})
				c := dialRaw(t, url)
				c.rvIterHeader(frames.OpText, true, int64(len(payload)))
				const first = 8 << 10
				c.write(payload[:first])
				if h, p := c.read(); h.Op != frames.OpText || string(p) != "broke" {
					t.Fatalf("got %v %q, want broke", h.Op, p)
				}
				rest := payload[first:]
				sent := 0
				for i := 0; sent < len(rest); i++ {
					if i == at {
						close(next)
					}
					n := min(64<<10, len(rest)-sent)
					c.write(rest[sent : sent+n])
					sent += n
				}
				if at >= (len(rest)+(64<<10)-1)/(64<<10) {
					close(next)
				}
				c.write(maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte(second)))
				r := waitFor(t, reports, "the next loop")
				if r.head != string(payload[:10]) || r.next != second || r.err != nil {
					t.Errorf("head %q, next %q, err %v; want %q, %q, nil", r.head, r.next, r.err, payload[:10], second)
				}
				c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
				c.expectClose(frames.CloseNormal)
			})
		}
	}
}

// The rest the background reader discards is checked as the next loop
// would: invalid UTF-8 deep in the abandoned rest of a text frame fails
// the connection with 1007 though no loop runs (the handler waits on its
// context, as handlers.md advises).
func TestAbandonedRestInvalidUTF8(t *testing.T) {
	cause := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, rd := range in.Readers() {
			_, _ = io.ReadFull(rd, make([]byte, 10))
			break
		}
		select {
		case <-ctx.Done():
			cause <- context.Cause(ctx)
		case <-time.After(5 * time.Second):
			cause <- nil
		}
		return nil
	})
	payload := rvrw3Text(1 << 20)
	payload[700<<10] = 0xff
	c := dialRaw(t, url)
	c.rvIterHeader(frames.OpText, true, int64(len(payload)))
	c.write(payload)
	c.expectClose(frames.CloseInvalidPayload)
	if err := waitFor(t, cause, "the handler"); wsconn.CloseStatus(err) != frames.CloseInvalidPayload {
		t.Fatalf("the handler's context ended with %v, want the 1007", err)
	}
}

// The judged-violation cut (closing.md "Protocol violations": "the running
// loop still yields the messages kept before the CLOSE or the bad header,
// then ends with the connection's error") with Frames and Readers loops,
// the kept message fragmented.
func TestJudgedCutFramesReaders(t *testing.T) {
	for _, loop := range []string{"Frames", "Readers"} {
		t.Run(loop, func(t *testing.T) {
			got := make(chan []string, 1)
			errc := make(chan error, 1)
			url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var texts []string
				busy := func() {
					if len(texts) == 1 {
						time.Sleep(rvrw1Busy)
					}
				}
				if loop == "Frames" {
					cur := ""
					for f := range in.Frames() {
						cur += string(f.Payload)
						if f.Fin {
							texts = append(texts, cur)
							cur = ""
							busy()
						}
					}
				} else {
					for _, r := range in.Readers() {
						p, err := io.ReadAll(r)
						if err != nil {
							texts = append(texts, "err:"+err.Error())
							break
						}
						texts = append(texts, string(p))
						busy()
					}
				}
				got <- texts
				errc <- in.Err()
				return in.Err()
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("a"))
			time.Sleep(60 * time.Millisecond) // the body is busy, the background reader reads
			var b []byte
			b = append(b, maskedFrame(frames.Header{Op: frames.OpText, Fin: false}, []byte("o"))...)
			b = append(b, maskedFrame(frames.Header{Op: frames.OpPing, Fin: true}, []byte("p"))...)
			b = append(b, maskedFrame(frames.Header{Op: frames.OpContinuation, Fin: true}, []byte("k"))...)
			b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true}, []byte("bin"))...)
			b = append(b, maskedFrame(frames.Header{Op: frames.OpContinuation, Fin: true}, []byte("x"))...) // no message to continue: 1002
			b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...)
			c.write(b)
			for {
				h, p := c.read()
				if h.Op == frames.OpPong {
					continue
				}
				if h.Op != frames.OpClose || len(p) < 2 || frames.CloseCode(int(p[0])<<8|int(p[1])) != frames.CloseProtocolError {
					t.Fatalf("got %v %q, want CLOSE 1002", h.Op, p)
				}
				break
			}
			if err := waitFor(t, errc, "the loop"); wsconn.CloseStatus(err) != frames.CloseProtocolError {
				t.Errorf("in.Err() = %v, want 1002", err)
			}
			if texts := <-got; strings.Join(texts, "|") != "a|ok|bin" {
				t.Errorf("the loop yielded %q, want [a ok bin]", texts)
			}
		})
	}
}

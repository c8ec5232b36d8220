package wsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvrw2Collect serves one connection: it answers the handshake with the
// extension answer (none when empty), collects the payloads of the
// client's data frames until its CLOSE, answers that and hands the
// payloads over.
func rvrw2Collect(t *testing.T, answer string) (string, <-chan []rawFrame) {
	t.Helper()
	got := make(chan []rawFrame, 1)
	extra := ""
	if answer != "" {
		extra = "Sec-WebSocket-Extensions: " + answer + "\r\n"
	}
	addr := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, switchAnswer(req, extra))
		var fs []rawFrame
		defer func() { got <- fs }()
		for {
			h, p, err := pReadFrame(br)
			if err != nil {
				return
			}
			if h.Op == frames.OpClose {
				conn.Write(closeFrame1000)
				return
			}
			if !h.Op.IsControl() {
				fs = append(fs, rawFrame{h, p})
			}
		}
	})
	return addr, got
}

// rvrw2Inflate inflates payloads with Python's zlib and a window of
// exactly bits (interop/testdata/python/inflate.py, which fails on a
// back reference past the window) and returns each message's SHA-256 and
// length as the script prints them.
func rvrw2Inflate(t *testing.T, bits int, takeover bool, payloads [][]byte) []string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	script := "../interop/testdata/python/inflate.py"
	if _, err := os.Stat(script); err != nil {
		t.Skip("no inflate.py")
	}
	var in bytes.Buffer
	for _, p := range payloads {
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		in.Write(p)
	}
	mode := "reset"
	if takeover {
		mode = "takeover"
	}
	cmd := exec.Command(py, script, fmt.Sprint(bits), mode)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inflating with a %d-bit window: %v\n%s", bits, err, stderr.String())
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// rvrw2WindowMessages are messages that tempt a compressor with context
// takeover to reach back past a window of 2^bits bytes, across messages
// and within one, with a last message that repeats what is well inside it.
func rvrw2WindowMessages(bits int) [][]byte {
	w := 1 << bits
	rng := rand.New(rand.NewPCG(uint64(bits), 7))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	a, b := rnd(w*3/4), rnd(w*3/4)
	inside := rnd(w / 4)
	return [][]byte{
		a,                                      // 0.75 w
		append(bytes.Clone(b), a...),           // a again, 1.5 w back
		bytes.Clone(b),                         // b again, 1.5 w back
		append(bytes.Clone(inside), inside...), // a repeat w/4 back
		bytes.Clone(inside),                    // w/4 + a little back
	}
}

// RFC 7692 §7.1.2.2, docs/client.md: an offer of client_max_window_bits=N
// answered with no window has the client compress with N, which
// Upgraded.Extensions shows. With context takeover the window spans
// messages: every back reference the client writes must lie within 2^N
// bytes, checked by an inflater with exactly that window, and the client
// must still compress what lies inside it.
func TestWindowHintWithTakeover(t *testing.T) {
	for _, bits := range []int{8, 9, 12} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			addr, got := rvrw2Collect(t, "permessage-deflate")
			o := options()
			o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: true, Level: 9, Threshold: 1}
			o.Extensions = []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{
				{Name: "client_max_window_bits", Value: fmt.Sprint(bits)}}}}
			msgs := rvrw2WindowMessages(bits)
			err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				want := fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits)
				if e := s.Extensions(); len(e) != 1 || e[0].String() != want {
					return fmt.Errorf("extensions %v, want %s", e, want)
				}
				for _, m := range msgs {
					if err := out.WriteBinary(ctx, m); err != nil {
						return err
					}
				}
				return nil
			}, o)
			if err != nil {
				t.Fatal(err)
			}
			fs := after(t, got, "the messages")
			if len(fs) != len(msgs) {
				t.Fatalf("%d frames for %d messages", len(fs), len(msgs))
			}
			var payloads [][]byte
			for i, f := range fs {
				if f.h.Rsv != frames.Rsv1 || !f.h.Fin {
					t.Fatalf("frame %d: %+v, want one compressed frame per message", i, f.h)
				}
				payloads = append(payloads, f.p)
			}
			lines := rvrw2Inflate(t, bits, true, payloads)
			for i, m := range msgs {
				sum := sha256.Sum256(m)
				if want := fmt.Sprintf("%s %d", hex.EncodeToString(sum[:]), len(m)); i >= len(lines) || lines[i] != want {
					t.Fatalf("message %d inflated to %q, want %q", i, lines, want)
				}
			}
			// (klauspost's encoder finds no match in a write under about
			// 128 bytes, which rules the 8-bit case out.)
			if last := fs[len(fs)-1]; bits > 8 && len(last.p) > len(msgs[len(msgs)-1])/4 {
				t.Errorf("the last message, all within the window, compressed to %d of %d bytes: no context taken over", len(last.p), len(msgs[len(msgs)-1]))
			}
		})
	}
}

// Several permessage-deflate offers with different windows, one without a
// value: the answer (to any of them) that names no window leaves the
// client with the smallest value offered, and one with a larger window
// than every valued offer is accepted only when an offer named the
// parameter without a value.
func TestSeveralDeflateOffers(t *testing.T) {
	pmd := func(params ...wsconn.ExtensionParam) wsconn.Extension {
		return wsconn.Extension{Name: "permessage-deflate", Params: params}
	}
	cmwb := func(v string) wsconn.ExtensionParam {
		return wsconn.ExtensionParam{Name: "client_max_window_bits", Value: v}
	}
	for _, tc := range []struct {
		name   string
		offers []wsconn.Extension
		answer string
		want   string // Upgraded.Extensions[0]; "" refused
	}{
		{"12 and 10, none answered", []wsconn.Extension{pmd(cmwb("12")), pmd(cmwb("10"))}, "permessage-deflate", "permessage-deflate; client_max_window_bits=10"},
		{"12 and 10, 11 answered", []wsconn.Extension{pmd(cmwb("12")), pmd(cmwb("10"))}, "permessage-deflate; client_max_window_bits=11", "permessage-deflate; client_max_window_bits=10"},
		{"12 and 10, 13 answered", []wsconn.Extension{pmd(cmwb("12")), pmd(cmwb("10"))}, "permessage-deflate; client_max_window_bits=13", ""},
		{"any and 10, 13 answered", []wsconn.Extension{pmd(cmwb("")), pmd(cmwb("10"))}, "permessage-deflate; client_max_window_bits=13", "permessage-deflate; client_max_window_bits=10"},
		{"any, 9 answered", []wsconn.Extension{pmd(cmwb(""))}, "permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"},
		{"any, none answered", []wsconn.Extension{pmd(cmwb(""))}, "permessage-deflate", "permessage-deflate"},
		{"none offered and 10, none answered", []wsconn.Extension{pmd(), pmd(cmwb("10"))}, "permessage-deflate", "permessage-deflate; client_max_window_bits=10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := advAnswer(t, func(req *http.Request) string {
				return switchAnswer(req, "Sec-WebSocket-Extensions: "+tc.answer+"\r\n")
			})
			o := options()
			o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: true}
			o.Extensions = tc.offers
			u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
			if tc.want == "" {
				if err == nil {
					u.Conn.Close()
					t.Fatalf("accepted %q: %v", tc.answer, u.Extensions)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u.Conn.Close()
			if len(u.Extensions) != 1 || u.Extensions[0].String() != tc.want {
				t.Fatalf("Extensions %v, want %s", u.Extensions, tc.want)
			}
		})
	}
}

// An offer whose client_max_window_bits value is not 8 to 15 is the
// caller's mistake; it must fail before dialing (as a value that is not a
// token does) or not spoil a connection the server opened: before the
// window hint was kept, an answer without a window just compressed with
// 15 bits. Now the hint "20" lands in Upgraded.Extensions and the
// connection, once open, fails with unusable parameters.
func TestInvalidOfferedWindowHint(t *testing.T) {
	for _, v := range []string{"20", "7", "09"} {
		t.Run(v, func(t *testing.T) {
			addr, got := rvrw2Collect(t, "permessage-deflate")
			o := options()
			o.Config.Compression = wsconn.Compression{Enabled: true, ContextTakeover: true}
			o.Extensions = []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{
				{Name: "client_max_window_bits", Value: v}}}}
			err := wsclient.Run(testCtx(t), "ws://"+addr, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
				return out.WriteText(ctx, "hello")
			}, o)
			if err == nil {
				after(t, got, "the messages")
				return // served: fine
			}
			if strings.Contains(err.Error(), "unusable permessage-deflate") {
				t.Fatalf("offer client_max_window_bits=%s: the server opened the connection, then Run failed: %v", v, err)
			}
			select {
			case <-got:
				t.Fatalf("Run failed (%v) after the connection opened", err)
			default:
			}
		})
	}
}

// RFC 6455 §4.1: the Sec-WebSocket-Protocol elements "MUST all be unique
// strings"; a browser throws a SyntaxError for a repeated one, and Dial,
// which refuses a subprotocol that is not a token before dialing, should
// refuse a repeated one the same way.
func TestRepeatedSubprotocolRefused(t *testing.T) {
	addr, _ := rvrw2Collect(t, "")
	o := options()
	o.Subprotocols = []string{"chat", "chat"}
	u, _, err := wsclient.Dial(testCtx(t), "ws://"+addr, o)
	if err == nil {
		u.Conn.Close()
		t.Fatal("Dial offered a repeated subprotocol")
	}
}

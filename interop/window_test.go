package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// TestDeflateWindows offers server_max_window_bits from 8 to 15, with and
// without context takeover, and inflates what colibri sends with Python's
// zlib and exactly that window (testdata/python/inflate.py): a back
// reference further than 2^bits bytes fails there with "invalid distance
// too far back". The messages tempt the compressor with repeats just
// inside and just outside the window, within a message and, with context
// takeover, across messages (RFC 7692 §7.1.2.1).
func TestDeflateWindows(t *testing.T) {
	py, _ := python()
	if py == "" {
		unavailable(t, "no Python with zlib and websockets found; install it with `apt-get install python3-websockets`")
	}
	r := router.New()
	for _, takeover := range []bool{false, true} {
		path := "/window"
		if takeover {
			path += "-takeover"
		}
		router.WS(r, path, windowBits, sendWindowMessages, router.WithConfig(wsconn.Config{
			Compression: wsconn.Compression{Enabled: true, ContextTakeover: takeover},
		}))
	}
	srv := wstest.NewServer(t, r)
	for bits := 8; bits <= 15; bits++ {
		for _, takeover := range []bool{false, true} {
			name, path, offer := fmt.Sprint(bits, " bits"), "/window", fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
			want := fmt.Sprintf("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=%d", bits)
			mode := "reset"
			if takeover {
				name, path, mode = name+" with context takeover", "/window-takeover", "takeover"
				want = fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
			}
			t.Run(name, func(t *testing.T) {
				msgs, got := readCompressed(t, srv.URL()+path+"?bits="+strconv.Itoa(bits), offer)
				if got != want {
					t.Fatalf("offer %q was answered %q, want %q", offer, got, want)
				}
				var in bytes.Buffer
				for _, m := range msgs {
					_ = binary.Write(&in, binary.BigEndian, uint32(len(m)))
					in.Write(m)
				}
				cmd := exec.Command(py, testdata("python", "inflate.py"), strconv.Itoa(bits), mode)
				cmd.Stdin = &in
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("zlib with a %d-bit window: %v\n%s", bits, err, stderr.String())
				}
				var lines []string
				for _, p := range windowMessages(bits) {
					lines = append(lines, fmt.Sprintf("%s %d", hexSum(p), len(p)))
				}
				if got, want := strings.TrimSpace(string(out)), strings.Join(lines, "\n"); got != want {
					t.Fatalf("zlib inflated\n%s\nwant\n%s", got, want)
				}
			})
		}
	}
}

func windowBits(req *http.Request) (int, router.Decision) {
	n, err := strconv.Atoi(req.URL.Query().Get("bits"))
	if err != nil {
		return 0, router.Reject(http.StatusBadRequest, nil, "bits required")
	}
	return n, router.Upgrade(nil)
}

// sendWindowMessages sends windowMessages(bits) and waits for the close.
func sendWindowMessages(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[int]) error {
	for _, m := range windowMessages(s.Value) {
		if err := out.WriteBinary(ctx, m); err != nil {
			return err
		}
	}
	for range in.Messages(0) {
	}
	return in.Err()
}

// windowMessages returns messages for a window of 2^bits bytes: in the
// first, a random 64-byte key comes back after 2^bits - 1, 2^bits,
// 2^bits + 1 and 2^(bits+1) bytes; the second starts with the end of the
// first and ends with its last key again, beyond the window; the third
// repeats a short text.
func windowMessages(bits int) [][]byte {
	w := 1 << bits
	rnd := rand.New(rand.NewPCG(uint64(bits), 7692))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	var first []byte
	var key []byte
	for _, d := range []int{w - 1, w, w + 1, 2 * w} {
		key = random(64)
		first = append(first, key...)
		first = append(first, random(d-64)...)
		first = append(first, key...)
	}
	second := append(bytes.Clone(first[len(first)-w/2:]), random(w)...)
	second = append(second, key...)
	third := []byte(strings.Repeat("colibri 🐦 ", 300))
	return [][]byte{first, second, third}
}

// readCompressed opens a connection to url offering ext, reads the three
// messages and returns their compressed payloads and the server's
// Sec-WebSocket-Extensions. It is a client of its own because it must keep
// the bytes as they came.
func readCompressed(t *testing.T, url, ext string) ([][]byte, string) {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	addr, path, _ := strings.Cut(addr, "/")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: %s\r\n\r\n", path, addr, ext)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	var msgs [][]byte
	var cur []byte
	for len(msgs) < 3 {
		var hb [frames.MaxHeaderSize]byte
		if _, err := io.ReadFull(br, hb[:2]); err != nil {
			t.Fatal(err)
		}
		n := frames.HeaderSize(hb[0], hb[1])
		if _, err := io.ReadFull(br, hb[2:n]); err != nil {
			t.Fatal(err)
		}
		h, err := frames.ParseHeader(hb[:n])
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		switch {
		case h.Op == frames.OpBinary && h.Rsv == frames.Rsv1:
			cur = p
		case h.Op == frames.OpContinuation && h.Rsv == 0:
			cur = append(cur, p...)
		default:
			t.Fatalf("unexpected frame %+v", h)
		}
		if h.Fin {
			msgs = append(msgs, cur)
		}
	}
	// A masked CLOSE 1000; the server answers and ends.
	key := [4]byte{1, 2, 3, 4}
	payload := []byte{0x03, 0xe8}
	frames.Mask(payload, key, 0)
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], frames.Header{Op: frames.OpClose, Fin: true, Masked: true, Mask: key, Length: 2})
	_, _ = conn.Write(append(hb[:n], payload...))
	_, _ = io.Copy(io.Discard, br)
	return msgs, resp.Header.Get("Sec-WebSocket-Extensions")
}

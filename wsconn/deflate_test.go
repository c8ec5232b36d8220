package wsconn_test

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

func compressed(cfg wsconn.Config) *wsconn.Config {
	cfg.Compression.Enabled = true
	return &cfg
}

// deflateServer serves echo with permessage-deflate on, reporting the
// negotiated extension of each connection.
func deflateServer(t *testing.T, cfg *wsconn.Config) (string, chan string) {
	t.Helper()
	exts := make(chan string, 16)
	url, _ := testServerAccept(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var names []string
		for _, e := range s.Extensions() {
			names = append(names, e.Name)
		}
		exts <- strings.Join(names, ",")
		return echo(ctx, in, out, s)
	})
	return url, exts
}

func jsonSample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/chat.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCompressionWithGorilla(t *testing.T) {
	url, exts := deflateServer(t, compressed(wsconn.Config{}))
	d := gorilla.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("not negotiated: %v", resp.Header)
	}
	if got := <-exts; got != "permessage-deflate" {
		t.Fatalf("server side sees %q", got)
	}
	sample := jsonSample(t)
	for _, msg := range [][]byte{sample, []byte("tiny"), bytes.Repeat([]byte("zzzz"), 100000)} {
		if err := c.WriteMessage(gorilla.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("compressed echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
		}
	}
}

func TestCompressionWithCoder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   coder.CompressionMode
		server wsconn.Compression
	}{
		{"no context takeover", coder.CompressionNoContextTakeover, wsconn.Compression{Enabled: true}},
		{"context takeover both ways", coder.CompressionContextTakeover, wsconn.Compression{Enabled: true, ContextTakeover: true, Level: 6}},
		{"client takeover, server resets", coder.CompressionContextTakeover, wsconn.Compression{Enabled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, exts := deflateServer(t, &wsconn.Config{Compression: tc.server, FragmentSize: 4096})
			ctx := context.Background()
			c, _, err := coder.Dial(ctx, url, &coder.DialOptions{CompressionMode: tc.mode, CompressionThreshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 24)
			if got := <-exts; got != "permessage-deflate" {
				t.Fatalf("server side sees %q", got)
			}
			sample := jsonSample(t)
			// Repeated similar messages exercise the window across messages.
			for i := range 5 {
				msg := append([]byte(fmt.Sprintf("%d:", i)), sample...)
				if err := c.Write(ctx, coder.MessageText, msg); err != nil {
					t.Fatal(err)
				}
				_, got, err := c.Read(ctx)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
				}
			}
			// A streamed message arrives as several compressed fragments.
			w, err := c.Writer(ctx, coder.MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			for i := range 50 {
				chunk := bytes.Repeat([]byte{byte(i)}, 3000)
				want.Write(chunk)
				if _, err := w.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			_, got, err := c.Read(ctx)
			if err != nil || !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("fragmented compressed message: %d bytes, %v", len(got), err)
			}
			if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCompressionServerStreamsCompressedFragments(t *testing.T) {
	cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: true}, FragmentSize: 512}
	want := strings.Repeat("a streamed and compressed message; ", 4000)
	url, _ := testServerAccept(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, 1)
		if err != nil {
			return err
		}
		for i := 0; i < len(want); i += 1000 {
			if _, err := w.Write([]byte(want[i:min(i+1000, len(want))])); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		// And an opted-out message.
		return out.WriteText(ctx, want[:5000], wsconn.Uncompressed)
	})
	d := gorilla.Dialer{EnableCompression: true}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, exp := range []string{want, want[:5000]} {
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != exp {
			t.Fatalf("got %d bytes, %v", len(got), err)
		}
	}
}

// A bomb: 10 MiB of zeros compresses to a few KiB. With a 1 MiB limit the
// server closes with 1009 and never holds more than the limit.
func TestCompressionBombClosesWith1009(t *testing.T) {
	errc := make(chan error, 1)
	cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: true}, MaxMessageSize: 1 << 20}
	url, _ := testServerAccept(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errc <- in.Err()
		return in.Err()
	})
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(make([]byte, 10<<20))
	fw.Flush()
	bomb := z.Bytes()[:z.Len()-4]
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	c := dialRawExt(t, url, "permessage-deflate; client_no_context_takeover")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.frameRsv(frames.OpBinary, true, frames.Rsv1, bomb)
	c.expectClose(frames.CloseMessageTooBig)
	if err := <-errc; wsconn.CloseStatus(err) != frames.CloseMessageTooBig {
		t.Fatalf("in.Err() = %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("allocated %d bytes while inflating a 10 MiB bomb with a 1 MiB limit", grew)
	}
}

func TestCompressionControlFramesBetweenCompressedFragments(t *testing.T) {
	url, _ := testServerAccept(t, compressed(wsconn.Config{}), echo)
	c := dialRawExt(t, url, "permessage-deflate")
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestSpeed)
	text := strings.Repeat("interleaved ", 200)
	fw.Write([]byte(text))
	fw.Flush()
	body := z.Bytes()[:z.Len()-4]
	third := len(body) / 3
	c.frameRsv(frames.OpText, false, frames.Rsv1, body[:third])
	c.frame(frames.OpPing, true, []byte("mid"))
	c.frame(frames.OpContinuation, false, body[third:2*third])
	c.frame(frames.OpPong, true, nil)
	c.frame(frames.OpContinuation, true, body[2*third:])
	h, p := c.read()
	if h.Op != frames.OpPong || string(p) != "mid" {
		t.Fatalf("want the pong first, got %v %q", h.Op, p)
	}
	h, p = c.read()
	if h.Op != frames.OpText || h.Rsv != frames.Rsv1 {
		t.Fatalf("echo not compressed: %+v", h)
	}
	fr := flate.NewReader(bytes.NewReader(append(p, 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff)))
	var out bytes.Buffer
	out.ReadFrom(fr)
	if out.String() != text {
		t.Fatalf("inflated echo %q", out.String())
	}
}

func TestCompressionViolations(t *testing.T) {
	url, _ := testServerAccept(t, compressed(wsconn.Config{}), echo)
	t.Run("rsv1 on continuation", func(t *testing.T) {
		c := dialRawExt(t, url, "permessage-deflate")
		c.frame(frames.OpText, false, []byte("a"))
		c.frameRsv(frames.OpContinuation, true, frames.Rsv1, []byte("b"))
		c.expectClose(frames.CloseProtocolError)
	})
	t.Run("rsv1 on control frame", func(t *testing.T) {
		c := dialRawExt(t, url, "permessage-deflate")
		c.frameRsv(frames.OpPing, true, frames.Rsv1, nil)
		c.expectClose(frames.CloseProtocolError)
	})
	t.Run("garbage deflate data", func(t *testing.T) {
		c := dialRawExt(t, url, "permessage-deflate")
		c.frameRsv(frames.OpBinary, true, frames.Rsv1, []byte{0xff, 0xff, 0xff, 0xff, 0xff})
		c.expectClose(frames.CloseInvalidPayload)
	})
	t.Run("compressed invalid utf-8", func(t *testing.T) {
		c := dialRawExt(t, url, "permessage-deflate")
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, 1)
		fw.Write([]byte("ok \xff bad"))
		fw.Flush()
		c.frameRsv(frames.OpText, true, frames.Rsv1, z.Bytes()[:z.Len()-4])
		c.expectClose(frames.CloseInvalidPayload)
	})
	t.Run("rsv1 when not negotiated", func(t *testing.T) {
		c := dialRaw(t, url)
		c.frameRsv(frames.OpText, true, frames.Rsv1, []byte("x"))
		c.expectClose(frames.CloseProtocolError)
	})
}

func TestCompressionPreparedSharesOneCompression(t *testing.T) {
	ready := make(chan *wsconn.Outbound, 2)
	release := make(chan struct{})
	url, _ := testServerAccept(t, compressed(wsconn.Config{}), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ready <- out
		<-release
		return nil
	})
	d := gorilla.Dialer{EnableCompression: true}
	var clients []*gorilla.Conn
	for range 2 {
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	p := wsconn.Prepare(textMessage(strings.Repeat("shared ", 1000)))
	for range 2 {
		if err := (<-ready).WritePrepared(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != strings.Repeat("shared ", 1000) {
			t.Fatalf("prepared compressed message: %d %v", len(got), err)
		}
	}
	close(release)
}

// testServerAccept is testServer with the handshake's compression taken
// from cfg.
func testServerAccept(t testing.TB, cfg *wsconn.Config, h handlerFunc) (string, *group.Group) {
	return testServerOpts(t, cfg, h, &handshake.AcceptOptions{Subprotocols: []string{"chat", "echo"}, Compression: cfg.Compression})
}

func dialRawExt(t testing.TB, url, ext string) *rawClient {
	return dialRawHeader(t, url, http.Header{"Sec-WebSocket-Extensions": {ext}})
}

package wsconn_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// BenchmarkEcho measures one round trip of a message through colibri's
// echo handler over loopback TCP. The client side is a minimal frame
// writer with preallocated buffers, so allocs/op is the server's.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{32, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			benchEcho(b, size, echo)
		})
	}
}

// BenchmarkEchoFrames is the same round trip through the Frames iterator.
func BenchmarkEchoFrames(b *testing.B) {
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for f := range in.Frames() {
			if err := out.WriteBinary(ctx, f.Payload); err != nil {
				return err
			}
		}
		return in.Err()
	}
	for _, size := range []int{32, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) { benchEcho(b, size, h) })
	}
}

// BenchmarkWriteText answers each message with a prebuilt string of the
// same size through WriteText, which hands the string's bytes to the
// writer without a copy (docs/architecture.md): 0 allocs/op, where
// WriteBinary(ctx, []byte(s)) allocates the message's size each time
// (the "bytes" case).
func BenchmarkWriteText(b *testing.B) {
	for _, size := range []int{32, 16 << 10} {
		s := strings.Repeat("x", size)
		b.Run(byteSize(size)+"/string", func(b *testing.B) {
			benchEcho(b, size, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
				for range in.Frames() {
					if err := out.WriteText(ctx, s); err != nil {
						return err
					}
				}
				return in.Err()
			})
		})
		b.Run(byteSize(size)+"/bytes", func(b *testing.B) {
			benchEcho(b, size, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
				for range in.Frames() {
					if err := out.WriteBinary(ctx, []byte(s)); err != nil {
						return err
					}
				}
				return in.Err()
			})
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func benchEcho(b *testing.B, size int, h handlerFunc) {
	url, _ := testServer(b, nil, h)
	c := dialRaw(b, url)
	payload := make([]byte, size)
	mask := [4]byte{1, 2, 3, 4}
	wire := maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Mask: mask}, payload)
	reply := make([]byte, size)
	br := bufio.NewReaderSize(c.br, 64<<10)
	var rh [frames.MaxHeaderSize]byte

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.nc.Write(wire); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, rh[:2]); err != nil {
			b.Fatal(err)
		}
		hn := frames.HeaderSize(rh[0], rh[1])
		if _, err := io.ReadFull(br, rh[2:hn]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, reply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.frame(frames.OpClose, true, closePayload(1000, ""))
}

// BenchmarkEchoCompressed is BenchmarkEcho with permessage-deflate: the
// client sends the JSON sample compressed once, so the figures are the
// server's cost of inflating and compressing each message.
func BenchmarkEchoCompressed(b *testing.B) {
	sample := jsonSample(b)
	for _, tc := range []struct {
		name string
		comp wsconn.Compression
	}{
		{"reset/level1", wsconn.Compression{Enabled: true}},
		{"takeover/level1", wsconn.Compression{Enabled: true, ContextTakeover: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := &wsconn.Config{Compression: tc.comp}
			url, _ := testServerAccept(b, cfg, echo)
			ext := "permessage-deflate"
			if !tc.comp.ContextTakeover {
				ext += "; client_no_context_takeover"
			}
			c := dialRawHeader(b, url, http.Header{"Sec-WebSocket-Extensions": {ext}})
			var z bytes.Buffer
			fw, _ := flate.NewWriter(&z, flate.BestSpeed)
			fw.Write(sample)
			fw.Flush()
			body := z.Bytes()[:z.Len()-4]
			mask := [4]byte{9, 8, 7, 6}
			wire := maskedFrame(frames.Header{Op: frames.OpText, Fin: true, Rsv: frames.Rsv1, Mask: mask}, body)
			if tc.comp.ContextTakeover {
				// A client that keeps its window cannot resend the same
				// compressed bytes; it sends plain text, and the server
				// compresses its replies with its kept window.
				wire = maskedFrame(frames.Header{Op: frames.OpText, Fin: true, Mask: mask}, sample)
			}
			br := bufio.NewReaderSize(c.br, 64<<10)
			var rh [frames.MaxHeaderSize]byte
			reply := make([]byte, 0, len(sample))
			b.SetBytes(int64(len(sample)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.nc.Write(wire); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, rh[:2]); err != nil {
					b.Fatal(err)
				}
				hn := frames.HeaderSize(rh[0], rh[1])
				if _, err := io.ReadFull(br, rh[2:hn]); err != nil {
					b.Fatal(err)
				}
				h, _ := frames.ParseHeader(rh[:hn])
				reply = reply[:h.Length]
				if _, err := io.ReadFull(br, reply); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(sample))/float64(len(reply)), "ratio")
		})
	}
}

// BenchmarkCompressionRatio reports how much the JSON chat sample in
// testdata shrinks at each level, and what compressing it costs.
func BenchmarkCompressionRatio(b *testing.B) {
	sample := jsonSample(b)
	for _, level := range []int{1, 6, 9} {
		b.Run("level"+itoa(level), func(b *testing.B) {
			// The library colibri compresses with.
			var out bytes.Buffer
			fw, _ := kflate.NewWriter(&out, level)
			b.SetBytes(int64(len(sample)))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				fw.Reset(&out)
				fw.Write(sample)
				fw.Flush()
			}
			b.ReportMetric(float64(len(sample))/float64(out.Len()-4), "ratio")
		})
	}
}

// BenchmarkIdleMemory reports the server-side heap per idle connection,
// with and without permessage-deflate negotiated (b.N is ignored: it opens
// a fixed number of connections).
func BenchmarkIdleMemory(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  wsconn.Config
		ext  string
	}{
		{"plain", wsconn.Config{PingInterval: -1}, ""},
		{"deflate-reset", wsconn.Config{PingInterval: -1, Compression: wsconn.Compression{Enabled: true}}, "permessage-deflate; client_no_context_takeover"},
		{"deflate-takeover", wsconn.Config{PingInterval: -1, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}, "permessage-deflate"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const conns = 500
			url, g := testServerAccept(b, &tc.cfg, echo)
			var h http.Header
			if tc.ext != "" {
				h = http.Header{"Sec-WebSocket-Extensions": {tc.ext}}
			}
			payload := maskedFrame(frames.Header{Op: frames.OpText, Fin: true, Mask: [4]byte{1, 2, 3, 4}}, jsonSample(b))
			clients := make([]*rawClient, conns)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.GC() // the second empties sync.Pool's victim cache
			runtime.ReadMemStats(&before)
			for i := range clients {
				clients[i] = dialRawHeader(b, url, h)
				// One message each way, so that compression state exists
				// where the mode keeps it.
				clients[i].write(payload)
				clients[i].read()
			}
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			// Both ends live in this process; the test client holds a
			// socket and a 4 KiB bufio.Reader, counted out here.
			perConn := float64(int64(after.HeapInuse)-int64(before.HeapInuse))/conns - 4096
			b.ReportMetric(perConn, "heapB/conn")
			for _, c := range clients {
				c.nc.Close()
			}
			for g.Len() > 0 {
				time.Sleep(time.Millisecond)
			}
			for range b.N {
			}
		})
	}
}

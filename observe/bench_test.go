package observe_test

import (
	"bufio"
	"context"
	"io"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// BenchmarkEcho measures the round trip of a 32-byte message through a
// router's echo route over loopback, with observation off, with metrics
// into the SDK, with connection spans too, and with a span per message.
// wsconn's BenchmarkEcho is the same round trip without a router.
func BenchmarkEcho(b *testing.B) {
	metricsOn := func() observe.Options {
		return observe.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))}
	}
	cases := []struct {
		name string
		opts func() observe.Options
	}{
		{"off", nil},
		{"metrics", metricsOn},
		{"metrics+spans", func() observe.Options {
			o := metricsOn()
			o.TracerProvider = sdktrace.NewTracerProvider()
			return o
		}},
		{"message-spans", func() observe.Options {
			o := metricsOn()
			o.TracerProvider = sdktrace.NewTracerProvider()
			o.PerMessageSpans = true
			return o
		}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			var opts []router.Option
			opts = append(opts, router.WithConfig(quiet))
			if bc.opts != nil {
				obs, err := observe.New(bc.opts())
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, router.WithObserver(obs))
			}
			r := router.New(opts...)
			router.WS(r, "/ws/echo", nil, echo)
			srv := wstest.NewServer(b, r)
			benchEcho(b, srv)
			if _, err := r.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func benchEcho(b *testing.B, srv *wstest.Server) {
	u, _, err := wsclient.Dial(context.Background(), srv.URL()+"/ws/echo", &wsclient.Options{NetDial: srv.NetDial})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Conn.Close()
	const size = 32
	mask := [4]byte{1, 2, 3, 4}
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], frames.Header{Op: frames.OpBinary, Fin: true, Masked: true, Mask: mask, Length: size})
	wire := append(hb[:n:n], make([]byte, size)...)
	frames.Mask(wire[n:], mask, 0)
	buffered := bytesReader(u.Buffered)
	br := bufio.NewReaderSize(io.MultiReader(&buffered, u.Conn), 64<<10)
	reply := make([]byte, 2+size)

	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := u.Conn.Write(wire); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, reply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
	_, _ = u.Conn.Write(closeFrame)
	_, _ = io.Copy(io.Discard, br)
}

type bytesReader []byte

func (p *bytesReader) Read(b []byte) (int, error) {
	if len(*p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, *p)
	*p = (*p)[n:]
	return n, nil
}

// stash is an OTel that keeps the ConnObserver it made, for benchmarking
// it alone.
type stash struct {
	*observe.OTel
	co chan wsconn.ConnObserver
}

func (s stash) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	co := s.OTel.ConnOpened(c)
	s.co <- co
	return co
}

// BenchmarkRecordMessage measures what recording one received message
// costs, without the network: the calls a connection makes per message
// with metrics on, and with a span per message as well.
func BenchmarkRecordMessage(b *testing.B) {
	for _, perMessage := range []bool{false, true} {
		name := "metrics"
		if perMessage {
			name = "message-spans"
		}
		b.Run(name, func(b *testing.B) {
			obs, err := observe.New(observe.Options{
				MeterProvider:   sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
				TracerProvider:  sdktrace.NewTracerProvider(),
				PerMessageSpans: perMessage,
			})
			if err != nil {
				b.Fatal(err)
			}
			s := stash{OTel: obs, co: make(chan wsconn.ConnObserver, 1)}
			cfg := quiet
			cfg.Observer = s
			srv := wstest.NewServer(b, wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{Config: &cfg}))
			c := srv.Dial(b, "/", nil)
			co := <-s.co
			b.ReportAllocs()
			for b.Loop() {
				co.Received(messages.KindText, 32)
			}
			b.StopTimer()
			c.Close()
		})
	}
}

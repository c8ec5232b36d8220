package observe_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// An OTel with the SDK's in-memory reader and span recorder watches an
// echo route: one connection sends a message, reads the echo and closes.
// Its span links to the span of its upgrade request.
// In production the reader is an exporter, such as Prometheus's (see
// cmd/example) or OTLP's.
func Example() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer mp.Shutdown(context.Background())
	defer tp.Shutdown(context.Background())

	obs, err := observe.New(observe.Options{MeterProvider: mp, TracerProvider: tp})
	if err != nil {
		log.Fatal(err)
	}
	r := router.New(
		router.WithConfig(wsconn.Config{Logger: slog.New(slog.DiscardHandler)}),
		router.WithObserver(obs))
	router.WS(r, "/ws/echo", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	})
	srv := httptest.NewServer(obs.Handler(r))
	defer srv.Close()

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/echo"
	err = wsclient.Run(context.Background(), url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		if err := out.WriteText(ctx, "hello"); err != nil {
			return err
		}
		for m := range in.Messages(0) {
			fmt.Println("echo:", m.Text())
			return nil // close with 1000
		}
		return in.Err()
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Wait for the server's side of the connection to end.
	if _, err := r.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		// Upgrades are counted on the request's goroutine, which may
		// still be returning from the hand-off; this example leaves them
		// out.
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name != "colibri.upgrades" {
			var lines []string
			for _, p := range sum.DataPoints {
				lines = append(lines, fmt.Sprintf("%s{%s} %d", m.Name, labels(p.Attributes), p.Value))
			}
			slices.Sort(lines)
			fmt.Println(strings.Join(lines, "\n"))
		}
	}
	for _, s := range spans.Ended() {
		if strings.HasPrefix(s.Name(), "WebSocket") {
			fmt.Printf("span %q, %d link(s)\n", s.Name(), len(s.Links()))
		}
	}
	// Output:
	// echo: hello
	// colibri.connections.open{http.route=/ws/echo} 0
	// colibri.messages{http.route=/ws/echo,network.io.direction=receive,websocket.message.kind=text} 1
	// colibri.messages{http.route=/ws/echo,network.io.direction=transmit,websocket.message.kind=text} 1
	// colibri.message.payload{http.route=/ws/echo,network.io.direction=receive,websocket.message.kind=text} 5
	// colibri.message.payload{http.route=/ws/echo,network.io.direction=transmit,websocket.message.kind=text} 5
	// colibri.closes{http.route=/ws/echo,websocket.close.by=peer,websocket.close.code=1000} 1
	// span "WebSocket /ws/echo", 1 link(s)
}

// labels renders a set of attributes as key=value pairs, sorted by key.
func labels(set attribute.Set) string {
	var kv []string
	for _, a := range set.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	return strings.Join(kv, ",")
}

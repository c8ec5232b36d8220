package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/topics"
)

// metrics is the example's observability: colibri's observer records into
// an OpenTelemetry meter provider whose reader is the Prometheus exporter,
// and Handler serves what it collects, with the Go runtime's and the
// process's own metrics, in Prometheus's text format. Each server has its
// own registry, so that several can run in one process (as the tests do).
type metrics struct {
	obs      *observe.OTel
	provider *sdkmetric.MeterProvider
	handler  http.Handler
	hub      metric.Registration
}

func newMetrics() (*metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	obs, err := observe.New(observe.Options{MeterProvider: provider})
	if err != nil {
		_ = provider.Shutdown(context.Background())
		return nil, err
	}
	return &metrics{
		obs:      obs,
		provider: provider,
		handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// watchRooms reports the queues of the chat's hub.
func (m *metrics) watchRooms(hub *topics.Hub) error {
	reg, err := m.obs.WatchHub("chat", hub)
	m.hub = reg
	return err
}

// close stops collecting.
func (m *metrics) close() error {
	var err error
	if m.hub != nil {
		err = m.hub.Unregister()
	}
	return errors.Join(err, m.provider.Shutdown(context.Background()))
}

package observe_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/observe"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness is an OTel recording into the SDK's in-memory reader and
// span recorder.
type harness struct {
	obs    *observe.OTel
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func newHarness(t *testing.T, opts observe.Options) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	opts.MeterProvider, opts.TracerProvider = mp, tp
	obs, err := observe.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.obs = obs
	return h
}

// metrics collects what has been recorded so far, by instrument name.
type metrics map[string]metricdata.Aggregation

func (h *harness) collect(t *testing.T) metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	m := metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != observe.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, observe.ScopeName)
		}
		for _, md := range sm.Metrics {
			m[md.Name] = md.Data
		}
	}
	return m
}

// int64Point returns the value of name's data point with exactly attrs,
// and whether there is one. It fails the test for an instrument that is
// not an int64 sum or gauge.
func (m metrics) int64Point(t *testing.T, name string, attrs ...attribute.KeyValue) (int64, bool) {
	t.Helper()
	want := attribute.NewSet(attrs...)
	var points []metricdata.DataPoint[int64]
	switch d := m[name].(type) {
	case nil:
		return 0, false
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("%s is a %T", name, d)
	}
	for _, p := range points {
		if p.Attributes.Equals(&want) {
			return p.Value, true
		}
	}
	return 0, false
}

// want checks name's int64 data point with attrs; want 0 also accepts no
// data point.
func (m metrics) want(t *testing.T, want int64, name string, attrs ...attribute.KeyValue) {
	t.Helper()
	got, _ := m.int64Point(t, name, attrs...)
	if got != want {
		t.Errorf("%s %v = %d, want %d", name, attrs, got, want)
	}
}

// histogram returns the count and sum of name's data point with exactly
// attrs.
func (m metrics) histogram(t *testing.T, name string, attrs ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	d, ok := m[name].(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a float64 histogram", name, m[name])
	}
	want := attribute.NewSet(attrs...)
	for _, p := range d.DataPoints {
		if p.Attributes.Equals(&want) {
			return p.Count, p.Sum
		}
	}
	return 0, 0
}

// spanNamed returns the ended spans called name.
func (h *harness) spansNamed(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attr returns the value of key among a span's attributes.
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

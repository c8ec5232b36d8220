package observe

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// ScopeName is the instrumentation scope of the meter and the tracer that
// an OTel takes from its providers.
const ScopeName = "github.com/colibri-ws/colibri/observe"

// The attributes colibri puts on its metrics and spans. HTTP and network
// attributes follow OpenTelemetry's semantic conventions; the others are
// colibri's own.
const (
	// AttrRoute is the ws route's pattern, as ServeMux has it:
	// "/ws/chat/{room}"; "" for a connection served without a router.
	AttrRoute = attribute.Key("http.route")
	// AttrStatus is the HTTP status an upgrade request received.
	AttrStatus = attribute.Key("http.response.status_code")
	// AttrOutcome is how an upgrade request ended: "accepted",
	// "refused" or "failed".
	AttrOutcome = attribute.Key("colibri.upgrade.outcome")
	// AttrDirection is "receive" for messages from the peer and
	// "transmit" for messages to it.
	AttrDirection = attribute.Key("network.io.direction")
	// AttrKind is a message's kind: "text" or "binary".
	AttrKind = attribute.Key("websocket.message.kind")
	// AttrCloseCode is the close code that ended a connection, or the
	// code a protocol error fails it with.
	AttrCloseCode = attribute.Key("websocket.close.code")
	// AttrCloseReason is the close reason; on spans only.
	AttrCloseReason = attribute.Key("websocket.close.reason")
	// AttrClosedBy is the side that started the close: "local" or "peer".
	AttrClosedBy = attribute.Key("websocket.close.by")
	// AttrSubprotocol is the negotiated subprotocol; on spans only.
	AttrSubprotocol = attribute.Key("websocket.subprotocol")
	// AttrCompression is the negotiated compression, "permessage-deflate"
	// or "none"; on spans only.
	AttrCompression = attribute.Key("websocket.compression")
	// AttrDropReason says why a topics member did not get a message, in
	// the words of topics.DropReason.String: "evicted", "refused",
	// "replaced", "timed out", "disconnected", "too large", "left", "lost".
	AttrDropReason = attribute.Key("colibri.drop.reason")
	// AttrDropPolicy names the topics policy under which a message was
	// dropped, as topics.Policy.Name gives it: "drop-oldest",
	// "drop-newest", "keep-latest", "block", "disconnect".
	AttrDropPolicy = attribute.Key("colibri.drop.policy")
	// AttrHub names a topics hub, as given to WatchHub.
	AttrHub = attribute.Key("colibri.hub")
)

// Options configure an OTel. A nil provider switches its signal off;
// the zero Options observe nothing and cost next to nothing.
type Options struct {
	// MeterProvider provides the meter that records colibri's metrics
	// (see the package documentation for the list). Default nil: no
	// metrics.
	MeterProvider metric.MeterProvider

	// TracerProvider provides the tracer of upgrade, connection and
	// message spans. Default nil: no spans.
	TracerProvider trace.TracerProvider

	// Propagator reads the trace context of upgrade requests from their
	// headers. Default: W3C Trace Context and W3C Baggage. The global
	// propagator is never used.
	Propagator propagation.TextMapPropagator

	// PerMessageSpans records a span for every message received and sent,
	// as a child of its connection's span. Default false: a busy
	// connection would make thousands of spans a second; turn it on with
	// a sampler that keeps a few connections.
	PerMessageSpans bool
}

// OTel turns colibri's events into OpenTelemetry metrics and spans: it is
// the OpenTelemetry implementation of wsconn.Observer. Give it to the
// router with router.WithObserver (and to app.Config.Observer), wrap the
// router with Handler to trace upgrade requests, and hand Dropped and
// WatchHub to the topics hubs. All its methods are safe for concurrent
// use.
type OTel struct {
	tracer     trace.Tracer // nil: no spans
	prop       propagation.TextMapPropagator
	perMessage bool
	meter      metric.Meter

	open        metric.Int64UpDownCounter
	upgrades    metric.Int64Counter
	upgradeTime metric.Float64Histogram
	messages    metric.Int64ObservableCounter
	payload     metric.Int64ObservableCounter
	rtt         metric.Float64Histogram
	violations  metric.Int64Counter
	closes      metric.Int64Counter
	lifetime    metric.Float64Histogram
	drops       metric.Int64Counter

	queueMessages metric.Int64ObservableGauge
	queueBytes    metric.Int64ObservableGauge
	queueLongest  metric.Int64ObservableGauge
	members       metric.Int64ObservableGauge

	routes   sync.Map // route pattern → *routeAttrs
	counting metric.Registration
}

var _ wsconn.Observer = (*OTel)(nil)

// Bucket boundaries, in seconds.
var (
	rttBuckets      = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	upgradeBuckets  = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	lifetimeBuckets = []float64{0.1, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}
)

// New returns an OTel that records into the providers of opts. It
// fails only if the meter refuses to create an instrument.
func New(opts Options) (*OTel, error) {
	o := &OTel{prop: opts.Propagator, perMessage: opts.PerMessageSpans}
	if o.prop == nil {
		o.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if opts.TracerProvider != nil {
		o.tracer = opts.TracerProvider.Tracer(ScopeName)
	}
	mp := opts.MeterProvider
	if mp == nil {
		mp = noopMeterProvider
	}
	o.meter = mp.Meter(ScopeName)
	if err := o.instruments(); err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	reg, err := o.meter.RegisterCallback(o.observeMessages, o.messages, o.payload)
	if err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	o.counting = reg
	return o, nil
}

// Close stops reporting message counts to the MeterProvider, which keeps a
// callback for them until then. Call it when the OTel goes away and
// its MeterProvider stays; shutting the provider down does as much.
func (o *OTel) Close() error {
	return o.counting.Unregister()
}

func (o *OTel) instruments() error {
	m := o.meter
	var errs [14]error
	o.open, errs[0] = m.Int64UpDownCounter("colibri.connections.open",
		metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections being served."))
	o.upgrades, errs[1] = m.Int64Counter("colibri.upgrades",
		metric.WithUnit("{request}"),
		metric.WithDescription("WebSocket upgrade requests, by how they ended and the HTTP status they received."))
	o.upgradeTime, errs[2] = m.Float64Histogram("colibri.upgrade.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time from an upgrade request's arrival to the 101 response or the refusal."),
		metric.WithExplicitBucketBoundaries(upgradeBuckets...))
	o.messages, errs[3] = m.Int64ObservableCounter("colibri.messages",
		metric.WithUnit("{message}"),
		metric.WithDescription("WebSocket messages received and sent."))
	o.payload, errs[4] = m.Int64ObservableCounter("colibri.message.payload",
		metric.WithUnit("By"),
		metric.WithDescription("Payload bytes of the WebSocket messages received and sent, uncompressed."))
	o.rtt, errs[5] = m.Float64Histogram("colibri.ping.rtt",
		metric.WithUnit("s"),
		metric.WithDescription("Round-trip time of keep-alive pings."),
		metric.WithExplicitBucketBoundaries(rttBuckets...))
	o.violations, errs[6] = m.Int64Counter("colibri.protocol_errors",
		metric.WithUnit("{error}"),
		metric.WithDescription("Protocol violations by peers, by the close code that failed the connection."))
	o.closes, errs[7] = m.Int64Counter("colibri.closes",
		metric.WithUnit("{connection}"),
		metric.WithDescription("Connections ended, by close code and the side that started the close."))
	o.lifetime, errs[8] = m.Float64Histogram("colibri.connection.duration",
		metric.WithUnit("s"),
		metric.WithDescription("How long connections lived."),
		metric.WithExplicitBucketBoundaries(lifetimeBuckets...))
	o.drops, errs[9] = m.Int64Counter("colibri.topics.drops",
		metric.WithUnit("{message}"),
		metric.WithDescription("Messages topics members did not get, by the reason their policy gave."))
	o.queueMessages, errs[10] = m.Int64ObservableGauge("colibri.topics.queue.messages",
		metric.WithUnit("{message}"),
		metric.WithDescription("Messages queued to the members of a hub or being written to them."))
	o.queueBytes, errs[11] = m.Int64ObservableGauge("colibri.topics.queue.bytes",
		metric.WithUnit("By"),
		metric.WithDescription("Size, as uncompressed frames, of the messages queued to the members of a hub or being written to them."))
	o.queueLongest, errs[12] = m.Int64ObservableGauge("colibri.topics.queue.longest",
		metric.WithUnit("{message}"),
		metric.WithDescription("Messages held by the member of a hub with the longest queue."))
	o.members, errs[13] = m.Int64ObservableGauge("colibri.topics.members",
		metric.WithUnit("{member}"),
		metric.WithDescription("Members of a hub whose connections are open."))
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// routeAttrs are one route's attribute sets, made once so that recording
// costs no allocation, and its message counts. Messages are counted with
// atomic additions, which the meter reads when it collects: a message
// costs two of them rather than two trips through the SDK.
type routeAttrs struct {
	route    attribute.KeyValue
	add      []metric.AddOption    // route only
	record   []metric.RecordOption // route only
	msg      [2][2]msgCount        // by direction and kind
	dropSets sync.Map              // topics.DropReason → []metric.AddOption
}

// msgCount counts the messages of one route, direction and kind.
type msgCount struct {
	attrs    metric.MeasurementOption
	messages atomic.Int64
	bytes    atomic.Int64
}

const (
	dirReceive = iota
	dirTransmit
)

func (o *OTel) routeAttrs(route string) *routeAttrs {
	if ra, ok := o.routes.Load(route); ok {
		return ra.(*routeAttrs)
	}
	kv := AttrRoute.String(route)
	set := metric.WithAttributeSet(attribute.NewSet(kv))
	ra := &routeAttrs{route: kv, add: []metric.AddOption{set}, record: []metric.RecordOption{set}}
	for d, dir := range [2]string{"receive", "transmit"} {
		for k, kind := range [2]messages.Kind{messages.KindText, messages.KindBinary} {
			ra.msg[d][k].attrs = metric.WithAttributeSet(attribute.NewSet(
				kv, AttrDirection.String(dir), AttrKind.String(kind.String())))
		}
	}
	actual, _ := o.routes.LoadOrStore(route, ra)
	return actual.(*routeAttrs)
}

// count adds a message of size bytes in direction dir.
func (ra *routeAttrs) count(dir int, kind messages.Kind, size int64) {
	k := 0
	if kind == messages.KindBinary {
		k = 1
	}
	c := &ra.msg[dir][k]
	c.messages.Add(1)
	c.bytes.Add(size)
}

// observeMessages reports the message counts of every route, direction
// and kind that has seen a message.
func (o *OTel) observeMessages(_ context.Context, obs metric.Observer) error {
	o.routes.Range(func(_, v any) bool {
		ra := v.(*routeAttrs)
		for d := range ra.msg {
			for k := range ra.msg[d] {
				c := &ra.msg[d][k]
				if n := c.messages.Load(); n > 0 {
					obs.ObserveInt64(o.messages, n, c.attrs)
					obs.ObserveInt64(o.payload, c.bytes.Load(), c.attrs)
				}
			}
		}
		return true
	})
	return nil
}

// dropOpts returns the attributes of a drop for reason r under policy p.
func (ra *routeAttrs) dropOpts(r topics.DropReason, p topics.Policy) []metric.AddOption {
	key := dropKey{r, p.Name()}
	if opts, ok := ra.dropSets.Load(key); ok {
		return opts.([]metric.AddOption)
	}
	opts := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(ra.route,
		AttrDropReason.String(r.String()), AttrDropPolicy.String(key.policy)))}
	actual, _ := ra.dropSets.LoadOrStore(key, opts)
	return actual.([]metric.AddOption)
}

type dropKey struct {
	reason topics.DropReason
	policy string
}

// background is the context of measurements: colibri's metrics carry no
// exemplars, which keeps recording them cheap.
var background = context.Background()

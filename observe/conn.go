package observe

import (
	"context"
	"net"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

var noopMeterProvider metric.MeterProvider = noop.NewMeterProvider()

// ConnOpened starts observing c: it counts c as open and, with tracing on,
// starts the span of c's lifetime, a new trace linked to the span of its
// upgrade request when that request carried one (see Handler). It
// implements wsconn.Observer; colibri calls it.
func (o *OTel) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	co := &connObserver{o: o, attrs: o.routeAttrs(c.Route())}
	o.open.Add(background, 1, co.attrs.add...)
	if o.tracer != nil {
		co.startSpan(c)
	}
	return co
}

// connObserver records the events of one connection.
type connObserver struct {
	o     *OTel
	attrs *routeAttrs
	ctx   context.Context // carries span, for message spans
	span  trace.Span      // nil without tracing
}

func (co *connObserver) startSpan(c *wsconn.Conn) {
	ctx := context.Background()
	attrs := []attribute.KeyValue{
		co.attrs.route,
		AttrSubprotocol.String(c.Subprotocol()),
		AttrCompression.String(compression(c)),
		attribute.Int64("colibri.conn.id", int64(c.ID())),
	}
	// OpenTelemetry's network.peer.address holds the address alone, its
	// port goes in network.peer.port.
	peer := c.RemoteAddr().String()
	if host, port, err := net.SplitHostPort(peer); err == nil {
		n, _ := strconv.Atoi(port)
		attrs = append(attrs, attribute.String("network.peer.address", host), attribute.Int("network.peer.port", n))
	} else {
		attrs = append(attrs, attribute.String("network.peer.address", peer))
	}
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrs...),
	}
	if req := c.Request(); req != nil {
		// Baggage and other values of the request go on; its cancellation,
		// which comes when the router returns, does not.
		ctx = context.WithoutCancel(req.Context())
		if up := trace.SpanContextFromContext(ctx); up.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: up}))
		}
	}
	name := "WebSocket"
	if r := c.Route(); r != "" {
		name += " " + r
	}
	co.ctx, co.span = co.o.tracer.Start(ctx, name, opts...)
}

// compression names the connection's negotiated compression.
func compression(c *wsconn.Conn) string {
	for _, e := range c.Extensions() {
		if e.Name == "permessage-deflate" {
			return "permessage-deflate"
		}
	}
	return "none"
}

func (co *connObserver) Received(kind messages.Kind, size int64) {
	co.attrs.count(dirReceive, kind, size)
	if co.o.perMessage && co.span != nil {
		co.messageSpan("receive", trace.SpanKindConsumer, kind, size)
	}
}

func (co *connObserver) Sent(kind messages.Kind, size int64) {
	co.attrs.count(dirTransmit, kind, size)
	if co.o.perMessage && co.span != nil {
		co.messageSpan("send", trace.SpanKindProducer, kind, size)
	}
}

func (co *connObserver) messageSpan(name string, kind trace.SpanKind, mk messages.Kind, size int64) {
	_, span := co.o.tracer.Start(co.ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(
		AttrKind.String(mk.String()),
		attribute.Int64("websocket.message.size", size)))
	span.End()
}

func (co *connObserver) PingRTT(rtt time.Duration) {
	co.o.rtt.Record(background, rtt.Seconds(), co.attrs.record...)
}

func (co *connObserver) ProtocolError(v *frames.Violation) {
	co.o.violations.Add(background, 1, metric.WithAttributes(co.attrs.route, AttrCloseCode.Int(int(v.Code))))
	if co.span != nil {
		co.span.AddEvent("protocol error", trace.WithAttributes(
			AttrCloseCode.Int(int(v.Code)), AttrCloseReason.String(v.Reason)))
	}
}

func (co *connObserver) Closed(info wsconn.CloseInfo) {
	o := co.o
	by := AttrClosedBy.String(info.By.String())
	o.open.Add(background, -1, co.attrs.add...)
	o.closes.Add(background, 1, metric.WithAttributes(co.attrs.route, AttrCloseCode.Int(int(info.Code)), by))
	o.lifetime.Record(background, info.Duration.Seconds(), metric.WithAttributes(co.attrs.route, by))
	if co.span == nil {
		return
	}
	co.span.SetAttributes(
		AttrCloseCode.Int(int(info.Code)),
		AttrCloseReason.String(info.Reason),
		by,
		attribute.Int64("websocket.messages.received", info.MessagesIn),
		attribute.Int64("websocket.messages.sent", info.MessagesOut),
		attribute.Int64("websocket.bytes.received", info.BytesIn),
		attribute.Int64("websocket.bytes.sent", info.BytesOut))
	if failed(info.Code) {
		co.span.SetStatus(codes.Error, "closed with "+info.Code.String())
	}
	co.span.End()
}

// failed reports whether a connection that ended with code failed: a
// protocol or payload error, a transport that broke, an internal error.
// Normal closes, going away, policy and load-shedding codes and the
// application's own codes are not failures.
func failed(code frames.CloseCode) bool {
	switch code {
	case frames.CloseProtocolError, frames.CloseUnsupportedData, frames.CloseAbnormal,
		frames.CloseInvalidPayload, frames.CloseMessageTooBig, frames.CloseMandatoryExtension,
		frames.CloseInternalError, frames.CloseTLSHandshake:
		return true
	}
	return false
}

package observe

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// Upgraded records how an upgrade request ended: it counts the request by
// route, status and outcome, records the handshake's duration, and ends
// the upgrade span Handler started, named after the route. It implements
// wsconn.Observer; the router calls it.
func (o *OTel) Upgraded(req *http.Request, u wsconn.UpgradeResult) {
	outcome := "refused"
	switch {
	case u.Err != nil:
		outcome = "failed"
	case u.Accepted:
		outcome = "accepted"
	}
	route, out := AttrRoute.String(u.Route), AttrOutcome.String(outcome)
	o.upgrades.Add(background, 1, metric.WithAttributes(route, AttrStatus.Int(u.Status), out))
	if u.Duration > 0 {
		// Zero: a refusal the app made and did not time.
		o.upgradeTime.Record(background, u.Duration.Seconds(), metric.WithAttributes(route, out))
	}
	// Only the span Handler started, which the router's own request
	// carries when Handler wraps the router.
	span, ok := req.Context().Value(upgradeSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if u.Route != "" {
		span.SetName(req.Method + " " + u.Route)
	}
	span.SetAttributes(route, out)
	if u.Err != nil {
		span.RecordError(u.Err)
	}
	// Over HTTP/2 the connection is served before the router returns:
	// the upgrade span ends here, not when the stream does.
	endUpgrade(span, u.Status)
}

// upgradeSpanKey marks the request context of an upgrade span that
// Handler started.
type upgradeSpanKey struct{}

// endUpgrade ends an upgrade span with the status the client received.
// Ending it again does nothing.
func endUpgrade(span trace.Span, status int) {
	span.SetAttributes(AttrStatus.Int(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// Handler traces WebSocket upgrade requests: for each one it takes the
// trace context from the request's headers (Options.Propagator), starts a
// server span "GET /ws/route" ("CONNECT /ws/route" over HTTP/2) that is
// the parent of whatever the request
// meets on its way, and ends it with the HTTP status once the 101 response
// or the refusal is written (at the latest when next returns). The
// connection's own span (see ConnOpened) links to it. Other requests pass
// through untouched; without a TracerProvider Handler returns next
// itself.
//
// Wrap the router with it, outermost, so that the span covers the
// middleware, the decision and the handshake:
//
//	srv := &http.Server{Handler: obs.Handler(r)}
//
// As router middleware (r.Use(obs.Handler)) the span ends when the route
// has decided, before the handshake, and keeps the bare method as its name,
// "GET" or "CONNECT" (the router
// names the span of the request it received, which is not this one).
func (o *OTel) Handler(next http.Handler) http.Handler {
	if o.tracer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !handshake.IsUpgradeRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		ctx := o.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
		}
		// OpenTelemetry's conventions: the address and the port apart.
		if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			attrs = append(attrs, attribute.String("client.address", host))
			if p, err := strconv.Atoi(port); err == nil {
				attrs = append(attrs, attribute.Int("client.port", p))
			}
		} else if r.RemoteAddr != "" {
			attrs = append(attrs, attribute.String("client.address", r.RemoteAddr))
		}
		ctx, span := o.tracer.Start(ctx, r.Method,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attrs...))
		defer func() {
			if v := recover(); v != nil {
				// The request goes down (net/http recovers it): the span
				// says so, then the panic goes on.
				span.SetStatus(codes.Error, fmt.Sprint("panic: ", v))
				span.End()
				panic(v)
			}
		}()
		ctx = context.WithValue(ctx, upgradeSpanKey{}, span)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		endUpgrade(span, sw.final(r))
	})
}

// statusWriter notes the status of the response it passes on. It unwraps
// for http.ResponseController and hijacks, which the handshake needs.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	// Passed on before it is recorded: net/http panics on a code outside
	// 100–999 and sends nothing.
	w.ResponseWriter.WriteHeader(code)
	if w.status < 200 {
		w.status = code
	}
}

// Write notes 200 when no final status was written: after an interim
// 1xx (103 Early Hints, say), net/http sends 200 before the body.
func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status < 200 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends buffered data to the client.
func (w *statusWriter) Flush() {
	if w.status < 200 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes the connection over, as the handshake does.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return nc, rw, err
}

// Unwrap returns the ResponseWriter it wraps.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// final returns the status the client received for r: 101 after a
// handshake (or a route's decision to upgrade, when used inside the
// router; 200 for one over HTTP/2), 200 when nothing else was written.
func (w *statusWriter) final(r *http.Request) int {
	switch {
	case w.status >= 200:
		return w.status
	case w.hijacked:
		return http.StatusSwitchingProtocols
	case w.Header().Get("Upgrade") == "websocket" && r.ProtoMajor == 1:
		return http.StatusSwitchingProtocols
	}
	return http.StatusOK
}

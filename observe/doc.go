// Package observe reports what colibri's connections do to OpenTelemetry:
// metrics through go.opentelemetry.io/otel/metric, spans through
// go.opentelemetry.io/otel/trace. It is opt-in: colibri's core packages do
// not import it, and a connection without an observer pays one nil check
// per event. docs/observability.md is the long-form guide, with the
// metrics in a table ready for dashboards.
//
// # Setup
//
// An OTel, made by New, takes its providers from Options, never from the
// OpenTelemetry globals; a nil provider turns its signal off.
//
//	obs, err := observe.New(observe.Options{MeterProvider: mp, TracerProvider: tp})
//	r := router.New(router.WithObserver(obs))       // upgrades and connections
//	srv := &http.Server{Handler: obs.Handler(r)}     // upgrade spans
//	hub, err := topics.NewHub(&topics.Options{OnDrop: obs.Dropped})
//	reg, err := obs.WatchHub("chat", hub)            // queue depth
//
// See Example.
//
// # Metrics
//
// Connections open by route, upgrade requests by route, status and outcome
// with their duration, messages and payload bytes by route, direction and
// kind, keep-alive round trips, protocol errors, closes by code and by the
// side that started them, connection lifetimes, and for topics hubs the
// drops by reason and the messages and bytes queued to members. Every
// name, unit and attribute is in docs/observability.md; the attribute keys
// are the Attr constants.
//
// # Tracing
//
// Handler starts a server span for each upgrade request, continuing the
// trace named by the request's traceparent header (W3C Trace Context by
// default, see Options.Propagator). Each accepted connection gets a span
// of its own for its whole life: a new trace, linked to the upgrade span,
// so that a connection that lasts hours does not hold its caller's trace
// open. It ends with the close code, the side that closed and the traffic
// counts, and carries protocol errors as events. With
// Options.PerMessageSpans every message also gets a span, a child of the
// connection's.
//
// # Logs
//
// Logging needs no observer: every connection's logger (wsconn.Conn.Logger)
// carries its route, id, remote address, subprotocol and compression, and
// colibri logs the opening, each protocol violation and the close (code,
// reason, side, duration, messages and bytes each way) at slog.LevelDebug.
package observe

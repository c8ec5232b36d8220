// Package logctx carries an application's logger in a request's context,
// so that the stock middleware and the router log where the application
// does without being handed the logger one by one.
//
// The app package puts its Config.Logger in the base context of every
// request it serves; middleware and ws routes configured without a logger
// of their own read it with From.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns a copy of ctx that carries l. A nil l leaves ctx as it is.
func With(ctx context.Context, l *slog.Logger) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, key{}, l)
}

// Accepted is what a request logger's ResponseWriter implements to learn
// that a router behind it accepted a WebSocket upgrade: the router hijacks
// the connection and writes the 101 past every writer, so nothing else
// tells it. The router calls it on each writer of the chain (through
// Unwrap) once the 101 is out.
type Accepted interface {
	WebSocketAccepted()
}

// From returns the logger ctx carries, or slog.Default() when it carries
// none.
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

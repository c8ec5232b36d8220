package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

func TestFromCarriesTheLogger(t *testing.T) {
	l := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if got := From(With(context.Background(), l)); got != l {
		t.Fatalf("From(With(ctx, l)) = %p, want %p", got, l)
	}
}

func TestFromFallsBackToDefault(t *testing.T) {
	if got := From(context.Background()); got != slog.Default() {
		t.Fatalf("From(empty ctx) = %p, want slog.Default() %p", got, slog.Default())
	}
	if got := From(With(context.Background(), nil)); got != slog.Default() {
		t.Fatalf("From(With(ctx, nil)) = %p, want slog.Default()", got)
	}
}

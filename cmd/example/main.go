// Command example is a runnable colibri server: a multi-room chat with a
// web page, an echo endpoint, token-protected routes, a health check and
// Prometheus metrics at /metrics, built only from colibri's public API.
//
//	go run ./cmd/example            # then open the URL it prints
//	go run ./cmd/example -addr :9000 -token s3cret
//	COLIBRI_ADDR=127.0.0.1:8080 go run ./cmd/example
//	go run ./cmd/example -nats nats://127.0.0.1:4222   # share rooms across instances
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/colibri-ws/colibri/app"
)

func main() {
	err := run(context.Background(), os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h or -help: the usage was printed, as asked.
	case err != nil:
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	addr := fs.String("addr", envOr("COLIBRI_ADDR", "127.0.0.1:8080"), "address to listen on (env COLIBRI_ADDR)")
	token := fs.String("token", envOr("COLIBRI_TOKEN", "demo-token"), "bearer token for /api/stats and /ws/stats (env COLIBRI_TOKEN)")
	natsURL := fs.String("nats", envOr("COLIBRI_NATS", ""), "NATS server URL to share chat rooms across instances (env COLIBRI_NATS)")
	jsonLogs := fs.Bool("json", false, "log as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var handler slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *jsonLogs {
		handler = slog.NewJSONHandler(os.Stderr, nil)
	}
	logger := slog.New(handler)

	srv, err := newServer(options{Token: *token, NATS: *natsURL, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	a := app.New(srv.Router, app.Config{
		Addr:   *addr,
		Logger: logger,
		OnListen: func(a net.Addr) {
			fmt.Printf("colibri example listening: open http://%s/\n", browsable(a))
			fmt.Printf("Prometheus metrics: http://%s/metrics\n", browsable(a))
		},
	})
	return a.Run(ctx)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// browsable turns a listen address into one a browser can open.
func browsable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

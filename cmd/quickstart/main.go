// Command quickstart serves a health check and a WebSocket route that
// answers each message with its sender's name; go run ./cmd/quickstart.
package main

import (
	"context"
	"io"
	"log"
	"net/http"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

func main() {
	r := router.New()
	r.Use(middleware.RequestID, middleware.Log(nil), middleware.Recover(nil)) // nil: the app's logger
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

	router.WS(r, "/ws/chat/{room}",
		func(req *http.Request) (string, router.Decision) { // runs after middleware, before any socket exists
			name := req.URL.Query().Get("username")
			if name == "" {
				return "", router.Reject(http.StatusBadRequest, nil, "username required")
			}
			return name, router.Upgrade(nil)
		},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
			for m := range in.Messages(64 << 10) { // over the limit: close 1009, loop ends
				if err := out.WriteText(ctx, s.Value+": "+m.Text()); err != nil {
					return err
				}
			}
			return in.Err() // nil when the peer closed cleanly (colibri has answered its CLOSE)
		})

	a := app.New(r, app.Config{Addr: ":8080"})
	// Run returns on SIGINT or SIGTERM, after 1001 to every socket: nil
	// when the shutdown was clean.
	if err := a.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

package app_test

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

// The README's quickstart, kept here so that it always compiles. (It has no
// Output: it would serve until stopped.)
func Example_quickstart() {
	r := router.New()
	r.Use(middleware.RequestID, middleware.Recover(nil), middleware.Log(nil))
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

	router.WS(r, "/ws/chat/{room}",
		func(req *http.Request) (string, router.Decision) { // runs after middleware, before any socket exists
			name := req.URL.Query().Get("username")
			if name == "" {
				return "", router.Reject(http.StatusBadRequest, "username required")
			}
			return name, router.Upgrade(nil)
		},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
			for m := range in.Messages(64 << 10) { // over the limit: close 1009, loop ends
				if err := out.WriteText(ctx, s.Value+": "+m.Text()); err != nil {
					return err
				}
			}
			return in.Err() // nil when the peer closed cleanly; returning closes with 1000
		})

	log.Fatal(app.New(r, app.Config{Addr: ":8080"}).Run(context.Background())) // SIGTERM: 1001 to every socket
}

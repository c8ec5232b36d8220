package app_test

import (
	"context"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
)

// Serving a page and its WebSockets on one HTTP/2 connection per browser:
// TLS, Config.HTTP2, and a process started with GODEBUG=http2xconnect=1,
// which makes Go's HTTP/2 server offer extended CONNECT (without it, Run
// logs that browsers will open their WebSockets over HTTP/1.1). The ws
// routes and handlers are the ones HTTP/1.1 uses.
func ExampleConfig_http2() {
	r := router.New()
	// ... r.HandleFunc and router.WS as for HTTP/1.1 ...
	a := app.New(r, app.Config{
		Addr:     ":8443",
		CertFile: "cert.pem",
		KeyFile:  "key.pem",
		HTTP2:    true,
	})
	_ = a.Run(context.Background())
}

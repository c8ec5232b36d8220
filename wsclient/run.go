package wsclient

import (
	"context"
	"net/http"

	"github.com/colibri-ws/colibri/wsconn"
)

// Run dials rawURL as Dial does and serves handler on the connection with
// opts.Config, as wsconn.Serve does on the server side: the handler gets
// the inbound iterators, the outbound writer and a context inside the
// connection's task group, and returning from it performs the closing
// handshake (nil closes with 1000, a *wsconn.CloseError with its code, any
// other error with 1011). The session's Value is the server's 101
// response, with its headers and cookies.
//
// ctx bounds the handshake and the whole connection: when it is cancelled
// the handler's context is cancelled too. Run returns the dial error, or
// else what wsconn.Serve returns once the connection is closed: the
// handler's error or the reason the connection failed. To hand the handler
// a value of your own, call Dial and wsconn.Serve.
func Run(ctx context.Context, rawURL string, handler wsconn.Handler[*http.Response], opts *Options) error {
	u, resp, err := Dial(ctx, rawURL, opts)
	if err != nil {
		return err
	}
	var cfg *wsconn.Config
	if opts != nil {
		cfg = opts.Config
	}
	return wsconn.Serve(ctx, u, resp, handler, cfg)
}

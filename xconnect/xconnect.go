// Package xconnect turns on HTTP/2 extended CONNECT (RFC 8441) in net/http
// when imported for its side effect, so that browsers can open WebSockets
// over the HTTP/2 connection that already carries the page:
//
//	import _ "github.com/colibri-ws/colibri/xconnect"
//
// # Why a package
//
// Go 1.26's HTTP/2 server can take WebSockets over its streams, but only
// advertises SETTINGS_ENABLE_CONNECT_PROTOCOL when the GODEBUG environment
// variable holds http2xconnect=1, and it reads the variable once, while
// net/http initializes, before main runs. There is no http.Server or
// HTTP2Config field for it, and `//go:debug http2xconnect=1` does not
// build: the setting is not in the toolchain's GODEBUG table.
//
// Starting the process with GODEBUG=http2xconnect=1 always works. This
// package is the in-code alternative: its init adds http2xconnect=1 to
// GODEBUG before net/http initializes. That order is guaranteed by the Go
// specification (since Go 1.21, packages are initialized in import-path
// order as soon as their imports are): this package imports only os and
// strings, which net/http imports too, and "github.com/..." sorts before
// "net/http" (and "golang.org/x/net/http2", which reads the same variable).
//
// An explicit http2xconnect setting already in GODEBUG, such as
// http2xconnect=0, is left alone. The change is process-wide and is
// inherited by child processes.
//
// # Trade-off
//
// With extended CONNECT offered, a browser that already has an HTTP/2
// connection to the server opens its WebSockets as streams on it, on every
// route of every server in the process. colibri's router serves those; a
// WebSocket library that needs to hijack an HTTP/1.1 connection (gorilla,
// gobwas, coder) cannot, and its endpoints stop working for browsers on
// HTTP/2. That is why Go leaves the switch off by default (go.dev/issue/71128).
//
// Deprecated: xconnect rewrites the process's GODEBUG on the strength of a
// net/http detail Go does not document, and is being removed. Start the
// process with GODEBUG=http2xconnect=1 instead (docs/http2.md).
package xconnect

import (
	"os"
	"strings"
)

// Setting is the GODEBUG setting this package adds.
const Setting = "http2xconnect=1"

func init() {
	v := os.Getenv("GODEBUG")
	if strings.Contains(v, "http2xconnect=") {
		return // the operator decided
	}
	if v != "" {
		v += ","
	}
	_ = os.Setenv("GODEBUG", v+Setting)
}

// Package xconnect switches on HTTP/2 extended CONNECT (RFC 8441) in
// net/http for colibri's own test binaries, which import it for its side
// effect so that their HTTP/2 WebSocket tests need no environment:
//
//	import _ "github.com/colibri-ws/colibri/internal/xconnect"
//
// It is not for programs. Go 1.26 offers extended CONNECT only when GODEBUG
// holds http2xconnect=1 while net/http initializes, and has no API for it;
// this package's init adds the setting to the process's GODEBUG before
// that, relying on package initialization order and on net/http reading
// the variable at init, a detail net/http does not document. An
// application starts its process with GODEBUG=http2xconnect=1 instead
// (docs/http2.md), which is what app.Config.HTTP2 tells the operator.
//
// TestServerOffersExtendedConnect fails when a Go release changes that
// detail; the HTTP/2 WebSocket tests that rely on the import fail with it.
//
// An explicit http2xconnect setting already in GODEBUG, such as
// http2xconnect=0, is left alone.
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
		return // the one running the tests decided
	}
	if v != "" {
		v += ","
	}
	_ = os.Setenv("GODEBUG", v+Setting)
}

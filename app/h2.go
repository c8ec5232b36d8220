package app

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
)

// extendedConnect says whether net/http's HTTP/2 server offers extended
// CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3). Go 1.26 decides
// once, while net/http initializes, from GODEBUG containing
// "http2xconnect=1"; this package initializes after net/http, so the same
// test on the same variable gives the same answer.
var extendedConnect = strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1")

// enableHint tells the operator how to turn extended CONNECT on.
const enableHint = `start the process with GODEBUG=http2xconnect=1 (added to any GODEBUG it has, after a comma)`

// tlsConfigured reports whether Serve wraps its listener in TLS.
func (a *App) tlsConfigured() bool {
	return a.cfg.TLSConfig != nil || a.cfg.CertFile != "" || a.cfg.KeyFile != ""
}

// offerHTTP2 returns the TLS configuration to listen with: with
// Config.HTTP2, a copy whose ALPN list offers "h2" first (the server's
// order decides) and keeps "http/1.1" for the clients that want it;
// without, a copy without "h2", which a configuration made for another
// server (autocert's, say) may list, so that HTTP/2 is on only when asked
// for. The configurations GetConfigForClient returns get the same
// treatment.
func (a *App) offerHTTP2(c *tls.Config) *tls.Config {
	want := a.alpn(c.NextProtos)
	get := c.GetConfigForClient
	if slices.Equal(want, c.NextProtos) && get == nil {
		return c
	}
	c = c.Clone()
	c.NextProtos = want
	if get != nil {
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := get(hello)
			if cc == nil || err != nil || slices.Equal(a.alpn(cc.NextProtos), cc.NextProtos) {
				return cc, err
			}
			cc = cc.Clone()
			cc.NextProtos = a.alpn(cc.NextProtos)
			return cc, nil
		}
	}
	return c
}

// alpn returns protos as Config.HTTP2 wants them: "h2" first and
// "http/1.1" kept, or no "h2".
func (a *App) alpn(protos []string) []string {
	others := slices.DeleteFunc(slices.Clone(protos), func(p string) bool { return p == "h2" })
	if !a.cfg.HTTP2 {
		return others
	}
	if !slices.Contains(others, "http/1.1") {
		others = append(others, "http/1.1")
	}
	return append([]string{"h2"}, others...)
}

// h2StreamWindow is the receive window of an HTTP/2 stream, a quarter of
// the connection's default (1 MiB).
const h2StreamWindow = 256 << 10

// configureHTTP2 turns HTTP/2 on in srv when Config.HTTP2 asks for it, and
// says what browsers will get: WebSockets on the HTTP/2 connection, or on
// HTTP/1.1 connections of their own.
func (a *App) configureHTTP2(srv *http.Server) {
	if !a.cfg.HTTP2 {
		return
	}
	if !a.tlsConfigured() {
		a.log.Warn("HTTP2 needs TLS (browsers speak HTTP/2 over TLS only); serving HTTP/1.1")
		return
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv.Protocols = &p
	// net/http gives the connection's receive window back only as
	// handlers read, and a WebSocket whose handler does not read holds
	// what its stream received: with a stream window as large as the
	// connection's (1 MiB each by default), one such socket would stall
	// the uploads of every other on the connection.
	srv.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: h2StreamWindow}
	if extendedConnect {
		a.log.Info("HTTP/2 on, with WebSockets over HTTP/2 (RFC 8441)")
		return
	}
	a.log.Warn("HTTP/2 on, but net/http does not offer extended CONNECT: browsers open their WebSockets on HTTP/1.1 connections of their own",
		slog.String("to enable", enableHint))
}

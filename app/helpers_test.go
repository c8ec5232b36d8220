package app_test

// Helpers shared by the test files of package app_test.

import (
	"net"
	"net/http"
)

// serveHTTP serves h on ln with a plain http.Server and returns its base
// URL and a stop function that closes the server and waits for Serve.
func serveHTTP(h http.Handler, ln net.Listener) (base string, stop func()) {
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), func() {
		_ = srv.Close()
		<-served
		http.DefaultClient.CloseIdleConnections()
	}
}

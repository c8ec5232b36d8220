package app_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/h2test"
)

// TestDocsAuditHTTP2StreamWindow: docs/http2.md (Trade-offs) says that
// with Config.HTTP2 the app sets the stream window to 256 KiB, a quarter
// of the connection's. The server's first SETTINGS frame announces it.
func TestDocsAuditHTTP2StreamWindow(t *testing.T) {
	cert, pool := h2test.Certificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(newRouter(), app.Config{Logger: quiet, NoSignals: true, HTTP2: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	serveApp(t, a, ln)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want the server's SETTINGS", f.Header())
	}
	if v, ok := sf.Value(http2.SettingInitialWindowSize); !ok || v != 256<<10 {
		t.Fatalf("SETTINGS_INITIAL_WINDOW_SIZE %d (sent %v), want %d", v, ok, 256<<10)
	}
}

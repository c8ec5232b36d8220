package router_test

// Review: what goes on the WebSocket's stream besides DATA. RFC 9113
// §8.5: once a CONNECT stream is established, "frame types other than
// DATA or stream management frames (RST_STREAM, WINDOW_UPDATE, and
// PRIORITY) MUST NOT be sent on a connected stream and MUST be treated
// as a stream error if received"; RFC 8441 §5 keeps that for extended
// CONNECT.

import (
	"net/http"
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/colibri-ws/colibri/router"
)

// A middleware that declares a trailer (Server-Timing, as timing
// middleware does) and fills it in after the handler returns: the 200
// carries "trailer: Server-Timing", and when the WebSocket ends net/http
// sends a trailing HEADERS frame on the connected stream, which a
// conforming client must treat as a stream error. acceptStream strips
// connection-specific fields from the 200 but not Trailer, nor does the
// router keep trailers off the stream.
func TestH2NoHeadersFrameAfterTheConnectedStreamOpens(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Trailer", "Server-Timing")
			next.ServeHTTP(w, req)
			w.Header().Set("Server-Timing", "total;dur=1")
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	fields := c.connectFields(1, "/ws")
	for _, f := range fields {
		if f.Name == "trailer" {
			t.Errorf("the 200 that opens the WebSocket declares a trailer: %q", f.Value)
		}
	}
	c.send(1, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")), false)
	// Read the stream to its end, looking at every frame on it.
	var extra []hpack.HeaderField
	for ended := false; !ended; {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the connection: %v", err)
		}
		if f.Header().StreamID != 1 {
			continue
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			hf, err := c.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			extra = append(extra, hf...)
			ended = f.StreamEnded()
		case *http2.DataFrame:
			ended = f.StreamEnded()
			if n := uint32(f.Length); n > 0 {
				_ = c.fr.WriteWindowUpdate(0, n)
			}
		case *http2.RSTStreamFrame:
			ended = true
		}
	}
	if len(extra) > 0 {
		t.Fatalf("a HEADERS frame on the connected stream after the 200: %v", extra)
	}
}

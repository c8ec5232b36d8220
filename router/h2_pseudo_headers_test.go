package router_test

// Review of the extended CONNECT request checks (RFC 8441 §4, RFC 9113
// §8.3.1, §8.2.2) with raw HTTP/2 frames, where a header block can be
// malformed in ways that golang.org/x/net/http2's Transport never sends.

import (
	"context"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvH2Request sends a HEADERS frame with exactly fields on stream id and
// returns the stream's fate: the response's :status, or the RST_STREAM's
// error code.
func rvH2Request(t *testing.T, c *h2pRaw, id uint32, endStream bool, fields ...[2]string) (string, http2.ErrCode) {
	t.Helper()
	c.hb.Reset()
	for _, f := range fields {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndHeaders: true, EndStream: endStream}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "", f.ErrCode
			}
		case *http2.HeadersFrame:
			fields, err := c.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			if f.StreamID != id {
				continue
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					return hf.Value, 0
				}
			}
			t.Fatal("response HEADERS without :status")
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// rvH2Router is a router with an echoing ws route on /ws that counts how
// often its handler runs.
func rvH2Router(ran *atomic.Int32) *router.Router {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran.Add(1)
		return echo(ctx, in, out, s)
	})
	return r
}

// RFC 6455 §4.2.1 item 2 needs a Host, and over HTTP/1.1 colibri refuses
// a handshake without one (400 "needs a Host header"). RFC 8441 §5 maps
// Host to :authority; an extended CONNECT with neither :authority nor
// Host gets r.Host == "" from net/http, and checkExtendedConnect lets it
// through: the WebSocket opens with no authority at all.
func TestH2ConnectWithoutAuthorityIsRefused(t *testing.T) {
	var ran atomic.Int32
	h := h2pServe(t, rvH2Router(&ran), nil)
	c := h2pDialRaw(t, h.addr, h.pool)
	status, rst := rvH2Request(t, c, 1, false,
		[2]string{":method", "CONNECT"}, [2]string{":protocol", "websocket"},
		[2]string{":scheme", "https"}, [2]string{":path", "/ws"},
		[2]string{"sec-websocket-version", "13"})
	if status == "200" {
		t.Fatalf("extended CONNECT without :authority answered 200 (RST %v), want 400 as over HTTP/1.1", rst)
	}
}

// http2.md ("How does the request look?": no Upgrade, Connection) and
// RFC 9113 §8.2.2: a request carrying a connection-specific field is
// malformed. net/http answers such a stream 400 before the router runs
// (or resets it), the handler never runs, and the connection goes on
// carrying sockets.
func TestH2ConnectionSpecificFieldsResetTheStream(t *testing.T) {
	var ran atomic.Int32
	h := h2pServe(t, rvH2Router(&ran), nil)
	c := h2pDialRaw(t, h.addr, h.pool)
	id := uint32(1)
	for _, extra := range [][2]string{
		{"upgrade", "websocket"},
		{"connection", "upgrade"},
		{"keep-alive", "timeout=5"},
		{"transfer-encoding", "chunked"},
		{"te", "gzip"},
	} {
		status, rst := rvH2Request(t, c, id, false,
			[2]string{":method", "CONNECT"}, [2]string{":protocol", "websocket"},
			[2]string{":scheme", "https"}, [2]string{":path", "/ws"},
			[2]string{":authority", h.addr}, [2]string{"sec-websocket-version", "13"}, extra)
		if status != "400" && (status != "" || rst != http2.ErrCodeProtocol) {
			t.Errorf("extended CONNECT with %s: status %q RST %v, want 400 or RST_STREAM PROTOCOL_ERROR", extra[0], status, rst)
		}
		id += 2
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
	if status, rst := c.connect(t, id, h.addr, "/ws"); status != "200" {
		t.Fatalf("a good CONNECT afterwards: status %q RST %v", status, rst)
	}
}

// RFC 8441 §4 requires :path; an empty one is malformed. Likewise a
// :protocol on a request that is not a CONNECT. Neither reaches the
// handler.
func TestH2MalformedPseudoHeadersNeverOpenASocket(t *testing.T) {
	var ran atomic.Int32
	h := h2pServe(t, rvH2Router(&ran), nil)
	c := h2pDialRaw(t, h.addr, h.pool)
	cases := []struct {
		name   string
		fields [][2]string
	}{
		{"no :path", [][2]string{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"}, {":authority", h.addr}, {"sec-websocket-version", "13"}}},
		{"GET with :protocol", [][2]string{{":method", "GET"}, {":protocol", "websocket"}, {":scheme", "https"}, {":path", "/ws"}, {":authority", h.addr}, {"sec-websocket-version", "13"}}},
	}
	id := uint32(1)
	for _, tc := range cases {
		status, rst := rvH2Request(t, c, id, false, tc.fields...)
		if status == "200" || (status == "" && rst != http2.ErrCodeProtocol) {
			t.Errorf("%s: status %q RST %v, want a 4xx or RST_STREAM PROTOCOL_ERROR", tc.name, status, rst)
		}
		id += 2
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
	if status, rst := c.connect(t, id, h.addr, "/ws"); status != "200" {
		t.Fatalf("a good CONNECT afterwards: status %q RST %v", status, rst)
	}
}

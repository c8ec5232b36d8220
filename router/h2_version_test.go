package router_test

// Review of 831d2ff's version refusals over HTTP/2: raw frames, since
// h2test's client always sends Sec-WebSocket-Version: 13.

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// r4H2Refusal sends an extended CONNECT for /ws with extra fields on
// stream id and returns the response's :status and body.
func r4H2Refusal(t *testing.T, c *h2pRaw, id uint32, authority string, extra ...[2]string) (string, string) {
	t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(3 * time.Second))
	c.hb.Reset()
	for _, f := range append([][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
		{":path", "/ws"}, {":authority", authority},
	}, extra...) {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	var status string
	var body strings.Builder
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
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
					status = hf.Value
				}
			}
			if f.StreamEnded() {
				return status, body.String()
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			body.Write(f.Data())
			if f.StreamEnded() {
				return status, body.String()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				t.Fatalf("stream %d reset: %v", id, f.ErrCode)
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// The commit gives a missing Sec-WebSocket-Version and repeated lines of
// it bodies of their own over HTTP/1.1 (CheckRequest), "rather than
// 'unsupported \"13, 13\"'". The same refusals of an extended CONNECT
// (checkExtendedConnect, handshake/h2.go) still say
// `unsupported Sec-WebSocket-Version ""` and
// `unsupported Sec-WebSocket-Version "13, 13": this server speaks version 13`.
func TestCornerH2VersionRefusalBodiesSayWhatIsWrong(t *testing.T) {
	var ran atomic.Int32
	h := h2pServe(t, rvH2Router(&ran), nil)
	c := h2pDialRaw(t, h.addr, h.pool)

	status, missing := r4H2Refusal(t, c, 1, h.addr)
	if status != "426" || strings.Contains(missing, `""`) {
		t.Errorf("no version: %s %q, want 426 and a body saying the header is missing", status, missing)
	}
	status, twice := r4H2Refusal(t, c, 3, h.addr, [2]string{"sec-websocket-version", "13"}, [2]string{"sec-websocket-version", "13"})
	if status != "426" || strings.Contains(twice, "unsupported") {
		t.Errorf("two version fields: %s %q, want 426 and a body saying there must be exactly one", status, twice)
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

package wsconn_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/wsconn"
)

// TestDeflateQuotedEmptyValueDeclined: an offer whose parameter
// carries a value that is an empty quoted string has a bad value: RFC
// 7692 §7.1.1 says server_no_context_takeover and
// client_no_context_takeover take no value, and §7.1.2.2 that a value of
// client_max_window_bits is an integer from 8 to 15 (RFC 6455 §9.1: a
// quoted value, unescaped, must be a token, which "" is not).
// docs/compression.md: "An offer with ... a bad value is declined." The
// control case shows the same offer without the bad parameter is taken.
func TestDeflateQuotedEmptyValueDeclined(t *testing.T) {
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{}), h: cmpDrainHandler})
	t.Run("control", func(t *testing.T) {
		c := cmpHandshake(t, url+"/", "permessage-deflate; client_max_window_bits")
		if c.resp.StatusCode != http.StatusSwitchingProtocols || c.answer() == "" {
			t.Fatalf("status %d, answer %q: the valid offer was not taken", c.resp.StatusCode, c.answer())
		}
	})
	for _, offer := range []string{
		`permessage-deflate; client_max_window_bits=""`,
		`permessage-deflate; client_no_context_takeover=""`,
		`permessage-deflate; server_no_context_takeover=""`,
	} {
		t.Run(offer, func(t *testing.T) {
			c := cmpHandshake(t, url+"/", offer)
			if c.resp.StatusCode == http.StatusSwitchingProtocols && c.answer() != "" {
				t.Fatalf("offer %s accepted with %q; want it declined (or the header refused)", offer, c.answer())
			}
		})
	}
}

func cmpDrainHandler(_ context.Context, in *wsconn.Inbound, _ *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	return cmpDrain(in)
}

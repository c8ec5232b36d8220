package middleware_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/middleware"
)

// bearer.go, BearerOptions.QueryParam: "To keep the token out of this
// server's own logs, the parameter is removed from the URL that later
// handlers see". When the request also has an Authorization header, the
// header's token is the one checked, but the query's token must still not
// reach later handlers (and whatever they log).
func TestBearerCornerQueryTokenRemovedWhenHeaderWins(t *testing.T) {
	h := middleware.BearerWith(verifyGood, middleware.BearerOptions{QueryParam: "access_token"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.URL.String()))
		}))
	base := serve(t, h)
	resp, body := get(t, base+"/feed?x=1&access_token=other-users-token", http.Header{"Authorization": {"Bearer good-token"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 from the header's token", resp.StatusCode)
	}
	if strings.Contains(body, "other-users-token") {
		t.Errorf("a later handler sees the query token in r.URL = %q", body)
	}
}

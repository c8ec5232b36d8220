package middleware_test

import (
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

// bearer.go BearerOptions.QueryParam (737403c): the parameter is removed
// from the URL later handlers see "whichever token was checked"; here the
// Authorization header's token is the one checked, on a real upgrade. The
// ws decision sees every other pair as the client wrote it, byte for byte
// (escapes, '+', an empty value, a repeated name, the parameter written
// twice and once encoded), and r.RequestURI untouched.
func TestCornerBearerHeaderWinsQueryStrippedByteForByteOnUpgrade(t *testing.T) {
	r := newRouter()
	r.With(middleware.BearerWith(verifyGood, middleware.BearerOptions{QueryParam: "access_token"})).Group(func(r *router.Router) {
		router.WS(r, "/ws/q", func(req *http.Request) (string, router.Decision) {
			return req.URL.RawQuery + " | " + req.RequestURI, router.Upgrade(nil)
		}, who)
	})
	base := serve(t, r)

	const q = "a=%2F%41&access_token=x1&b=c+d&e=&access%5Ftoken=x2&a=2&Access_Token=keep"
	msg, _, done := accepted(t, wsURL(base, "/ws/q?"+q), http.Header{"Authorization": {"Bearer good-token"}})
	done()
	if want := `user="alice" ok=true id= value=a=%2F%41&b=c+d&e=&a=2&Access_Token=keep | /ws/q?` + q; msg != want {
		t.Errorf("the route saw\n %s\nwant\n %s", msg, want)
	}
}

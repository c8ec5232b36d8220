package middleware_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/middleware"
)

// recover.go: "when nothing has been written yet, a 500". A handler that
// calls WriteHeader with a code net/http refuses (0 from an unset field,
// or 1000) panics inside net/http before a byte is sent. Recover must
// still answer 500, and Log in front of it must not log the invalid
// code as what the client received.
func TestRecoverCornerInvalidStatusCodeGets500(t *testing.T) {
	logger, logs := newSink()
	h := middleware.Log(logger)(middleware.Recover(quietLogger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := 0
		if r.URL.Path == "/big" {
			code = 1000
		}
		w.WriteHeader(code)
	})))
	base := serve(t, h)
	addr := strings.TrimPrefix(base, "http://")
	for _, path := range []string{"/zero", "/big"} {
		resp, _, err := rawExchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if err != nil || resp == nil {
			t.Errorf("%s: no response (%v), want 500: nothing was written before the panic", path, err)
		} else if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500", path, resp.StatusCode)
		}
		line := logs.next(t, map[string]any{"msg": "request", "path": path})
		wantAttrs(t, line, map[string]any{"status": int64(http.StatusInternalServerError)})
	}
}

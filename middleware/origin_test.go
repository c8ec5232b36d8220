package middleware

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/handshake"
)

func originRequest(host, origin string) *http.Request {
	r := upgradeRequest("/ws")
	r.Host = host
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func TestOrigins(t *testing.T) {
	h := Origins("*.example.com", "localhost:*", "partner.test", "secure.test:443", `\[::1\]:*`)(ok)
	for _, tc := range []struct {
		name, host, origin string
		allowed            bool
	}{
		{"no Origin", "api.test", "", true},

		{"same host", "api.test", "https://api.test", true},
		{"same host and port", "api.test:8080", "http://api.test:8080", true},
		{"same host, case", "API.test", "https://api.TEST", true},
		{"same host, default https port", "api.test:443", "https://api.test", true},
		{"same host, default http port", "api.test:80", "http://api.test", true},
		{"same host, IPv6 default port", "[2001:db8::1]:443", "https://[2001:db8::1]", true},
		{"same name, other port", "api.test:8080", "http://api.test:9090", false},
		{"same name, port not default for scheme", "api.test:443", "http://api.test", false},

		{"subdomain", "api.test", "https://app.example.com", true},
		{"subdomain, http", "api.test", "http://app.example.com", true},
		{"subdomain, case", "api.test", "https://App.Example.COM", true},
		{"apex is not a subdomain", "api.test", "https://example.com", false},
		{"subdomain with port", "api.test", "https://app.example.com:8443", false},
		{"look-alike", "api.test", "https://example.com.evil.test", false},
		{"localhost any port", "api.test", "http://localhost:3000", true},
		{"localhost, default port left out", "api.test", "http://localhost", true},
		{"localhost, default port given", "api.test", "https://localhost:443", true},
		{"pattern with a default port", "api.test", "https://secure.test", true},
		{"pattern with a default port, other scheme", "api.test", "http://secure.test", false},
		{"exact host, default port given", "api.test", "https://partner.test:443", true},
		{"exact host", "api.test", "https://partner.test", true},
		{"exact host, other port", "api.test", "https://partner.test:8080", false},
		{"escaped IPv6 pattern", "api.test", "http://[::1]:5173", true},
		{"unlisted", "api.test", "https://evil.test", false},

		{"null", "api.test", "null", false},
		{"no scheme", "api.test", "partner.test", false},
		{"other scheme", "api.test", "chrome-extension://partner.test", false},
		{"path", "api.test", "https://partner.test/", false},
		{"query", "api.test", "https://partner.test?", false},
		{"user info", "api.test", "https://u@partner.test", false},
		{"fragment", "api.test", "https://partner.test#x", false},
		{"no host", "api.test", "https://", false},
		{"list", "api.test", "https://partner.test https://evil.test", false},
		{"bad escape", "api.test", "https://%zz", false},
	} {
		w := serve(h, originRequest(tc.host, tc.origin))
		if tc.allowed && w.Code != http.StatusOK {
			t.Errorf("%s: Origin %q, Host %q: got %d %q, want it let through", tc.name, tc.origin, tc.host, w.Code, w.Body)
		}
		if !tc.allowed && w.Code != http.StatusForbidden {
			t.Errorf("%s: Origin %q, Host %q: got %d, want 403", tc.name, tc.origin, tc.host, w.Code)
		}
	}
}

// The refusal is the one a ws route answers with: handshake.CheckOrigin's.
func TestOriginsRefusalIsTheWSRoutesOne(t *testing.T) {
	r := originRequest("api.test", "https://evil.test")
	w := serve(Origins("app.example.com")(ok), r)
	want := handshake.CheckOrigin(r, []string{"app.example.com"})
	if want == nil {
		t.Fatal("handshake.CheckOrigin let https://evil.test through")
	}
	if w.Code != http.StatusForbidden || w.Body.String() != want.Message+"\n" ||
		!strings.Contains(w.Body.String(), `"https://evil.test"`) ||
		w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("got %d %q %v, want 403 %q naming the origin", w.Code, w.Body, w.Header(), want.Message)
	}
}

func TestOriginsAppliesToPlainRequests(t *testing.T) {
	h := Origins()(ok)
	r := httptest.NewRequest(http.MethodPost, "/form", nil)
	r.Header.Set("Origin", "https://evil.test")
	if w := serve(h, r); w.Code != http.StatusForbidden {
		t.Errorf("cross-origin POST: status %d, want 403", w.Code)
	}
}

func TestOriginsWildcard(t *testing.T) {
	h := Origins("*")(ok)
	if w := serve(h, originRequest("api.test", "https://anything.test:1234")); w.Code != http.StatusOK {
		t.Errorf("pattern *: status %d, want 200", w.Code)
	}
	if w := serve(h, originRequest("api.test", "null")); w.Code != http.StatusForbidden {
		t.Errorf("pattern * with Origin null: status %d, want 403", w.Code)
	}
}

func TestOriginsPanicsOnBadPattern(t *testing.T) {
	for _, p := range []string{"[", "https://app.example.com", "app.example.com/", `a\`} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Origins(%q) did not panic", p)
				}
			}()
			Origins(p)
		}()
	}
}

func TestOriginsNoPatternsSameHostOnly(t *testing.T) {
	h := Origins()(ok)
	if w := serve(h, originRequest("chat.test", "https://chat.test")); w.Code != http.StatusOK {
		t.Errorf("same host: status %d, want 200", w.Code)
	}
	if w := serve(h, originRequest("chat.test", "https://a.chat.test")); w.Code != http.StatusForbidden {
		t.Errorf("subdomain: status %d, want 403", w.Code)
	}
}

func TestOriginsDeepSubdomain(t *testing.T) {
	h := Origins("*.example.com")(ok)
	if w := serve(h, originRequest("api.test", "https://a.b.example.com")); w.Code != http.StatusOK {
		t.Errorf("status %d, want 200", w.Code)
	}
}

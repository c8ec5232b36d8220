package middleware

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var errBadToken = errors.New("bad token")

// verifyToken accepts "good-token" as alice and rejects anything else.
func verifyToken(_ context.Context, token string) (string, error) {
	if token == "good-token" {
		return "alice", nil
	}
	return "", errBadToken
}

func rejectAll(context.Context, string) (string, error) { return "", errBadToken }

func bearerRequest(target, authorization string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return r
}

func TestBearerAccepts(t *testing.T) {
	h := Bearer(verifyToken)(whoami)
	for _, auth := range []string{"Bearer good-token", "bearer good-token", "BEARER   good-token"} {
		w := serve(h, bearerRequest("/", auth))
		if w.Code != http.StatusOK || w.Body.String() != "alice" {
			t.Errorf("%q: got %d %q, want 200 alice", auth, w.Code, w.Body)
		}
	}
}

func TestBearerMissingToken(t *testing.T) {
	h := Bearer(verifyToken)(whoami)
	for _, auth := range []string{"", "Basic YWxpY2U6d29uZGVy", "Bearer", "Bearer    "} {
		w := serve(h, bearerRequest("/", auth))
		if w.Code != http.StatusUnauthorized || w.Body.String() != "unauthorized\n" {
			t.Errorf("%q: got %d %q, want 401 unauthorized", auth, w.Code, w.Body)
		}
		if got := w.Header().Get("WWW-Authenticate"); got != "Bearer" {
			t.Errorf("%q: WWW-Authenticate %q, want Bearer", auth, got)
		}
	}
}

func TestBearerRejectedToken(t *testing.T) {
	w := serve(Bearer(verifyToken)(whoami), bearerRequest("/", "Bearer forged-token"))
	if w.Code != http.StatusUnauthorized || w.Body.String() != "invalid token\n" {
		t.Errorf("got %d %q, want 401 invalid token", w.Code, w.Body)
	}
	if got, want := w.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token"`; got != want {
		t.Errorf("WWW-Authenticate %q, want %q", got, want)
	}
}

func TestBearerQueryOffByDefault(t *testing.T) {
	w := serve(Bearer(verifyToken)(whoami), bearerRequest("/ws?access_token=good-token", ""))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("status %d, want 401: query tokens need BearerOptions.QueryParam", w.Code)
	}
}

func TestBearerQueryParam(t *testing.T) {
	var seenQuery string
	var seenUser string
	h := BearerWith(verifyToken, BearerOptions{QueryParam: "access_token"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seenQuery = r.URL.RawQuery
			seenUser, _ = UserFrom(r.Context())
		}))
	for _, tc := range []struct{ target, rest string }{
		{"/ws?access_token=good-token", ""},
		{"/ws?room=b&access_token=good-token&a=1", "room=b&a=1"},
		{"/ws?access%5Ftoken=good-token&z=%20", "z=%20"},
	} {
		seenQuery, seenUser = "unset", ""
		w := serve(h, bearerRequest(tc.target, ""))
		if w.Code != http.StatusOK || seenUser != "alice" {
			t.Errorf("%s: status %d, user %q; want 200 alice", tc.target, w.Code, seenUser)
		}
		if seenQuery != tc.rest {
			t.Errorf("%s: next handler saw query %q, want %q", tc.target, seenQuery, tc.rest)
		}
	}
}

func TestBearerQueryRejected(t *testing.T) {
	h := BearerWith(verifyToken, BearerOptions{QueryParam: "access_token"})(whoami)
	w := serve(h, bearerRequest("/ws?access_token=forged-token", ""))
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("got %d %v, want 401 invalid_token", w.Code, w.Header())
	}
	if strings.Contains(w.Body.String(), "forged") {
		t.Errorf("body %q repeats the token", w.Body)
	}
}

func TestBearerHeaderWinsOverQuery(t *testing.T) {
	h := BearerWith(verifyToken, BearerOptions{QueryParam: "access_token"})(whoami)
	w := serve(h, bearerRequest("/ws?access_token=good-token", "Bearer forged-token"))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("status %d, want 401 from the header's token", w.Code)
	}
}

func TestBearerPassesTokenAndContext(t *testing.T) {
	var gotToken string
	var gotProbe any
	verify := func(ctx context.Context, token string) (string, error) {
		gotToken, gotProbe = token, ctx.Value(ctxProbe{})
		return "bob", nil
	}
	r := bearerRequest("/", "Bearer abc.DEF-_~+/=")
	r = r.WithContext(context.WithValue(r.Context(), ctxProbe{}, "here"))
	w := serve(Bearer(verify)(whoami), r)
	if gotToken != "abc.DEF-_~+/=" || gotProbe != "here" || w.Body.String() != "bob" {
		t.Errorf("verify saw %q probe %v; handler saw user %q", gotToken, gotProbe, w.Body)
	}
}

func TestRemoveQueryParam(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"", ""},
		{"t=1", ""},
		{"t=1&t=2", ""},
		{"a=1&t=1&b=2", "a=1&b=2"},
		{"b=2&a=1", "b=2&a=1"},
		{"tt=1&t", "tt=1"},
		{"%zz=1&t=2", "%zz=1"},
	} {
		if got := removeQueryParam(tc.in, "t"); got != tc.out {
			t.Errorf("removeQueryParam(%q) = %q, want %q", tc.in, got, tc.out)
		}
	}
}

func TestAuthPanicsOnNilVerify(t *testing.T) {
	for name, build := range map[string]func(){
		"BasicAuth": func() { BasicAuth("x", nil) },
		"Bearer":    func() { Bearer(nil) },
		"BearerWith": func() {
			BearerWith(nil, BearerOptions{QueryParam: "access_token"})
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a nil verify did not panic", name)
				}
			}()
			build()
		}()
	}
}

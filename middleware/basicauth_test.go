package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// whoami answers with the user in the request context.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	user, ok := UserFrom(r.Context())
	if !ok {
		http.Error(w, "no user in context", http.StatusTeapot)
		return
	}
	_, _ = w.Write([]byte(user))
})

func basicRequest(user, password string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, password)
	return r
}

func TestBasicAuthAccepts(t *testing.T) {
	h := BasicAuth("colibri", BasicAuthUsers(map[string]string{"alice": "wonder"}))(whoami)
	w := serve(h, basicRequest("alice", "wonder"))
	if w.Code != http.StatusOK || w.Body.String() != "alice" {
		t.Errorf("got %d %q, want 200 alice", w.Code, w.Body)
	}
}

func TestBasicAuthRefuses(t *testing.T) {
	h := BasicAuth("colibri", BasicAuthUsers(map[string]string{"alice": "wonder"}))(whoami)
	noCredentials := httptest.NewRequest(http.MethodGet, "/", nil)
	malformed := httptest.NewRequest(http.MethodGet, "/", nil)
	malformed.Header.Set("Authorization", "Basic !!!not-base64")
	bearer := httptest.NewRequest(http.MethodGet, "/", nil)
	bearer.Header.Set("Authorization", "Bearer wonder")
	for name, r := range map[string]*http.Request{
		"no credentials": noCredentials,
		"malformed":      malformed,
		"other scheme":   bearer,
		"wrong password": basicRequest("alice", "wander"),
		"unknown user":   basicRequest("bob", "wonder"),
		"empty":          basicRequest("", ""),
	} {
		w := serve(h, r)
		if w.Code != http.StatusUnauthorized || w.Body.String() != "unauthorized\n" {
			t.Errorf("%s: got %d %q, want 401 unauthorized", name, w.Code, w.Body)
		}
		if got, want := w.Header().Get("WWW-Authenticate"), `Basic realm="colibri", charset="UTF-8"`; got != want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, want)
		}
	}
}

func TestBasicAuthRealmQuoted(t *testing.T) {
	h := BasicAuth(`say "hi" \o/`, func(context.Context, string, string) bool { return false })(whoami)
	w := serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	if got, want := w.Header().Get("WWW-Authenticate"), `Basic realm="say \"hi\" \\o/", charset="UTF-8"`; got != want {
		t.Errorf("WWW-Authenticate %q, want %q", got, want)
	}
}

type ctxProbe struct{}

func TestBasicAuthPassesContextAndCredentials(t *testing.T) {
	var gotUser, gotPassword string
	var gotProbe any
	verify := func(ctx context.Context, user, password string) bool {
		gotUser, gotPassword, gotProbe = user, password, ctx.Value(ctxProbe{})
		return true
	}
	r := basicRequest("h\u00e9l\u00e8ne", "pa:ss word")
	r = r.WithContext(context.WithValue(r.Context(), ctxProbe{}, "here"))
	w := serve(BasicAuth("x", verify)(whoami), r)
	if gotUser != "h\u00e9l\u00e8ne" || gotPassword != "pa:ss word" || gotProbe != "here" {
		t.Errorf("verify saw %q %q probe %v", gotUser, gotPassword, gotProbe)
	}
	if w.Body.String() != "h\u00e9l\u00e8ne" {
		t.Errorf("context user %q", w.Body)
	}
}

func TestBasicAuthUsers(t *testing.T) {
	users := map[string]string{"alice": "wonder", "nopass": ""}
	verify := BasicAuthUsers(users)
	users["alice"] = "changed"
	users["mallory"] = "x"
	ctx := context.Background()
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"alice", "wonder", true},
		{"alice", "changed", false},
		{"alice", "Wonder", false},
		{"alice", "wonder ", false},
		{"alice", "", false},
		{"nopass", "", true},
		{"nopass", "x", false},
		{"mallory", "x", false},
		{"", "", false},
	} {
		if got := verify(ctx, tc.user, tc.password); got != tc.want {
			t.Errorf("verify(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
}

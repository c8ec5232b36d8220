package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// requestIDSeen runs RequestID with incoming as the X-Request-ID (none if
// empty) and returns the id in the handler's context and on the response.
func requestIDSeen(t *testing.T, incoming string) (inContext, onResponse string) {
	t.Helper()
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inContext = RequestIDFrom(r.Context())
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if incoming != "" {
		r.Header.Set(RequestIDHeader, incoming)
	}
	w := serve(h, r)
	return inContext, w.Header().Get(RequestIDHeader)
}

func TestRequestIDGeneratedWhenAbsent(t *testing.T) {
	ctxID, respID := requestIDSeen(t, "")
	if !generatedID.MatchString(ctxID) {
		t.Errorf("generated id %q, want 16 hex digits", ctxID)
	}
	if respID != ctxID {
		t.Errorf("response id %q, context id %q; want the same", respID, ctxID)
	}
}

func TestRequestIDGeneratedIDsDiffer(t *testing.T) {
	a, _ := requestIDSeen(t, "")
	b, _ := requestIDSeen(t, "")
	if a == b {
		t.Errorf("two requests got the same id %q", a)
	}
}

func TestRequestIDKeepsSaneIncoming(t *testing.T) {
	for _, id := range []string{
		"abc-123",
		"f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
		"x",
		strings.Repeat("a", maxRequestIDLen),
		"trace=1;span=2/~!",
	} {
		ctxID, respID := requestIDSeen(t, id)
		if ctxID != id || respID != id {
			t.Errorf("incoming %q: context %q, response %q; want it kept", id, ctxID, respID)
		}
	}
}

func TestRequestIDReplacesInsaneIncoming(t *testing.T) {
	for _, id := range []string{
		strings.Repeat("a", maxRequestIDLen+1),
		"has space",
		"tab\there",
		"bell\a",
		"caf\u00e9",
		"del\x7f",
	} {
		ctxID, respID := requestIDSeen(t, id)
		if !generatedID.MatchString(ctxID) || respID != ctxID {
			t.Errorf("incoming %q: context %q, response %q; want a new generated id", id, ctxID, respID)
		}
	}
}

func TestRequestIDFromEmptyContext(t *testing.T) {
	if id := RequestIDFrom(context.Background()); id != "" {
		t.Errorf("RequestIDFrom(Background) = %q, want \"\"", id)
	}
}

func TestUserFromEmptyContext(t *testing.T) {
	if user, ok := UserFrom(context.Background()); ok || user != "" {
		t.Errorf("UserFrom(Background) = %q, %v; want \"\", false", user, ok)
	}
}

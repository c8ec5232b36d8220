package handshake

import (
	"net/http"
	"strings"
	"testing"
)

func TestAppendAcceptRFCExample(t *testing.T) {
	// RFC 6455 §1.3.
	if got := string(appendAccept(nil, "dGhlIHNhbXBsZSBub25jZQ==")); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
}

// TestAppendHeaderCannotSplitTheResponse: the extra headers of a 101 come
// from application code (the upgrade decision, middleware); a value with
// line breaks must not add fields or end the response, a field with an
// invalid name is dropped, and the fields the handshake writes itself are
// not repeated.
func TestAppendHeaderCannotSplitTheResponse(t *testing.T) {
	h := http.Header{
		"X-Room":               {"lobby\r\nSet-Cookie: stolen=1"},
		"Bad Name":             {"x"},
		"Bad\r\nName":          {"x"},
		"Connection":           {"close"},
		"Sec-Websocket-Accept": {"forged"},
		"X-Two":                {"a", "b"},
	}
	got := string(appendHeader(nil, h))
	lines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
	want := map[string]bool{"X-Room: lobby  Set-Cookie: stolen=1": true, "X-Two: a": true, "X-Two: b": true}
	if len(lines) != len(want) {
		t.Fatalf("header block %q", got)
	}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("unexpected line %q in %q", l, got)
		}
	}
}

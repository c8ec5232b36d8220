package router_test

// Helpers shared by the test files of package router_test.

import (
	"context"
	"net/http"
	"testing"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/internal/h2test"
)

// h2pDial opens a WebSocket over HTTP/2 to path on h and returns it with
// the 200 that opened it.
func h2pDial(t *testing.T, h *h2pServer, path string) (*h2test.Socket, *http.Response) {
	t.Helper()
	s, resp, err := h.client.Dial(context.Background(), h.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

// h2pText expects the next message on s to be the text want.
func h2pText(t *testing.T, s *h2test.Socket, want string) {
	t.Helper()
	op, p, err := s.ReadMessage()
	if err != nil || op != ws.OpText || string(p) != want {
		t.Fatalf("got %v %q %v, want text %q", op, p, err, want)
	}
}

// h2pEcho sends text on s and expects it back.
func h2pEcho(t *testing.T, s *h2test.Socket, text string) {
	t.Helper()
	if err := s.WriteText(text); err != nil {
		t.Fatal(err)
	}
	h2pText(t, s, text)
}

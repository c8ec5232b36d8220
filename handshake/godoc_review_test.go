package handshake_test

// Claims of the handshake package's doc comments that no other test pins,
// checked through loopback sockets with raw HTTP/1.1 bytes.

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// gdrHandshake sends raw on a new loopback connection to addr and returns
// the response; a refusal's body is read, a 101's is not.
func gdrHandshake(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, br := advDial(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, ""
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// ParseExtensions: "It fails on the first value that does not follow the
// header's grammar" (RFC 6455 §9.1: extension-list = 1#extension,
// extension = token *( ";" extension-param ), extension-param = token
// [ "=" (token | quoted-string) ]).
func TestGodocParseExtensionsFailsOnValuesOutsideTheGrammar(t *testing.T) {
	for _, v := range []string{
		"a b",      // two tokens without a comma: the first is dropped
		"a; b=x y", // a parameter value with a blank: "y" is dropped
		"a;",       // ";" without a parameter
		"a; b=",    // "=" without a value
	} {
		if exts, err := handshake.ParseExtensions(v); err == nil {
			t.Errorf("ParseExtensions(%q) = %v, nil; want an error", v, exts)
		}
	}
}

// Accept with compression on: CheckExtensions' doc says a malformed
// Sec-WebSocket-Extensions header is refused with 400. A client that
// sends "x-foo permessage-deflate" (two tokens, no comma) offers nothing
// well-formed; Accept upgrades and negotiates permessage-deflate from it.
func TestGodocAcceptRefusesMalformedExtensionsHeader(t *testing.T) {
	accepted := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{Compression: wsconn.Compression{Enabled: true}})
		if err == nil {
			u.Conn.Close()
		}
		accepted <- err
	}))
	defer srv.Close()
	resp, body := gdrHandshake(t, srv.Listener.Addr().String(),
		advRequest("/", "x", "Sec-WebSocket-Extensions: x-foo permessage-deflate\r\n"))
	err := cornerWait(t, accepted, "Accept")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("answer %d %q (Sec-WebSocket-Extensions %q), want 400 malformed", resp.StatusCode, body,
			resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if e, ok := errors.AsType[*handshake.Error](err); !ok || e.Status != http.StatusBadRequest {
		t.Errorf("Accept returned %v, want the *Error of a 400", err)
	}
}

// Error.Unwrap: "returns what made the refusal necessary when it was not
// the request (a ResponseWriter that cannot be hijacked, say)". Through a
// real server, the 500 Accept answers when it cannot hijack is an *Error
// whose cause is http.ErrNotSupported, reachable with errors.Is; a refusal
// of the request itself has no cause.
func TestGodocAcceptErrorUnwrapsTheHijackFailure(t *testing.T) {
	accepted := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := handshake.Accept(noHijackWriter{w}, r, nil)
		accepted <- err
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	resp, _ := gdrHandshake(t, addr, gobwasTestRequest("/", "x"))
	err := cornerWait(t, accepted, "Accept")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("answer %d, want 500", resp.StatusCode)
	}
	if e, ok := errors.AsType[*handshake.Error](err); !ok || !errors.Is(err, http.ErrNotSupported) || e.Unwrap() == nil {
		t.Errorf("Accept returned %v, want an *Error matching http.ErrNotSupported", err)
	}

	resp, _ = gdrHandshake(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	err = cornerWait(t, accepted, "Accept")
	if e, ok := errors.AsType[*handshake.Error](err); !ok || e.Status != resp.StatusCode || e.Unwrap() != nil {
		t.Errorf("plain GET: %d, Accept returned %v; want the *Error of that answer without a cause", resp.StatusCode, err)
	}
}

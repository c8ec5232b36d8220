package middleware_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

// BasicAuth's 401 to an upgrade is "a plain HTTP response the client can
// read" (doc.go): the connection survives it, so a client can answer the
// challenge on the same connection, and the retry with credentials
// upgrades there.
func TestBasicAuthCornerChallengeThenUpgradeOnSameConnection(t *testing.T) {
	r := newRouter()
	r.With(middleware.BasicAuth(`the "realm"`, middleware.BasicAuthUsers(map[string]string{"alice": "won:der"}))).
		Group(func(r *router.Router) { router.WS(r, "/ws", nil, who) })
	base := serve(t, r)
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), guard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	br := bufio.NewReader(c)
	req := "GET /ws HTTP/1.1\r\nHost: x\r\n" + upgradeHeaders
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Close {
		t.Fatalf("first answer %d (close %v), want a 401 that keeps the connection", resp.StatusCode, resp.Close)
	}
	if got, want := resp.Header.Values("WWW-Authenticate"), []string{`Basic realm="the \"realm\"", charset="UTF-8"`}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("challenge %q, want %q", got, want)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("alice:won:der"))
	if _, err := io.WriteString(c, req+"Authorization: Basic "+creds+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("retry on the same connection: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("retry with credentials: %d, want 101", resp.StatusCode)
	}
}

package interop

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

func TestMain(m *testing.M) {
	code := m.Run()
	browser.close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "interop: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// client is one connection of a stack under test; its methods fail the
// test when the answer is not the one expected.
type client struct {
	t   *testing.T
	s   *stack
	d   driver
	id  string
	app *testApp // the app of the last connect
}

var ids atomic.Int64

// open starts a client of s with a fresh connection id.
func open(t *testing.T, s *stack, opener func(*testing.T) driver) *client {
	t.Helper()
	d := opener(t)
	t.Cleanup(d.stop)
	return &client{t: t, s: s, d: d, id: fmt.Sprint(s.name, "-", ids.Add(1))}
}

func (c *client) do(cmd command) result {
	c.t.Helper()
	r, err := c.d.do(cmd)
	if err != nil {
		c.t.Fatalf("%s: %v", c.s.name, err)
	}
	if !r.OK {
		c.t.Fatalf("%s: %s: %s", c.s.name, cmd.Op, r.Error)
	}
	return r
}

// connect dials path on a; it fails the test unless the handshake works.
func (c *client) connect(a *testApp, path string, protocols []string, deflate *deflateOffer) result {
	c.t.Helper()
	c.app = a
	return c.do(command{Op: opConnect, URL: a.url(path, c.id), Protocols: protocols, Deflate: deflate})
}

func (c *client) send(kind string, size int) {
	c.t.Helper()
	c.do(command{Op: opSend, Kind: kind, Size: size})
}

func (c *client) sendText(s string) {
	c.t.Helper()
	c.do(command{Op: opSendText, Text: s})
}

func (c *client) expect(want result) {
	c.t.Helper()
	got := c.do(command{Op: opRecv})
	if got.Event != want.Event || got.Kind != want.Kind || got.Size != want.Size || got.SHA256 != want.SHA256 ||
		got.Text != want.Text || got.Code != want.Code || got.Reason != want.Reason {
		c.t.Fatalf("%s received %v, want %v", c.s.name, got, want)
	}
}

func (c *client) expectMessage(kind string, size int) {
	c.t.Helper()
	want := result{Event: "message", Kind: kind, Size: size, SHA256: sum(kind, size)}
	if kind == "text" && size <= 4096 {
		want.Text = string(payload(kind, size))
	}
	c.expect(want)
}

func (c *client) expectText(s string) {
	c.t.Helper()
	c.expect(message(false, []byte(s)))
}

func (c *client) expectClose(code frames.CloseCode, reason string) {
	c.t.Helper()
	c.expect(result{Event: "close", Code: int(code), Reason: reason})
}

// echo sends payload(kind, size) and expects it back.
func (c *client) echo(kind string, size int) {
	c.t.Helper()
	start := time.Now()
	c.send(kind, size)
	c.expectMessage(kind, size)
	if d := time.Since(start); d > time.Second {
		c.t.Logf("%s: echo of %d bytes of %s took %v", c.s.name, size, kind, d.Round(time.Millisecond))
	}
}

// close closes with code and reason and checks what the server answered
// (RFC 6455 §5.5.1: the code it received).
func (c *client) close(code frames.CloseCode, reason string, wantCode frames.CloseCode, wantReason string) {
	c.t.Helper()
	got := c.do(command{Op: opClose, Code: int(code), Reason: reason})
	if got.Event != "close" || got.Code != int(wantCode) || got.Reason != wantReason {
		c.t.Fatalf("%s closed with %d %q and received %v, want close %d %q; server log:\n%s", c.s.name, code, reason, got, wantCode, wantReason, c.app.logs)
	}
}

// ended checks how the server saw the connection end.
func (c *client) ended(a *testApp, code frames.CloseCode, reason string, by wsconn.Side) wsconn.CloseInfo {
	c.t.Helper()
	info := a.closed(c.t, c.id)
	if info.Code != code || info.Reason != reason || info.By != by {
		c.t.Fatalf("server saw %s end with %d %q by %v, want %d %q by %v", c.s.name, info.Code, info.Reason, info.By, code, reason, by)
	}
	return info
}

// answer is colibri's permessage-deflate response to offer on a route
// with or without context takeover (RFC 7692 §7.1; docs/compression.md).
func answer(offer *deflateOffer, takeover bool) string {
	s := "permessage-deflate"
	if offer.ServerNoContextTakeover || !takeover {
		s += "; server_no_context_takeover"
	}
	if offer.ClientNoContextTakeover || !takeover {
		s += "; client_no_context_takeover"
	}
	if offer.ServerMaxWindowBits != 0 {
		s += fmt.Sprintf("; server_max_window_bits=%d", offer.ServerMaxWindowBits)
	}
	return s
}

// interopCase is one behaviour every client that can is checked for.
type interopCase struct {
	name  string
	needs func(abilities) bool // nil: every client
	run   func(t *testing.T, a *testApp, c *client)
}

var echoSizes = []int{0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20}

var cases = []interopCase{
	{name: "echo 0 B to 16 MiB", run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/echo", nil, nil)
		for _, kind := range []string{"text", "binary"} {
			for _, n := range echoSizes {
				c.echo(kind, n)
			}
		}
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")
		c.ended(a, frames.CloseNormal, "", wsconn.SidePeer)
	}},
	{name: "over the limit 1009", run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/limit", nil, nil)
		c.echo("binary", smallLimit)
		c.send("binary", smallLimit+1)
		c.expectClose(frames.CloseMessageTooBig, "message too large")
		c.ended(a, frames.CloseMessageTooBig, "message too large", wsconn.SideLocal)
	}},
	{name: "invalid UTF-8 1007", needs: func(a abilities) bool { return a.invalidUTF8 }, run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/echo", nil, nil)
		c.do(command{Op: opInvalidUTF8})
		c.expectClose(frames.CloseInvalidPayload, "invalid UTF-8 in text message")
		c.ended(a, frames.CloseInvalidPayload, "invalid UTF-8 in text message", wsconn.SideLocal)
	}},
	{name: "fragmented messages", needs: func(a abilities) bool { return a.fragments }, run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/echo", nil, nil)
		// Text cut between characters (every 19 bytes, see textUnit) or,
		// where the client can, inside them.
		text := []int{19, 3800, 38000, 7}
		if c.s.can.splitRunes {
			text = []int{9, 1, 4000, 30000, 7816}
		}
		for _, m := range []struct {
			kind  string
			sizes []int
		}{{"text", text}, {"binary", []int{1, 70000, 3}}, {"text", []int{0, 19}}} {
			c.do(command{Op: opFragments, Kind: m.kind, Sizes: m.sizes})
			c.expectMessage(m.kind, sumOf(m.sizes))
		}
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")
	}},
	{name: "ping from the client", needs: func(a abilities) bool { return a.ping }, run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/echo", nil, nil)
		if got := c.do(command{Op: opPing, Data: "colibri? 🐦"}); got.Pong != "colibri? 🐦" {
			t.Fatalf("pong %q", got.Pong)
		}
		c.echo("text", 5)
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")
	}},
	{name: "ping from the server", run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/ping", nil, nil)
		c.expectText("pong received")
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")
	}},
	{name: "close from the client", run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/echo", nil, nil)
		c.echo("text", 19)
		c.close(4001, "bye from the client 🐦", 4001, "bye from the client 🐦")
		c.ended(a, 4001, "bye from the client 🐦", wsconn.SidePeer)
	}},
	{name: "close from the server", run: func(t *testing.T, a *testApp, c *client) {
		c.connect(a, "/close", nil, nil)
		c.sendText("4002 the server says bye 🐦")
		c.expectClose(4002, "the server says bye 🐦")
		c.ended(a, 4002, "the server says bye 🐦", wsconn.SideLocal)

		c2 := open(t, c.s, c.s.open)
		c2.connect(a, "/close", nil, nil)
		c2.sendText("1000 done")
		c2.expectClose(frames.CloseNormal, "done")
	}},
	{name: "1001 on shutdown", run: func(t *testing.T, _ *testApp, c *client) {
		a := startApp(t)
		c.connect(a, "/echo", nil, nil)
		c.echo("text", 19)
		done := make(chan error, 1)
		go func() { done <- a.shutdown() }()
		c.expectClose(frames.CloseGoingAway, "server shutting down")
		c.ended(a, frames.CloseGoingAway, "server shutting down", wsconn.SideLocal)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("shutdown: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("shutdown did not end")
		}
	}},
	{name: "subprotocol", run: func(t *testing.T, a *testApp, c *client) {
		// The client's order of preference decides (RFC 6455 §4.2.2).
		got := c.connect(a, "/proto", []string{"v1.colibri", "v2.colibri"}, nil)
		if got.Protocol != "v1.colibri" {
			t.Fatalf("%s negotiated subprotocol %q, want v1.colibri", c.s.name, got.Protocol)
		}
		c.expectText("subprotocol v1.colibri")
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")

		c2 := open(t, c.s, c.s.open)
		got = c2.connect(a, "/proto", []string{"v3.colibri", "v2.colibri"}, nil)
		if got.Protocol != "v2.colibri" {
			t.Fatalf("%s negotiated subprotocol %q, want v2.colibri", c.s.name, got.Protocol)
		}
		c2.expectText("subprotocol v2.colibri")
	}},
	{name: "no subprotocol in common", run: func(t *testing.T, a *testApp, c *client) {
		// colibri answers without Sec-WebSocket-Protocol (RFC 6455
		// §4.2.2); RFC 6455 §4.1 has a client fail only a subprotocol it
		// did not offer, but the WHATWG WebSockets standard has browsers
		// fail a missing one too, and Node's ws does the same.
		r, err := c.d.do(command{Op: opConnect, URL: a.url("/proto", c.id), Protocols: []string{"v9.colibri"}})
		if err != nil {
			t.Fatal(err)
		}
		if refusal, ok := map[string]string{"node-ws": "Server sent no subprotocol", "chromium": "closed 1006"}[c.s.name]; ok {
			if r.OK || r.Error != refusal {
				t.Fatalf("%s: %v, want it to fail the connection: %s", c.s.name, r, refusal)
			}
			return
		}
		if !r.OK || r.Protocol != "" {
			t.Fatalf("%s: %v, protocol %q", c.s.name, r, r.Protocol)
		}
		c.expectText("subprotocol ")
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")
	}},
	{name: "permessage-deflate", run: func(t *testing.T, a *testApp, c *client) {
		deflateEcho(t, a, c, "/deflate", &deflateOffer{}, false)
	}},
	{name: "permessage-deflate with context takeover", run: func(t *testing.T, a *testApp, c *client) {
		deflateEcho(t, a, c, "/deflate-takeover", &deflateOffer{}, true)
	}},
	{name: "permessage-deflate with the client's parameters", needs: func(a abilities) bool { return a.anyOffer }, run: func(t *testing.T, a *testApp, c *client) {
		deflateEcho(t, a, c, "/deflate-takeover", &deflateOffer{ServerNoContextTakeover: true, ServerMaxWindowBits: 10, ClientMaxWindowBits: -1}, true)
		c2 := open(t, c.s, c.s.open)
		deflateEcho(t, a, c2, "/deflate-takeover", &deflateOffer{ServerMaxWindowBits: 9, ClientMaxWindowBits: 11}, true)
		c3 := open(t, c.s, c.s.open)
		deflateEcho(t, a, c3, "/deflate", &deflateOffer{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 8}, false)
	}},
}

// deflateEcho connects to a compressing route offering want, checks
// colibri's answer to what the client offered, and echoes compressed
// messages of 1 MiB and a few small ones; the server's byte counts show
// that both sides compressed.
func deflateEcho(t *testing.T, a *testApp, c *client, path string, want *deflateOffer, takeover bool) {
	t.Helper()
	offer := c.s.offer(want)
	got := c.connect(a, path, nil, want)
	if wantAnswer := answer(offer, takeover); got.Extensions != wantAnswer {
		t.Fatalf("%s offered %+v and was answered %q, want %q", c.s.name, *offer, got.Extensions, wantAnswer)
	}
	sent := 0
	for _, m := range []struct {
		kind string
		size int
	}{{"text", 1 << 20}, {"binary", 1 << 20}, {"text", 1 << 20}, {"text", 1000}, {"text", 1001}, {"binary", 3000}} {
		c.echo(m.kind, m.size)
		sent += m.size
	}
	c.close(frames.CloseNormal, "", frames.CloseNormal, "")
	info := c.ended(a, frames.CloseNormal, "", wsconn.SidePeer)
	// Each payload compresses more than twentyfold, but for the binary one
	// in a 256-byte window: it repeats every 256 bytes, a distance that
	// klauspost's windowed encoder does not use at that size.
	limit := int64(sent / 10)
	if want.ServerMaxWindowBits == 8 {
		limit = int64(sent / 2)
	}
	if info.BytesOut > limit || info.BytesIn > int64(sent/10) {
		t.Fatalf("%d payload bytes each way took %d on the wire in and %d out: not compressed", sent, info.BytesIn, info.BytesOut)
	}
}

// TestClients runs every case with every client.
func TestClients(t *testing.T) {
	for _, s := range allStacks() {
		t.Run(s.name, func(t *testing.T) {
			// Each client waits on its own process or network most of
			// the time; side by side they take half as long.
			t.Parallel()
			opener := s.use(t)
			t.Logf("%s", s.version)
			a := startApp(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if tc.needs != nil && !tc.needs(s.can) {
						t.Skipf("%s cannot do this (see docs/testing.md)", s.name)
					}
					tc.run(t, a, open(t, s, opener))
				})
			}
		})
	}
}

// TestChatAcrossStacks puts a client of every stack in one chat room:
// each says hello, and each hears every hello, its own included.
func TestChatAcrossStacks(t *testing.T) {
	a := startApp(t)
	var members []*client
	for _, s := range allStacks() {
		if s.open == nil {
			missing(t, s.version) // the room goes on without it
			continue
		}
		c := open(t, s, s.open)
		c.connect(a, "/chat/lobby?name="+s.name, nil, &deflateOffer{})
		members = append(members, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.chat.members("lobby") != len(members) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients in the room", a.chat.members("lobby"), len(members))
		}
		time.Sleep(5 * time.Millisecond)
	}
	var want []string
	for _, c := range members {
		line := "hello from " + c.s.name + " 🐦"
		c.sendText(line)
		want = append(want, c.s.name+": "+line)
	}
	slices.Sort(want)
	for _, c := range members {
		var heard []string
		for range members {
			r := c.do(command{Op: opRecv})
			if r.Event != "message" {
				t.Fatalf("%s received %v", c.s.name, r)
			}
			heard = append(heard, r.Text)
		}
		slices.Sort(heard)
		if !slices.Equal(heard, want) {
			t.Fatalf("%s heard\n%s\nwant\n%s", c.s.name, strings.Join(heard, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, c := range members {
		c.close(frames.CloseNormal, "", frames.CloseNormal, "")
	}
}

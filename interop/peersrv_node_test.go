package interop

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// colibri's client against Node's ws server in configurations the
// suite's server.js does not take: small windows, context takeover
// forced or refused by the server, a subprotocol that was not offered,
// fragments with PINGs between them, closes of every kind.

// rvPeersrvNodeScript is a ws server. argv[2] is the JSON of ws's
// perMessageDeflate option (false for none), argv[3] a subprotocol that
// handleProtocols picks whatever was offered ("" to pick the first
// offered). It prints {"port":N}, then one line per connection once it
// ends: {"event":"close","path":P,"code":C,"reason":R,"errors":[...],
// "protocol":S,"ext":E,"msgs":[hex...]}.
// Paths: /echo echoes; /frag sends "ab","cd","ef" as one fragmented text
// with a PING before every continuation, then echoes; /close?code=C&reason=R
// closes at once (no code: ws.close() with none, which sends an empty
// CLOSE); /terminate drops TCP without a CLOSE; /big?n=N sends N bytes;
// /seq?n=N sends N compressible texts "msg i ..." (for takeover and
// windows).
const rvPeersrvNodeScript = `"use strict";
const { WebSocketServer } = require(process.env.RV_WS_MODULE);
const pmd = JSON.parse(process.argv[2]);
const pick = process.argv[3];
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const wss = new WebSocketServer({
  host: "127.0.0.1", port: 0, perMessageDeflate: pmd, maxPayload: Number(process.env.RV_MAX_PAYLOAD || 64 << 20),
  handleProtocols: (protocols) => pick !== "" ? pick : (protocols.size ? [...protocols][0] : false),
});
wss.on("listening", () => out({ port: wss.address().port }));
wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://localhost");
  const path = url.pathname;
  const st = { event: "close", path, code: 0, reason: "", errors: [], protocol: ws.protocol, ext: ws.extensions, msgs: [] };
  ws.on("error", (e) => st.errors.push(e.message));
  ws.on("close", (code, reason) => { st.code = code; st.reason = reason.toString(); });
  req.socket.on("close", () => out(st));
  ws.on("message", (data, isBinary) => {
    st.msgs.push(Buffer.from(data).toString("hex"));
    if (path === "/echo" || path === "/frag" || path === "/seq") ws.send(data, { binary: isBinary });
  });
  if (path === "/frag") {
    ws.send("ab", { fin: false });
    ws.ping("p1");
    ws.send("cd", { fin: false });
    ws.ping("p2");
    ws.send("ef", { fin: true });
  } else if (path === "/rune") {
    // "🐦" split inside the rune, then (bad=1) a rune cut at the end.
    ws.send(Buffer.from([0x61, 0xf0, 0x9f]), { fin: false, binary: false });
    ws.ping("p");
    ws.send(Buffer.from([0x90, 0xa6]), { fin: url.searchParams.has("bad") ? false : true });
    if (url.searchParams.has("bad")) ws.send(Buffer.from([0xe2, 0x82]), { fin: true });
  } else if (path === "/close") {
    if (url.searchParams.has("code")) ws.close(Number(url.searchParams.get("code")), url.searchParams.get("reason") || "");
    else ws.close();
  } else if (path === "/terminate") {
    ws.send("bye");
    setTimeout(() => ws.terminate(), 50);
  } else if (path === "/big") {
    ws.send(Buffer.alloc(Number(url.searchParams.get("n")), 0x61));
  } else if (path === "/seq") {
    for (let i = 0; i < Number(url.searchParams.get("n")); i++) ws.send("msg " + i + " " + "colibri ".repeat(200) + i);
  }
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`

// rvPeersrvNodeEnd is the script's report of one connection.
type rvPeersrvNodeEnd struct {
	Event    string   `json:"event"`
	Path     string   `json:"path"`
	Code     int      `json:"code"`
	Reason   string   `json:"reason"`
	Errors   []string `json:"errors"`
	Protocol string   `json:"protocol"`
	Ext      string   `json:"ext"`
	Msgs     []string `json:"msgs"`
}

// rvPeersrvNode starts the script with ws's perMessageDeflate option pmd
// (JSON) and the subprotocol pick.
func rvPeersrvNode(t *testing.T, pmd, pick string) *peerServer {
	t.Helper()
	st := nodeStack()
	if st.open == nil {
		unavailable(t, st.version)
	}
	node, _ := exec.LookPath("node")
	script := filepath.Join(t.TempDir(), "server.js")
	if err := os.WriteFile(script, []byte(rvPeersrvNodeScript), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RV_WS_MODULE", testdata("node", "node_modules", "ws"))
	return startServer(t, "ws (review)", node, script, pmd, pick)
}

// end waits for the server's report of a connection.
func (s *peerServer) rvPeersrvEnd(t *testing.T) rvPeersrvNodeEnd {
	t.Helper()
	select {
	case line, ok := <-s.p.lines:
		if !ok {
			t.Fatalf("server ended; stderr:\n%s", s.p.stderr)
		}
		var ev rvPeersrvNodeEnd
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("server printed %q", line)
		}
		return ev
	case <-time.After(8 * time.Second):
		t.Fatalf("no report from the server; stderr:\n%s", s.p.stderr)
	}
	return rvPeersrvNodeEnd{}
}

func rvPeersrvCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestNodeSubprotocolNotOffered: docs/client.md "Errors": a
// 101 naming a subprotocol that was not offered is a *HandshakeError with
// StatusCode 101 and a Reason; ws's server sends whatever handleProtocols
// returns. Offering nothing, or something else, fails the same way.
func TestNodeSubprotocolNotOffered(t *testing.T) {
	s := rvPeersrvNode(t, "false", "mqtt")
	for _, offered := range [][]string{{"chat", "json"}} {
		_, resp, err := wsclient.Dial(rvPeersrvCtx(t), s.url+"/echo", &wsclient.Options{Subprotocols: offered})
		var he *wsclient.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != 101 || he.Reason == "" || !strings.Contains(he.Reason, "mqtt") {
			t.Fatalf("offered %q: Dial returned %v, want a HandshakeError naming mqtt", offered, err)
		}
		if resp == nil || resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
			t.Fatalf("response %+v", resp)
		}
		// ws's server then sees its connection dropped without a CLOSE.
		if ev := s.rvPeersrvEnd(t); ev.Code != 1006 {
			t.Fatalf("server saw %+v", ev)
		}
	}
	// With mqtt offered, it is negotiated.
	err := wsclient.Run(rvPeersrvCtx(t), s.url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
		if sess.Subprotocol() != "mqtt" {
			return fmt.Errorf("subprotocol %q", sess.Subprotocol())
		}
		return nil
	}, &wsclient.Options{Subprotocols: []string{"chat", "mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := s.rvPeersrvEnd(t); ev.Code != 1000 || ev.Protocol != "mqtt" {
		t.Fatalf("server saw %+v", ev)
	}
}

// TestNodeDeflateWindowsAndTakeover: RFC 7692 with ws's
// server choosing the parameters: a server_max_window_bits of 9 that the
// client did not ask for, with context takeover on the server's side; a
// client_max_window_bits of 9 that ws then inflates with a 512-byte
// window (a client that compressed with a larger one breaks ws's
// inflater); client_no_context_takeover imposed on a client that wanted
// takeover (ws's inflater resets after every message). Messages arrive
// whole both ways, the server logs no error and the close is 1000.
func TestNodeDeflateWindowsAndTakeover(t *testing.T) {
	cmwb := []wsconn.Extension{{Name: "permessage-deflate", Params: []wsconn.ExtensionParam{{Name: "client_max_window_bits"}}}}
	for _, tc := range []struct {
		name    string
		pmd     string
		exts    []wsconn.Extension
		wantExt string
	}{
		{"server window 9 with takeover", `{"threshold":0,"serverMaxWindowBits":9}`, nil, "server_max_window_bits=9"},
		{"server window 8", `{"threshold":0,"serverMaxWindowBits":8}`, nil, "server_max_window_bits=8"},
		{"client window 9", `{"threshold":0,"clientMaxWindowBits":9}`, cmwb, "client_max_window_bits=9"},
		{"client window 8 and server window 8", `{"threshold":0,"clientMaxWindowBits":8,"serverMaxWindowBits":8}`, cmwb, "client_max_window_bits=8"},
		{"client takeover refused", `{"threshold":0,"clientNoContextTakeover":true}`, nil, "client_no_context_takeover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rvPeersrvNode(t, tc.pmd, "")
			cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: true, ContextTakeover: true, Threshold: 1}}
			const n = 6
			err := wsclient.Run(rvPeersrvCtx(t), s.url+"/seq?n="+fmt.Sprint(n), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				if got := sess.Value.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(got, tc.wantExt) {
					return fmt.Errorf("ws answered %q", got)
				}
				i := 0
				for m := range in.Messages(0) {
					want := fmt.Sprintf("msg %d %s%d", i, strings.Repeat("colibri ", 200), i)
					if m.Text() != want {
						return fmt.Errorf("message %d: %d bytes %.40q", i, len(m.Payload), m.Payload)
					}
					if i++; i == n {
						break
					}
				}
				if err := in.Err(); err != nil {
					return err
				}
				// Our messages: 1000 random hex digits twice, the same for
				// each: the repeat lies 1000 bytes back, past a 9-bit
				// window, and with takeover the whole message lies in the
				// previous one.
				block := make([]byte, 500)
				rng := rand.New(rand.NewPCG(7, 8))
				for i := range block {
					block[i] = byte(rng.Uint32())
				}
				h := hex.EncodeToString(block)
				p := []byte(h + h)
				for i := range n {
					if err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: p}); err != nil {
						return fmt.Errorf("round trip %d: %w", i, err)
					}
				}
				return nil
			}, &wsclient.Options{Config: cfg, Extensions: tc.exts})
			ev := s.rvPeersrvEnd(t)
			if err != nil {
				t.Fatalf("Run: %v; server saw %+v", err, ev)
			}
			if ev.Code != 1000 || len(ev.Errors) != 0 || len(ev.Msgs) != n {
				t.Fatalf("server saw %+v", ev)
			}
		})
	}
}

// TestNodeFragmentsWithPings: ws sends a text message in
// three fragments with a PING before each continuation; the client
// answers both PINGs and delivers "abcdef" as one message, plain and
// compressed.
func TestNodeFragmentsWithPings(t *testing.T) {
	for _, pmd := range []string{"false", `{"threshold":0}`} {
		t.Run(pmd, func(t *testing.T) {
			s := rvPeersrvNode(t, pmd, "")
			cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: pmd != "false"}}
			err := wsclient.Run(rvPeersrvCtx(t), s.url+"/frag", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				got := false
				for m := range in.Messages(0) {
					if m.Kind != messages.KindText || m.Text() != "abcdef" {
						return fmt.Errorf("got %v %q", m.Kind, m.Payload)
					}
					got = true
					break
				}
				if !got {
					return fmt.Errorf("no message: %w", in.Err())
				}
				return roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte("done")})
			}, &wsclient.Options{Config: cfg})
			ev := s.rvPeersrvEnd(t)
			if err != nil || ev.Code != 1000 || len(ev.Errors) != 0 {
				t.Fatalf("Run: %v; server saw %+v", err, ev)
			}
		})
	}
}

// TestNodeServerCloses: ws closes first with each kind of
// code: the client echoes it (RFC 6455 §5.5.1), an empty CLOSE (1005) is
// a clean end, and Run returns nil for 1000, 1001 and 1005, else the
// server's *CloseError. A server that drops TCP without a CLOSE ends Run
// with an error, after the message sent before it.
func TestNodeServerCloses(t *testing.T) {
	s := rvPeersrvNode(t, "false", "")
	for _, tc := range []struct {
		query   string
		code    int
		reason  string
		wantErr bool
	}{
		{"", 1005, "", false},
		{"?code=1000", 1000, "", false},
		{"?code=1001&reason=away", 1001, "away", false},
		{"?code=1008&reason=policy", 1008, "policy", true},
		{"?code=1011&reason=" + strings.Repeat("r", 123), 1011, strings.Repeat("r", 123), true},
		{"?code=1013", 1013, "", true},
		{"?code=3999&reason=%F0%9F%90%A6", 3999, "🐦", true},
		{"?code=4000", 4000, "", true},
	} {
		t.Run(fmt.Sprint(tc.code, tc.reason), func(t *testing.T) {
			var info wsconn.CloseInfo
			err := wsclient.Run(rvPeersrvCtx(t), s.url+"/close"+tc.query, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				for m := range in.Messages(0) {
					return fmt.Errorf("got %q", m.Payload)
				}
				return in.Err()
			}, &wsclient.Options{Config: &wsconn.Config{Observer: rvPeersrvObserver(&info)}})
			ev := s.rvPeersrvEnd(t)
			if !tc.wantErr && err != nil {
				t.Fatalf("Run returned %v", err)
			}
			if tc.wantErr {
				var ce *wsconn.CloseError
				if !errors.As(err, &ce) || int(ce.Code) != tc.code || ce.Reason != tc.reason {
					t.Fatalf("Run returned %v, want the server's %d %q", err, tc.code, tc.reason)
				}
			}
			if ev.Code != tc.code || ev.Reason != tc.reason || len(ev.Errors) != 0 {
				t.Fatalf("server saw %+v, want its own %d %q echoed", ev, tc.code, tc.reason)
			}
			if int(info.Code) != tc.code || info.By != wsconn.SidePeer {
				t.Fatalf("CloseInfo %+v", info)
			}
		})
	}
	t.Run("terminate", func(t *testing.T) {
		var got []string
		err := wsclient.Run(rvPeersrvCtx(t), s.url+"/terminate", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
			for m := range in.Messages(0) {
				got = append(got, m.Text())
			}
			return in.Err()
		}, nil)
		s.rvPeersrvEnd(t)
		if err == nil || len(got) != 1 || got[0] != "bye" {
			t.Fatalf("Run returned %v after %q; want the message, then an error", err, got)
		}
		if st := wsconn.CloseStatus(err); st != frames.CloseAbnormal {
			t.Fatalf("CloseStatus %d, want 1006", st)
		}
	})
}

// TestNodeMessageTooBig: a message over the client's
// MaxMessageSize makes the client close with 1009 (docs/closing.md),
// which ws's server receives, plain and compressed (the limit applies to
// the inflated size).
func TestNodeMessageTooBig(t *testing.T) {
	for _, pmd := range []string{"false", `{"threshold":0}`} {
		t.Run(pmd, func(t *testing.T) {
			s := rvPeersrvNode(t, pmd, "")
			cfg := &wsconn.Config{MaxMessageSize: 64 << 10, Compression: wsconn.Compression{Enabled: pmd != "false"}}
			err := wsclient.Run(rvPeersrvCtx(t), s.url+"/big?n="+fmt.Sprint(1<<20), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				for m := range in.Messages(0) {
					return fmt.Errorf("got %d bytes", len(m.Payload))
				}
				return in.Err()
			}, &wsclient.Options{Config: cfg})
			ev := s.rvPeersrvEnd(t)
			if wsconn.CloseStatus(err) != frames.CloseMessageTooBig || !errors.Is(err, messages.ErrTooLarge) {
				t.Fatalf("Run returned %v, want 1009", err)
			}
			if ev.Code != 1009 {
				t.Fatalf("server saw %+v, want 1009", ev)
			}
		})
	}
}

// TestNodeCancelAfterHandshake: cancelling Run's context
// closes with 1001 (docs/client.md "Run"), which ws's server receives.
func TestNodeCancelAfterHandshake(t *testing.T) {
	s := rvPeersrvNode(t, "false", "")
	ctx, cancel := context.WithCancel(rvPeersrvCtx(t))
	err := wsclient.Run(ctx, s.url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
		if err := roundTrip(ctx, in, out, messages.Message{Kind: messages.KindText, Payload: []byte("x")}); err != nil {
			return err
		}
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	ev := s.rvPeersrvEnd(t)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if ev.Code != 1001 || len(ev.Errors) != 0 {
		t.Fatalf("server saw %+v, want 1001", ev)
	}
}

// rvPeersrvObs records the CloseInfo of the connections it observes.
type rvPeersrvObs struct {
	wsconn.NopObserver
	info *wsconn.CloseInfo
}

func (o rvPeersrvObs) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }
func (o rvPeersrvObs) Closed(info wsconn.CloseInfo)                { *o.info = info }

func rvPeersrvObserver(info *wsconn.CloseInfo) wsconn.Observer { return rvPeersrvObs{info: info} }

// TestNodeServerRefusesBigMessage: ws's server, with a
// maxPayload of 1 KiB, closes with 1009 as soon as the header of the
// client's 4 MiB message arrives. The write under way finishes (the
// CLOSE is echoed after the message being written, docs/closing.md),
// the handler's inbound loop ends with the server's 1009, which Run
// returns, well within the CloseTimeout.
func TestNodeServerRefusesBigMessage(t *testing.T) {
	t.Setenv("RV_MAX_PAYLOAD", "1024")
	s := rvPeersrvNode(t, "false", "")
	start := time.Now()
	var writeErr error
	err := wsclient.Run(rvPeersrvCtx(t), s.url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
		writeErr = out.WriteBinary(ctx, make([]byte, 4<<20))
		for m := range in.Messages(0) {
			return fmt.Errorf("got %d bytes", len(m.Payload))
		}
		return in.Err()
	}, &wsclient.Options{Config: &wsconn.Config{CloseTimeout: time.Second}})
	took := time.Since(start)
	ev := s.rvPeersrvEnd(t)
	var ce *wsconn.CloseError
	if !errors.As(err, &ce) || ce.Code != frames.CloseMessageTooBig {
		t.Fatalf("Run returned %v (write: %v), want the server's 1009", err, writeErr)
	}
	// ws reports 1006: it never reads the client's CLOSE.
	if len(ev.Errors) != 1 || !strings.Contains(ev.Errors[0], "Max payload") {
		t.Fatalf("server saw %+v", ev)
	}
	if took > 4*time.Second {
		t.Fatalf("Run took %v", took)
	}
	t.Logf("write returned %v; Run took %v", writeErr, took)
}

// TestNodeRuneSplitAcrossFragments: a text message whose
// UTF-8 rune is split between fragments, with a PING between them, is
// valid (RFC 6455 §8.1: validity is of the whole message) and arrives
// whole; one that ends inside a rune fails with 1007, which ws receives.
func TestNodeRuneSplitAcrossFragments(t *testing.T) {
	s := rvPeersrvNode(t, "false", "")
	for _, bad := range []bool{false, true} {
		t.Run(fmt.Sprint("bad=", bad), func(t *testing.T) {
			q := ""
			if bad {
				q = "?bad=1"
			}
			var got []string
			err := wsclient.Run(rvPeersrvCtx(t), s.url+"/rune"+q, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *clientSession) error {
				for m := range in.Messages(0) {
					got = append(got, m.Text())
					return nil
				}
				return in.Err()
			}, nil)
			ev := s.rvPeersrvEnd(t)
			if !bad {
				if err != nil || len(got) != 1 || got[0] != "a🐦" || ev.Code != 1000 {
					t.Fatalf("Run returned %v, got %q; server saw %+v", err, got, ev)
				}
				return
			}
			if wsconn.CloseStatus(err) != frames.CloseInvalidPayload || len(got) != 0 || ev.Code != 1007 {
				t.Fatalf("Run returned %v, got %q; server saw %+v; want 1007", err, got, ev)
			}
		})
	}
}

package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// rlInvalidWrites makes every write path colibri has with a kind other
// than text and binary, and returns what each said, by name.
func rlInvalidWrites(ctx context.Context, out *wsconn.Outbound, hub *topics.Hub, m *topics.Member) map[string]error {
	errs := map[string]error{}
	for _, k := range []messages.Kind{0, 3, 8, 9, 10, 0x80} {
		errs[fmt.Sprintf("WriteMessage(%d)", k)] = out.WriteMessage(ctx, messages.Message{Kind: k, Payload: []byte("x")})
		errs[fmt.Sprintf("WriteMessage(%d, Uncompressed)", k)] = out.WriteMessage(ctx, messages.Message{Kind: k, Payload: []byte("x")}, wsconn.Uncompressed)
		w, err := out.Writer(ctx, k)
		if w != nil {
			_, _ = w.Write([]byte("leak"))
			_ = w.Close()
		}
		errs[fmt.Sprintf("Writer(%d)", k)] = err
		errs[fmt.Sprintf("WritePrepared(%d)", k)] = out.WritePrepared(ctx, wsconn.Prepare(messages.Message{Kind: k, Payload: []byte("x")}))
		n, err := out.WritePreparedBatch(ctx, []*wsconn.Prepared{
			wsconn.Prepare(messages.Text("before")),
			wsconn.Prepare(messages.Message{Kind: k, Payload: []byte("x")}),
			wsconn.Prepare(messages.Text("after")),
		})
		if n != 0 && err == nil {
			err = fmt.Errorf("n = %d", n)
		}
		errs[fmt.Sprintf("WritePreparedBatch(%d)", k)] = err
		if hub != nil {
			errs[fmt.Sprintf("Hub.Publish(%d)", k)] = hub.Publish(ctx, "t", messages.Message{Kind: k, Payload: []byte("x")})
			errs[fmt.Sprintf("Member.Publish(%d)", k)] = m.Publish(ctx, "t", messages.Message{Kind: k, Payload: []byte("x")}, topics.ToSelf())
		}
	}
	errs["WritePrepared(zero Prepared)"] = out.WritePrepared(ctx, &wsconn.Prepared{})
	return errs
}

// Every write given a kind other than text or binary returns
// ErrInvalidKind and sends nothing, with compression off and on (the
// Writer's compressor among them); WritePreparedBatch sends none of the
// batch. After closing began the same calls still say ErrInvalidKind
// (the argument is checked first), on every path alike.
func TestCornerInvalidKindSendsNothing(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			res := make(chan map[string]error, 2)
			cfg := &wsconn.Config{PingInterval: -1, FragmentSize: 2}
			opts := &handshake.AcceptOptions{}
			if deflate {
				opts.Compression = wsconn.Compression{Enabled: true}
				cfg.Compression = wsconn.Compression{Enabled: true}
			}
			hub, err := topics.NewHub(&topics.Options{Logger: quietLogger})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = hub.Close() })
			url, _ := testServerOpts(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				m := hub.Join(s.Conn, nil)
				if err := m.Subscribe("t"); err != nil {
					return err
				}
				res <- rlInvalidWrites(ctx, out, hub, m)
				if err := m.Drain(ctx); err != nil {
					return err
				}
				if err := out.WriteText(ctx, "end", wsconn.Uncompressed); err != nil {
					return err
				}
				for range in.Messages(0) {
				}
				_ = out.Close(wsconn.CloseNormal, "")
				res <- rlInvalidWrites(ctx, out, nil, nil)
				return nil
			}, opts)
			var extra http.Header
			if deflate {
				extra = http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate"}}
			}
			c, resp := handshakeRaw(t, url, extra)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if deflate && resp.Header.Get("Sec-WebSocket-Extensions") == "" {
				t.Fatal("compression not negotiated")
			}
			for name, err := range waitFor(t, res, "the writes") {
				if !errors.Is(err, wsconn.ErrInvalidKind) {
					t.Errorf("open: %s = %v, want ErrInvalidKind", name, err)
				}
			}
			// "end" goes out in 2-byte fragments: text, then continuations.
			h, p := c.read()
			if h.Op != frames.OpText || h.Rsv != 0 {
				t.Fatalf("first frame after the refused writes: %+v %q, want the text \"end\"", h, p)
			}
			got := string(p)
			for !h.Fin {
				h, p = c.read()
				if h.Op != frames.OpContinuation || h.Rsv != 0 {
					t.Fatalf("inside \"end\": %+v %q", h, p)
				}
				got += string(p)
			}
			if got != "end" {
				t.Fatalf("first message after the refused writes: %q, want \"end\"", got)
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			for name, err := range waitFor(t, res, "the writes after closing") {
				if !errors.Is(err, wsconn.ErrInvalidKind) {
					t.Errorf("closing: %s = %v, want ErrInvalidKind (as on the other paths)", name, err)
				}
			}
			h, p = c.read()
			if h.Op != frames.OpClose {
				t.Fatalf("after \"end\": %+v %q, want the CLOSE", h, p)
			}
			c.expectEOF()
		})
	}
}

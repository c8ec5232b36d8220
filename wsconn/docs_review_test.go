package wsconn_test

// Checks of what docs/handlers.md and docs/configuration.md say of the
// checks colibri makes without a loop, of compressed text, of AfterFunc
// and of SkipUTF8Check, through a loopback socket with gorilla/websocket
// as the peer.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

var drvQuiet = slog.New(slog.DiscardHandler)

// drvServe serves h with cfg on a loopback port, with handshake.Accept and
// wsconn.Serve alone, and returns the ws:// URL. Cleanup closes the server
// and waits for every connection's Serve to return.
func drvServe(t *testing.T, cfg *wsconn.Config, h wsconn.Handler[struct{}]) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{Compression: cfg.Compression})
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		_ = wsconn.Serve(context.WithoutCancel(r.Context()), u, struct{}{}, h, cfg)
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// drvDial dials url with d; the connection is closed at cleanup, before
// the server's cleanup runs.
func drvDial(t *testing.T, d *websocket.Dialer, url string) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// drvWriteOnly is a handler that never ranges: it waits for its context.
func drvWriteOnly(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
	<-ctx.Done()
	return nil
}

// drvReadOutcome reads from c until an error or a second passes, and
// returns the close code the server sent (0 when none came).
func drvReadOutcome(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
			return ce.Code
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return 0
		}
		t.Fatalf("read: %v, want a CLOSE or a timeout", err)
	}
}

// docs/handlers.md, "Reading": a frame header above MaxFrameSize fails
// the connection with 1009 as soon as it arrives, even while no loop
// ranges.
func TestWriteOnlyHandlerFailsAFrameOverMaxFrameSize(t *testing.T) {
	url := drvServe(t, &wsconn.Config{MaxFrameSize: 16, Logger: drvQuiet}, drvWriteOnly)
	c, _ := drvDial(t, websocket.DefaultDialer, url)
	if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if code := drvReadOutcome(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("a handler that never ranges: a 100-byte frame over MaxFrameSize 16 got CLOSE %d, want 1009", code)
	}
}

// docs/handlers.md, "Reading": data the peer sent just before its CLOSE
// is judged before the CLOSE is answered, even while no loop ranges, so
// that text that is not UTF-8 gets 1007 rather than the peer's 1000.
func TestWriteOnlyHandlerJudgesDataBeforeThePeersClose(t *testing.T) {
	url := drvServe(t, &wsconn.Config{Logger: drvQuiet}, drvWriteOnly)
	c, _ := drvDial(t, websocket.DefaultDialer, url)
	if err := c.WriteMessage(websocket.TextMessage, []byte{0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := drvReadOutcome(t, c); code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("a handler that never ranges: invalid text before the peer's CLOSE 1000 got CLOSE %d, want 1007", code)
	}
}

// drvBadCompressedText sends, with permessage-deflate, a text message whose
// first byte is not UTF-8 followed by 256 KiB of noise (several frames on
// the wire), its final frame held back. It returns the close code that
// came within a second (0 for none) and, for none, the one that came once
// the final frame went.
func drvBadCompressedText(t *testing.T, h wsconn.Handler[struct{}]) (mid, atEnd int) {
	t.Helper()
	cfg := &wsconn.Config{Logger: drvQuiet, Compression: wsconn.Compression{Enabled: true}}
	url := drvServe(t, cfg, h)
	c, resp := drvDial(t, &websocket.Dialer{EnableCompression: true}, url)
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("permessage-deflate not negotiated: %q", ext)
	}
	w, err := c.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan int, 1)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	go func() {
		for {
			_, _, err := c.ReadMessage()
			if err != nil {
				ce, _ := errors.AsType[*websocket.CloseError](err)
				if ce == nil {
					codes <- 0
				} else {
					codes <- ce.Code
				}
				return
			}
		}
	}()
	noise := make([]byte, 256<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(noise)
	if _, err := w.Write(append([]byte{0xff}, noise...)); err != nil {
		// The server's CLOSE came while the frames were going out.
		select {
		case code := <-codes:
			return code, 0
		case <-time.After(5 * time.Second):
			t.Fatalf("write: %v, and no CLOSE", err)
		}
	}
	select {
	case code := <-codes:
		return code, 0
	case <-time.After(time.Second):
		_ = w.Close()
		return 0, <-codes
	}
}

// docs/handlers.md, "Reading": with permessage-deflate, Messages inflates
// the whole message before it checks UTF-8, so bad text gets 1007 once
// the message is complete, not before.
func TestCompressedBadTextFailsWhenMessagesHasItWhole(t *testing.T) {
	mid, atEnd := drvBadCompressedText(t, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		return in.Err()
	})
	if mid != 0 || atEnd != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("Messages: CLOSE %d mid-message, %d at its end; want none, then 1007", mid, atEnd)
	}
}

// docs/handlers.md, "Reading": Readers checks compressed text as it
// inflates it, so bad text gets 1007 mid-message.
func TestCompressedBadTextFailsMidMessageWithReaders(t *testing.T) {
	mid, atEnd := drvBadCompressedText(t, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			if _, err := io.Copy(io.Discard, r); err != nil {
				break
			}
		}
		return in.Err()
	})
	if mid != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("Readers: CLOSE %d mid-message (%d at its end), want 1007 mid-message", mid, atEnd)
	}
}

// docs/handlers.md, "The session": unlike context.AfterFunc, once ctx has
// ended AfterFunc runs f at once in the calling goroutine, and returns
// after it.
func TestAfterFuncOnAnEndedContextRunsBeforeItReturns(t *testing.T) {
	ranFirst := make(chan bool, 1)
	url := drvServe(t, &wsconn.Config{Logger: drvQuiet}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done()
		ran := false
		stop := s.AfterFunc(func() { ran = true })
		ranFirst <- ran && !stop()
		return nil
	})
	c, _ := drvDial(t, websocket.DefaultDialer, url)
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-ranFirst:
		if !ok {
			t.Fatal("AfterFunc after ctx ended returned before f ran, or stop reported it stopped f")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context did not end after the peer's CLOSE")
	}
}

// docs/configuration.md, wsconn.Config: SkipUTF8Check skips the check of
// text messages only; a peer's CLOSE whose reason is not UTF-8 still gets
// 1007.
func TestSkipUTF8CheckStillChecksCloseReasons(t *testing.T) {
	url := drvServe(t, &wsconn.Config{SkipUTF8Check: true, Logger: drvQuiet}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	})
	c, _ := drvDial(t, websocket.DefaultDialer, url)
	// Text that is not UTF-8 passes, and comes back.
	if err := c.WriteMessage(websocket.TextMessage, []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "\xff" {
		t.Fatalf("echo of text that is not UTF-8: %q, %v", m, err)
	}
	// Code 1000, reason 0xff.
	if err := c.WriteControl(websocket.CloseMessage, []byte{0x03, 0xe8, 0xff}, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := drvReadOutcome(t, c); code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("SkipUTF8Check set: a CLOSE whose reason is not UTF-8 got CLOSE %d, want 1007", code)
	}
}

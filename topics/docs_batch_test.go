package topics_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// rvDocsDialRaw opens a WebSocket to url ("ws://host:port/path") by hand,
// with a small receive buffer so that a large message stays in flight
// while the client does not read.
func rvDocsDialRaw(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	hostPath := strings.TrimPrefix(url, "ws://")
	host, path, _ := strings.Cut(hostPath, "/")
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	nc, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, host, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return nc, br
}

// rvDocsReadMessage reads the next data message (skipping control frames).
func rvDocsReadMessage(t *testing.T, nc net.Conn, br *bufio.Reader) []byte {
	t.Helper()
	var msg []byte
	for {
		h, b, err := readFrame(nc, br, 10*time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if h.Op.IsControl() {
			continue
		}
		msg = append(msg, b...)
		if h.Fin {
			return msg
		}
	}
}

// TestMessagesBeingWrittenAreABatchNotOne: docs/topics.md,
// "Backpressure": "Both count what the member holds: the messages waiting
// and the one its sender is writing." The sender writes a batch of up to
// 16 queued messages at once, and every message of the batch has left the
// queue: DropOldest cannot evict any of them (as "Messages being written"
// on the same page says). Here the sender writes m2 and m3 as one batch
// while m4 waits; with the queue full, m5 evicts m4, the only message
// waiting, not m3, which the sentence would call the oldest waiting.
func TestMessagesBeingWrittenAreABatchNotOne(t *testing.T) {
	const big = 8 << 20
	var mu sync.Mutex
	var drops []topics.Drop
	hub := newHub(t, &topics.Options{OnDrop: func(d topics.Drop) {
		mu.Lock()
		drops = append(drops, d)
		mu.Unlock()
	}})
	joined := make(chan struct{})
	opts := &topics.MemberOptions{Policy: topics.DropOldest, Limits: topics.Limits{MaxBytes: 64 << 20, MaxMessages: 3}}
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, opts)
		if err := m.Subscribe("t"); err != nil {
			return err
		}
		close(joined)
		for range in.Messages(0) {
		}
		return in.Err()
	}
	srv := wstest.NewServer(t, wstest.Handler(struct{}{}, h, &wstest.HandlerOptions{Config: testConfig}))
	nc, br := rvDocsDialRaw(t, srv.URL()+"/")
	<-joined

	ctx := context.Background()
	pub := func(m messages.Message) {
		t.Helper()
		if err := hub.Publish(ctx, "t", m); err != nil {
			t.Fatal(err)
		}
	}
	fill := func(b byte) messages.Message { return messages.Binary(bytes.Repeat([]byte{b}, big)) }

	pub(fill(1))
	// m1 is being written: its first byte arrived, and 8 MiB do not fit in
	// the socket buffers.
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	pub(fill(2))
	pub(fill(3))
	if got := rvDocsReadMessage(t, nc, br); len(got) != big || got[0] != 1 {
		t.Fatalf("first message: %d bytes starting %v", len(got), got[:1])
	}
	// m2's first byte: the sender took its next batch, m2 and m3 (both
	// were queued), and is writing it.
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	pub(messages.Text("four")) // waits: m2, m3, m4 held
	pub(messages.Text("five")) // no room: DropOldest evicts what it can
	for i, want := range []byte{2, 3} {
		if got := rvDocsReadMessage(t, nc, br); len(got) != big || got[0] != want {
			t.Fatalf("message %d: %d bytes starting %v, want m%d", i+2, len(got), got[:1], want)
		}
	}
	if got := string(rvDocsReadMessage(t, nc, br)); got != "five" {
		t.Fatalf("after m3: %q, want \"five\" (m4 evicted)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(drops) != 1 || drops[0].Reason != topics.DropEvicted || drops[0].Bytes != 2+len("four") {
		t.Fatalf("drops %+v, want m4 evicted", drops)
	}
}

// TestPublishRefusesAMessageOfNeitherKind: docs/topics.md,
// "Brokers": "hub.Publish returns an error only when the message was not
// accepted: an invalid topic, a context already done, a closed hub, or the
// broker refusing the message". A message that is neither text nor binary
// is refused too, with wsconn.ErrInvalidKind (as Hub.Publish's godoc says),
// from a member in a live connection as from the hub.
func TestPublishRefusesAMessageOfNeitherKind(t *testing.T) {
	hub := newHub(t, nil)
	got := make(chan error, 1)
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, nil)
		got <- m.Publish(ctx, "t", messages.Message{})
		for range in.Messages(0) {
		}
		return in.Err()
	}
	srv := wstest.NewServer(t, wstest.Handler(struct{}{}, h, &wstest.HandlerOptions{Config: testConfig}))
	c := srv.Dial(t, "/", nil)
	if err := <-got; !errors.Is(err, wsconn.ErrInvalidKind) {
		t.Errorf("Member.Publish of a zero Message: %v, want ErrInvalidKind", err)
	}
	if err := hub.Publish(context.Background(), "t", messages.Message{Kind: messages.Kind(9)}); !errors.Is(err, wsconn.ErrInvalidKind) {
		t.Errorf("Hub.Publish of kind 9: %v, want ErrInvalidKind", err)
	}
	c.Close()
}

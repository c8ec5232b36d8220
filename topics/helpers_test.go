package topics_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/internal/group"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// No goroutine may outlive its connection, its hub or its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.DiscardHandler)

// testConfig is the connection config of tests: quiet, and quick to close.
var testConfig = &wsconn.Config{Logger: quiet, CloseTimeout: 200 * time.Millisecond, WriteTimeout: 5 * time.Second}

func newHub(t testing.TB, opts *topics.Options) *topics.Hub {
	t.Helper()
	if opts == nil {
		opts = &topics.Options{}
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	h, err := topics.NewHub(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// server serves connections over in-memory pipes, in a Group that the
// test shuts down at cleanup.
type server struct {
	t testing.TB
	g *group.Group
}

func newServer(t testing.TB) *server {
	s := &server{t: t, g: &group.Group{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// peer is the client end of a pipe; m is the member its connection
// joined as.
type peer struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	m      *topics.Member
	closed chan error // the handler's result
}

// join serves one connection that joins hub with opts and subscribes to
// filters, and returns its client end. The client does not read until
// the test calls read.
func (s *server) join(hub *topics.Hub, opts *topics.MemberOptions, filters ...string) *peer {
	s.t.Helper()
	return s.chat(hub, opts, "", filters...)
}

// chat is join for a connection whose handler publishes every message it
// receives to topic, as a chat room does.
func (s *server) chat(hub *topics.Hub, opts *topics.MemberOptions, topic string, filters ...string) *peer {
	s.t.Helper()
	srv, cli := net.Pipe()
	joined := make(chan *topics.Member, 1)
	p := &peer{t: s.t, nc: cli, br: bufio.NewReader(cli), closed: make(chan error, 1)}
	ctx, err := s.g.Enter(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	go func() {
		p.closed <- wsconn.Serve(ctx, wsconn.Upgraded{Conn: srv}, struct{}{},
			func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *wsconn.Session[struct{}]) error {
				m := hub.Join(sess.Conn, opts)
				for _, f := range filters {
					if err := m.Subscribe(f); err != nil {
						return err
					}
				}
				joined <- m
				for msg := range in.Messages(0) {
					if err := m.Publish(ctx, topic, msg); err != nil {
						return err
					}
				}
				return in.Err()
			}, testConfig)
	}()
	s.t.Cleanup(func() { cli.Close() })
	p.m = <-joined
	return p
}

// hold returns once the member's sender is writing a message, which then
// stays in flight until the client reads on: it reads the message's first
// byte straight from the pipe, whose writer blocks until all is read.
func (p *peer) hold() {
	p.t.Helper()
	var b [1]byte
	_ = p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(p.nc, b[:]); err != nil {
		p.t.Fatalf("hold: %v", err)
	}
	p.br = bufio.NewReader(io.MultiReader(bytes.NewReader(b[:]), p.nc))
}

// read returns the next frame the server sent.
func (p *peer) read() (frames.Header, []byte) {
	p.t.Helper()
	h, b, err := readFrame(p.nc, p.br, 5*time.Second)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return h, b
}

func readFrame(nc net.Conn, br *bufio.Reader, timeout time.Duration) (frames.Header, []byte, error) {
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	var hb [frames.MaxHeaderSize]byte
	if _, err := io.ReadFull(br, hb[:2]); err != nil {
		return frames.Header{}, nil, err
	}
	n := frames.HeaderSize(hb[0], hb[1])
	if _, err := io.ReadFull(br, hb[2:n]); err != nil {
		return frames.Header{}, nil, err
	}
	h, err := frames.ParseHeader(hb[:n])
	if err != nil {
		return h, nil, err
	}
	b := make([]byte, h.Length)
	_, err = io.ReadFull(br, b)
	return h, b, err
}

// text reads the next message, which must be a text frame.
func (p *peer) text() string {
	p.t.Helper()
	h, b := p.read()
	if h.Op != frames.OpText {
		p.t.Fatalf("got %v frame %q, want text", h.Op, b)
	}
	return string(b)
}

// silent checks that nothing arrives for a while.
func (p *peer) silent() {
	p.t.Helper()
	if h, b, err := readFrame(p.nc, p.br, 30*time.Millisecond); err == nil {
		p.t.Fatalf("unexpected %v frame %q", h.Op, b)
	}
}

// send writes a masked text frame, as a client does.
func (p *peer) send(s string) {
	p.t.Helper()
	h := frames.Header{Op: frames.OpText, Fin: true, Masked: true, Length: int64(len(s))}
	_, _ = rand.Read(h.Mask[:])
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h)
	b := append(hb[:n:n], s...)
	frames.Mask(b[n:], h.Mask, 0)
	_ = p.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func text(s string) messages.Message {
	return messages.Text(s)
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dropLog collects what OnDrop reports.
type dropLog struct {
	mu    sync.Mutex
	drops []topics.Drop
}

func (l *dropLog) add(d topics.Drop) {
	l.mu.Lock()
	l.drops = append(l.drops, d)
	l.mu.Unlock()
}

func (l *dropLog) count(r topics.DropReason) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.drops {
		if d.Reason == r {
			n++
		}
	}
	return n
}

func (l *dropLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.drops)
}

// blockScene is the scene of the Block tests: a Block member whose client
// stalled in the middle of a large message first, a fast member that got
// first and then, and a Publish of then that waits for the slow member.
type blockScene struct {
	hub       *topics.Hub
	drops     *dropLog
	slow      *gorilla.Conn
	slowM     *topics.Member
	rest      io.Reader // the rest of first, for the slow client to read
	published <-chan error
}

// blockWaiting sets up a blockScene whose waiting Publish of then runs with ctx.
func blockWaiting(t *testing.T, ctx context.Context, first, then string) blockScene {
	t.Helper()
	drops := &dropLog{}
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 1, MaxBytes: 8 << 20}})
	slowSrv := serveLoopback(t, hub, &topics.MemberOptions{Policy: topics.Block(time.Minute)}, "t")
	fastSrv := serveLoopback(t, hub, &topics.MemberOptions{Policy: topics.DropNewest, Limits: topics.Limits{MaxMessages: 64}}, "t")
	slow, slowM := slowSrv.dial(t)
	fast, _ := fastSrv.dial(t)

	publish(t, hub, "t", big(first))
	rest := stalled(t, slow)
	if got := next(t, fast); got != first {
		t.Fatalf("fast client got %q", got)
	}
	published := make(chan error, 1)
	go func() { published <- hub.Publish(ctx, "t", messages.Text(then)) }()
	// The fast member has then: the publisher has passed the members with
	// room and waits (or is about to) for the slow one.
	if got := next(t, fast); got != then {
		t.Fatalf("fast client got %q", got)
	}
	return blockScene{hub: hub, drops: drops, slow: slow, slowM: slowM, rest: rest, published: published}
}

package main

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// coder/websocket, following its echo and chat examples: echo streams each
// message from Conn.Reader to Conn.Writer inside the HTTP handler;
// broadcast gives every subscriber a small buffered queue that a publisher
// never blocks on, and closes a subscriber that lets its queue fill.
//
// Two parts of the examples are left out because they are demo policy,
// not library use: the echo example's rate limiter (ten messages a second
// would be the whole benchmark) and its ten-second budget per message,
// which would also close an idle connection after ten seconds.

func init() {
	register(handlerServer{lib: "coder", newHandler: newCoderHandler})
}

const (
	// coderSubscriberQueue is the chat example's per-subscriber buffer.
	coderSubscriberQueue = 16
	// coderWriteTimeout bounds each broadcast write, as in the example.
	coderWriteTimeout = 5 * time.Second
)

func newCoderHandler() http.Handler {
	hub := &coderHub{subscribers: make(map[*coderSubscriber]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// nil options: compression disabled, default read limit.
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		// The library advises against r.Context() after the hijack.
		ctx := context.Background()
		for {
			if err := coderEcho(ctx, c); err != nil {
				return // a close from the peer or a broken connection
			}
		}
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		_ = hub.subscribe(w, r)
	})
	return mux
}

// coderEcho copies one message back to the peer with the type it came in.
func coderEcho(ctx context.Context, c *websocket.Conn) error {
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return err
	}
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Close()
}

// coderHub is the set of subscribers of the broadcast endpoint.
type coderHub struct {
	mu          sync.Mutex
	subscribers map[*coderSubscriber]struct{}
}

type coderSubscriber struct {
	msgs      chan coderMessage
	closeSlow func()
}

type coderMessage struct {
	typ  websocket.MessageType
	data []byte
}

// subscribe accepts the connection, registers it as a subscriber and then
// writes what is published to it, while a second goroutine reads what this
// connection publishes. It returns when either side fails.
func (h *coderHub) subscribe(w http.ResponseWriter, r *http.Request) error {
	var (
		mu     sync.Mutex
		c      *websocket.Conn
		closed bool
	)
	s := &coderSubscriber{
		msgs: make(chan coderMessage, coderSubscriberQueue),
		closeSlow: func() {
			mu.Lock()
			defer mu.Unlock()
			closed = true
			if c != nil {
				_ = c.Close(websocket.StatusPolicyViolation, "too slow to keep up")
			}
		},
	}
	h.add(s)
	defer h.remove(s)

	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return err
	}
	mu.Lock()
	if closed {
		mu.Unlock()
		_ = conn.CloseNow()
		return nil
	}
	c = conn
	mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			h.publish(coderMessage{typ: typ, data: data})
		}
	}()
	defer func() { <-readDone }()
	defer c.CloseNow() // ends the reader if the writer stops first

	for {
		select {
		case m := <-s.msgs:
			if err := coderWrite(ctx, c, m); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// coderWrite writes m within coderWriteTimeout.
func coderWrite(ctx context.Context, c *websocket.Conn, m coderMessage) error {
	ctx, cancel := context.WithTimeout(ctx, coderWriteTimeout)
	defer cancel()
	return c.Write(ctx, m.typ, m.data)
}

// publish queues m for every subscriber without blocking; a subscriber
// whose queue is full is closed.
func (h *coderHub) publish(m coderMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subscribers {
		select {
		case s.msgs <- m:
		default:
			go s.closeSlow()
		}
	}
}

func (h *coderHub) add(s *coderSubscriber) {
	h.mu.Lock()
	h.subscribers[s] = struct{}{}
	h.mu.Unlock()
}

func (h *coderHub) remove(s *coderSubscriber) {
	h.mu.Lock()
	delete(h.subscribers, s)
	h.mu.Unlock()
}

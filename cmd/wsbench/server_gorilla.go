package main

import (
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// gorilla/websocket, following its echo and chat examples: the echo
// handler reads and writes inside the HTTP handler; broadcast uses the
// chat example's hub, one goroutine that owns the set of clients, with a
// read pump and a write pump per client.

func init() {
	register(handlerServer{lib: "gorilla", newHandler: newGorillaHandler})
}

const (
	// gorillaWriteWait bounds each write, as in the chat example.
	gorillaWriteWait = 10 * time.Second
	// gorillaSendQueue is a client's outbound queue; a client whose queue
	// is full is dropped (the chat example's policy and size).
	gorillaSendQueue = 256
)

func newGorillaHandler() http.Handler {
	// The zero Upgrader: default buffer sizes, no compression.
	up := &websocket.Upgrader{}
	hub := &gorillaHub{
		clients:    make(map[*gorillaClient]bool),
		broadcast:  make(chan gorillaMessage),
		register:   make(chan *gorillaClient),
		unregister: make(chan *gorillaClient),
	}
	// The hub lives as long as the server process.
	go hub.run()

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has already answered the request.
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		cl := &gorillaClient{hub: hub, conn: c, send: make(chan gorillaMessage, gorillaSendQueue)}
		hub.register <- cl
		// The pumps own the connection; returning lets net/http release
		// the request.
		go cl.writePump()
		go cl.readPump()
	})
	return mux
}

// gorillaHub owns the set of connected clients; every change to it and
// every broadcast goes through its run loop.
type gorillaHub struct {
	clients    map[*gorillaClient]bool
	broadcast  chan gorillaMessage
	register   chan *gorillaClient
	unregister chan *gorillaClient
}

func (h *gorillaHub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
			}
		case msg := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- msg:
				default:
					// Too slow to keep up: drop it.
					delete(h.clients, c)
					close(c.send)
				}
			}
		}
	}
}

type gorillaClient struct {
	hub  *gorillaHub
	conn *websocket.Conn
	send chan gorillaMessage
}

// gorillaMessage is a broadcast message with its type, so that
// subscribers get it as the publisher sent it.
type gorillaMessage struct {
	typ  int
	data []byte
}

// readPump hands every message this client publishes to the hub.
func (c *gorillaClient) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.hub.broadcast <- gorillaMessage{typ: typ, data: data}
	}
}

// writePump writes what the hub queues for this client, one message per
// frame. (The chat example joins queued chat lines into one message;
// wsbench counts messages, so each stays whole.) The benchmark's scenarios
// are far shorter than a keep-alive period, so the example's ping ticker
// is left out here as it is in every other server.
func (c *gorillaClient) writePump() {
	defer c.conn.Close()
	for msg := range c.send {
		_ = c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
		if err := c.conn.WriteMessage(msg.typ, msg.data); err != nil {
			return
		}
	}
	// The hub closed the queue.
	_ = c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
	_ = c.conn.WriteMessage(websocket.CloseMessage, []byte{})
}

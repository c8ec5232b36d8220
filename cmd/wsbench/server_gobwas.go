package main

import (
	"net"
	"net/http"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// gobwas/ws, following its README: ws.UpgradeHTTP in the handler, then a
// goroutine per connection that reads with wsutil.ReadClientData and
// writes with wsutil.WriteServerMessage, with the README's recommended
// 1 MiB message limit. gobwas/ws has no broadcast helper; the broadcast
// endpoint keeps its connections in a set and writes each message to
// every one of them from the publisher's goroutine, under a per-connection
// lock because a gobwas connection is a plain net.Conn.

func init() {
	register(handlerServer{lib: "gobwas", newHandler: newGobwasHandler})
}

func newGobwasHandler() http.Handler {
	wsutil.SetMaxMessageSize(1 << 20)
	room := &gobwasRoom{peers: make(map[*gobwasPeer]struct{})}

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("/broadcast", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		p := &gobwasPeer{conn: conn}
		room.add(p)
		go func() {
			defer conn.Close()
			defer room.remove(p)
			for {
				// Control frames (the client's final close) are answered
				// inside ReadClientData; wsbench sends none while a
				// broadcast can be writing to the same connection.
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				room.broadcast(op, msg)
			}
		}()
	})
	return mux
}

type gobwasPeer struct {
	mu   sync.Mutex // serializes whole messages written to conn
	conn net.Conn
}

type gobwasRoom struct {
	mu    sync.RWMutex
	peers map[*gobwasPeer]struct{}
}

func (r *gobwasRoom) add(p *gobwasPeer) {
	r.mu.Lock()
	r.peers[p] = struct{}{}
	r.mu.Unlock()
}

func (r *gobwasRoom) remove(p *gobwasPeer) {
	r.mu.Lock()
	delete(r.peers, p)
	r.mu.Unlock()
}

// broadcast writes the message to every peer. A peer whose write fails is
// closed; its reader goroutine then removes it.
func (r *gobwasRoom) broadcast(op ws.OpCode, msg []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for p := range r.peers {
		p.mu.Lock()
		err := wsutil.WriteServerMessage(p.conn, op, msg)
		p.mu.Unlock()
		if err != nil {
			_ = p.conn.Close()
		}
	}
}

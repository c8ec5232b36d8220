package main

import (
	"net/http"

	"github.com/lxzan/gws"
)

// lxzan/gws, following its README and examples: the HTTP handler upgrades
// and starts the connection's read loop in a new goroutine so that the
// request can be collected; events arrive on an event handler. Echo writes
// the message back from OnMessage; broadcast keeps connections in a
// gws.ConcurrentMap (as the chat room example does) and sends each message
// with a gws.Broadcaster, which encodes the frame once and queues it on
// every connection's asynchronous writer.

func init() {
	register(handlerServer{lib: "gws", newHandler: newGWSHandler})
}

func newGWSHandler() http.Handler {
	room := &gwsRoom{conns: gws.NewConcurrentMap[*gws.Conn, struct{}]()}
	// nil options: default buffers and limits, compression disabled.
	echo := gws.NewUpgrader(gwsEcho{}, nil)
	broadcast := gws.NewUpgrader(room, nil)

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", gwsServe(echo))
	mux.HandleFunc("/broadcast", gwsServe(broadcast))
	return mux
}

func gwsServe(up *gws.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		socket, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	}
}

// gwsEcho writes every message back with its opcode.
type gwsEcho struct {
	gws.BuiltinEventHandler
}

func (gwsEcho) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	_ = socket.WriteMessage(message.Opcode, message.Bytes())
}

// gwsRoom is the broadcast endpoint's set of connections.
type gwsRoom struct {
	gws.BuiltinEventHandler
	conns *gws.ConcurrentMap[*gws.Conn, struct{}]
}

func (r *gwsRoom) OnOpen(socket *gws.Conn) { r.conns.Store(socket, struct{}{}) }

func (r *gwsRoom) OnClose(socket *gws.Conn, _ error) { r.conns.Delete(socket) }

func (r *gwsRoom) OnMessage(_ *gws.Conn, message *gws.Message) {
	defer message.Close()
	b := gws.NewBroadcaster(message.Opcode, message.Bytes())
	defer b.Close()
	r.conns.Range(func(c *gws.Conn, _ struct{}) bool {
		_ = b.Broadcast(c)
		return true
	})
}

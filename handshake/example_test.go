package handshake_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// Serving WebSocket connections with net/http, handshake and wsconn
// alone: Accept answers the handshake, and wsconn.Serve runs the handler
// in the HTTP handler's goroutine until the connection is over. Most
// applications let the router package do this; it also counts the
// connections and shuts them down with 1001.
func ExampleAccept() {
	greet := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		// s.Value is what the HTTP handler passed to Serve.
		return out.WriteText(ctx, fmt.Sprintf("hello %s, you speak %s", s.Value, s.Subprotocol()))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{Subprotocols: []string{"chat.v2", "chat.v1"}})
		if err != nil {
			return // Accept has written the HTTP error (400, 403, 405, 426)
		}
		// Serve in the HTTP handler's goroutine, until the connection is
		// over; it closes with 1001 if the context given to Serve ends.
		// (wsconn.Start would run it in a goroutine of its own, as the
		// router does.)
		_ = wsconn.Serve(r.Context(), u, r.URL.Query().Get("name"), greet, nil)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1, a free port
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?name=ada"

	d := websocket.Dialer{Subprotocols: []string{"chat.v1"}}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	_, _, err = c.ReadMessage() // the handler returned nil
	fmt.Println(err)

	// A cross-site page is refused before any socket exists.
	_, resp, _ := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example"}})
	fmt.Println(resp.StatusCode)
	// Output:
	// hello ada, you speak chat.v1
	// websocket: close 1000 (normal)
	// 403
}

// Extensions travel as wsconn.Extension values: ParseExtensions reads the
// Sec-WebSocket-Extensions header of a request (or of a response), and
// Extension.String formats one for the header. Accept answers a
// permessage-deflate offer this way; wsconn.Conn.Extensions returns the
// result.
func ExampleParseExtensions() {
	offers, err := handshake.ParseExtensions("permessage-deflate; server_max_window_bits=10; client_max_window_bits, x-webkit-deflate-frame")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range offers {
		bits, ok := o.Param("server_max_window_bits")
		fmt.Printf("offer %s (server window %q, %v)\n", o.Name, bits, ok)
	}
	fmt.Println(offers[0])
	// Output:
	// offer permessage-deflate (server window "10", true)
	// offer x-webkit-deflate-frame (server window "", false)
	// permessage-deflate; server_max_window_bits=10; client_max_window_bits
}

// CheckOrigin refuses a cross-site handshake with 403 unless the page's
// host matches one of the patterns; a request without Origin (not a
// browser) passes. Accept runs it unless AcceptOptions.SkipOriginCheck is
// set.
func ExampleCheckOrigin() {
	patterns := []string{"*.example.com"}
	for _, origin := range []string{"", "https://chat.example.com", "https://evil.example", "null"} {
		r := httptest.NewRequest(http.MethodGet, "http://chat.example.com/ws", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if e := handshake.CheckOrigin(r, patterns); e != nil {
			fmt.Printf("%q: %d\n", origin, e.Status)
			continue
		}
		fmt.Printf("%q: ok\n", origin)
	}
	// Output:
	// "": ok
	// "https://chat.example.com": ok
	// "https://evil.example": 403
	// "null": 403
}

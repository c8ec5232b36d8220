package wsclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// echoServer starts a colibri echo server on loopback for the examples and
// returns its ws:// URL and a function that stops it.
func echoServer() (string, func()) {
	echo := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	}
	srv := httptest.NewServer(wstest.Handler(struct{}{}, echo, nil))
	return "ws" + strings.TrimPrefix(srv.URL, "http"), srv.Close
}

// Run dials and serves a handler of the same shape as a server's: write,
// read the answer, and return to close with 1000.
func ExampleRun() {
	url, stop := echoServer()
	defer stop()

	err := wsclient.Run(context.Background(), url+"/echo", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		fmt.Println("status:", s.Value.Status)
		if err := out.WriteText(ctx, "hello"); err != nil {
			return err
		}
		for m := range in.Messages(0) {
			fmt.Println("got:", m.Text())
			return nil // closes the connection with 1000
		}
		return in.Err()
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// status: 101 Switching Protocols
	// got: hello
}

// Dial returns the upgraded connection for wsconn.Serve, which lets the
// caller hand the handler a value of its own.
func ExampleDial() {
	url, stop := echoServer()
	defer stop()

	type account struct{ name string }
	ctx := context.Background()
	u, _, err := wsclient.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = wsconn.Serve(ctx, u, account{name: "ann"}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[account]) error {
		if err := out.WriteText(ctx, "hi from "+s.Value.name); err != nil {
			return err
		}
		for m := range in.Messages(0) {
			fmt.Println(m.Text())
			break
		}
		return nil
	}, &wsconn.Config{PingInterval: 15 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	// Output: hi from ann
}

// A refused handshake comes back as a *HandshakeError with the server's
// status, headers and body.
func ExampleHandshakeError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "token required", http.StatusUnauthorized)
	}))
	defer srv.Close()

	_, _, err := wsclient.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	var he *wsclient.HandshakeError
	if errors.As(err, &he) {
		fmt.Println(he.StatusCode, he.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(he.Body)))
	}
	fmt.Println(errors.Is(err, wsclient.ErrHandshake))
	// Output:
	// 401 Bearer token required
	// true
}

// Options for a service behind a proxy, with a token, a subprotocol,
// keep-alive and a message size limit. (Not run: it needs the service.)
func ExampleOptions() {
	proxy, _ := url.Parse("http://user:secret@proxy.internal:3128")
	opts := &wsclient.Options{
		Header:           http.Header{"Authorization": {"Bearer " + "token"}},
		Subprotocols:     []string{"feed.v2", "feed.v1"},
		HandshakeTimeout: 10 * time.Second,
		Proxy:            http.ProxyURL(proxy), // nil: from HTTP_PROXY / HTTPS_PROXY
		Config: &wsconn.Config{
			PingInterval:   20 * time.Second,
			MaxMessageSize: 4 << 20,
		},
	}
	err := wsclient.Run(context.Background(), "wss://feed.example.com/v2/stream", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		log.Printf("connected, speaking %s", s.Subprotocol())
		for m := range in.Messages(0) {
			log.Printf("%d bytes", len(m.Payload))
		}
		return in.Err()
	}, opts)
	if err != nil {
		log.Print(err)
	}
}

// Compression is switched on in the connection's config: Dial offers
// permessage-deflate and the connection applies it once the server
// accepts.
func ExampleOptions_compression() {
	echo := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	}
	compress := &wsconn.Config{Compression: wsconn.Compression{Enabled: true}}
	srv := httptest.NewServer(wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{Config: compress}))
	defer srv.Close()

	opts := &wsclient.Options{Config: &wsconn.Config{Compression: wsconn.Compression{Enabled: true}}}
	err := wsclient.Run(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		fmt.Println("negotiated:", s.Value.Header.Get("Sec-WebSocket-Extensions"))
		if err := out.WriteText(ctx, strings.Repeat("squeeze ", 1000)); err != nil {
			return err
		}
		for m := range in.Messages(0) {
			fmt.Println("echoed", len(m.Payload), "bytes")
			break
		}
		return nil
	}, opts)
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// negotiated: permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// echoed 8000 bytes
}

// Package memprobe measures what an idle WebSocket connection costs a
// colibri server, split by allocation site. It has no code of its own: the
// measurement is an opt-in test, run with
//
//	COLIBRI_MEMPROBE=1 go test -run Idle -v ./internal/memprobe
//
// It serves the echo route through router and app, opens idle connections
// with raw sockets from the same process (no client goroutines), and
// reports the heap and stack they hold per connection after the runtime
// has had the chance to shrink idle stacks. COLIBRI_MEMPROBE_ECHO=1 has
// every connection exchange one message before it goes idle, the state of
// most connections in a real application.
package memprobe

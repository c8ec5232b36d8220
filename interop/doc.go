// Package interop holds colibri's interop suite: its tests drive a colibri
// application from the WebSocket clients people use (Node's ws, Python's
// websockets, Chromium, gorilla/websocket, coder/websocket), run colibri's
// client against Node's and Python's servers, and check permessage-deflate
// windows against Python's zlib. It has no API.
//
// The suite runs with the other tests (go test ./...). A client that is
// not installed is skipped with a notice on the terminal; with
// COLIBRI_INTEROP_TEST=required, as .ci/run sets it, a missing client
// fails the suite instead. docs/testing.md lists the clients, their
// versions and the cases each runs.
package interop

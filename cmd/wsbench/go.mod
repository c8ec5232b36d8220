module github.com/colibri-ws/colibri/cmd/wsbench

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/colibri-ws/colibri v0.0.0
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	github.com/lxzan/gws v1.8.9
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	golang.org/x/sync v0.24.0 // indirect
)

// wsbench measures the colibri in this repository, not a published one.
replace github.com/colibri-ws/colibri => ../..

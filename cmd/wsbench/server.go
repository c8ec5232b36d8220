package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A server is one library's side of the comparison. It serves two
// WebSocket endpoints, written the way that library's own documentation
// recommends, with its default buffer sizes and with compression off:
//
//	/echo       every text or binary message comes back with the same type
//	/broadcast  every connection is a subscriber; a message received on any
//	            connection is sent to all of them, the sender included
//
// and hands everything under /debug/ to the debug handler wsbench gives it,
// which the driver uses to count goroutines and to run the garbage
// collector before it samples memory.
//
// serve runs in its own child process (wsbench serve), one process per
// scenario, so that the driver can measure the process from outside. It
// serves on ln until ctx is done and then returns; connections still open
// at that point may be left to the process's exit.
//
// To add a library, write one file, server_NAME.go, whose init function
// calls register. A library whose endpoints are a plain http.Handler
// registers a handlerServer; one whose application owns the listener and
// its connections' lifetimes implements server itself.
type server interface {
	// name is the library's short name: the value -libs takes and the
	// heading of the library's column.
	name() string
	serve(ctx context.Context, ln net.Listener, debug http.Handler) error
}

// handlerServer is a server whose endpoints are one http.Handler, served
// by a plain net/http server.
type handlerServer struct {
	lib string
	// newHandler builds the handler for /echo and /broadcast. It is called
	// once per process, before the first connection is accepted.
	newHandler func() http.Handler
}

func (s handlerServer) name() string { return s.lib }

func (s handlerServer) serve(ctx context.Context, ln net.Listener, dbg http.Handler) error {
	return serveHTTP(ctx, ln, s.newHandler(), dbg)
}

// serveHTTP serves h on ln, with dbg under /debug/, until ctx is done.
func serveHTTP(ctx context.Context, ln net.Listener, h, dbg http.Handler) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/debug/") {
				dbg.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Close stops the listener and the connections net/http still owns.
	// Hijacked WebSocket connections end with the process.
	err := srv.Close()
	<-errc
	return err
}

// registry holds every library wsbench knows, by name.
var registry = map[string]server{}

// register adds s to the libraries wsbench can compare. It is meant for
// init functions and panics on a duplicate name.
func register(s server) {
	n := s.name()
	if n == "" || strings.ContainsAny(n, ", ") {
		panic(fmt.Sprintf("wsbench: bad library name %q", n))
	}
	if _, dup := registry[n]; dup {
		panic("wsbench: library registered twice: " + n)
	}
	registry[n] = s
}

// colibri is the library the comparison is about: it gets the first column,
// and the other libraries ("peers") set the baseline it is measured against.
const colibri = "colibri"

// libKind says what a library's column is for.
type libKind int

const (
	// peerLib is another WebSocket library: the best peer's figure in a
	// row is the baseline of that row's ratios.
	peerLib libKind = iota
	// colibriLib is colibri as its users get it.
	colibriLib
	// variantLib is colibri configured otherwise, labelled in its name.
	variantLib
	// floorLib is not a WebSocket library at all: the same work over plain
	// TCP, the least a server can do.
	floorLib
)

// A kinded server says what its column is for; servers that do not are
// peers.
type kinded interface{ kind() libKind }

// kindOf returns the kind of the library named lib.
func kindOf(lib string) libKind {
	if k, ok := registry[lib].(kinded); ok {
		return k.kind()
	}
	return peerLib
}

// libraryNames returns every registered library: colibri and its variants
// first, then the peers in alphabetical order, then the floor.
func libraryNames() []string {
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	rank := func(n string) int {
		switch kindOf(n) {
		case colibriLib:
			return 0
		case variantLib:
			return 1
		case floorLib:
			return 3
		}
		return 2
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return names
}

// debugHandler serves the two endpoints the driver reads between scenario
// steps:
//
//	/debug/goroutines  runtime.NumGoroutine() as a decimal number
//	/debug/gc          a full collection that also returns freed memory to
//	                   the operating system, so that RSS reflects live memory
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/goroutines", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strconv.Itoa(runtime.NumGoroutine()))
	})
	mux.HandleFunc("POST /debug/gc", func(w http.ResponseWriter, _ *http.Request) {
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})
	// For profiling a server started with "wsbench serve".
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

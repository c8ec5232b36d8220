package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// serveMain is "wsbench serve": it runs one library's server in this
// process until standard input closes or SIGTERM (or SIGINT) arrives. Its
// first and only line on standard output is the address it listens on,
// which is how the driver learns the port when -addr asks for port 0.
func serveMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsbench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lib := fs.String("lib", "", "library to serve: "+strings.Join(libraryNames(), ", "))
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (loopback only)")
	cpu := fs.Int("cpu", -1, "bind the server to this CPU, with GOMAXPROCS 1 (-1: unbound)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s, ok := registry[*lib]
	if !ok {
		fmt.Fprintf(stderr, "wsbench serve: unknown library %q (have %s)\n", *lib, strings.Join(libraryNames(), ", "))
		return 2
	}
	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintf(stderr, "wsbench serve: %v\n", err)
		return 2
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "wsbench serve: %v\n", err)
	}
	if *cpu >= 0 {
		if err := pinProcess(*cpu); err != nil {
			fmt.Fprintf(stderr, "wsbench serve: %v\n", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The driver holds our standard input open for as long as it
		// wants the server; EOF (or its death) is the signal to stop.
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "wsbench serve: %v\n", err)
		return 1
	}
	if _, err := fmt.Fprintln(stdout, ln.Addr().String()); err != nil {
		fmt.Fprintf(stderr, "wsbench serve: %v\n", err)
		return 1
	}
	if err := s.serve(ctx, ln, debugHandler()); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "wsbench serve: %s: %v\n", *lib, err)
		return 1
	}
	return 0
}

// checkLoopback refuses to listen or dial anywhere but the loopback
// range: wsbench is a load generator, and its traffic stays on this
// machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback address", addr)
	}
	return nil
}

// raiseFileLimit lifts the soft limit on open files to the hard limit:
// the idle-connection scenario holds thousands of sockets in both the
// driver and the server.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-file limit: %w", err)
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the open-file limit: %w", err)
	}
	return nil
}

// fileLimit reports the soft limit on open files, or 0 if it is unknown.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

// Command wsbench compares WebSocket server libraries side by side; it is
// where colibri's performance figures come from.
//
// Usage:
//
//	wsbench run [-quick] [-libs a,b] [-scenarios s,t] [-json FILE] [flags]
//	wsbench capacity [-quick] [-json FILE] [flags]
//	wsbench render -run FILE -capacity FILE [-docs DIR]
//	wsbench serve -lib NAME [-addr 127.0.0.1:0] [-cpu N]
//	wsbench nats | node [flags]
//
// "run" is the driver. For every scenario and every library it starts a
// fresh "wsbench serve" child process, measures it with the same load
// client (gobwas/ws frames on raw TCP, in the driver's process) and from
// outside (RSS from /proc, goroutines from the child's debug endpoint),
// then stops it. It prints the machine, then one table: a row per figure,
// a column per library, each figure with its ratio to the best peer's.
//
// The scenarios:
//
//	echo32, echo16k  64 connections each send a binary message and wait for
//	                 its echo, in a loop, for a fixed time: messages/second
//	latency          one connection, one 32-byte message at a time: p50, p99
//	fanout           1,000 subscribers and a publisher on the broadcast
//	                 endpoint; each batch of 64-byte messages must reach
//	                 every connection before the next: deliveries/second
//	idle             10,000 idle connections: server RSS and goroutines
//	                 per connection, after garbage collection
//	handshake        1,000 connections opened one after another: mean time
//
// Each scenario runs in rounds (-rounds, 5), the libraries in a rotated
// order each round; the table has each figure's median, and its ratio to
// the best peer's taken within each round. With -pin (on when the machine
// has two CPUs) the load client runs on CPU 0 and each server on CPU 1,
// each with GOMAXPROCS 1.
//
// The colibri column runs colibri with its defaults, keep-alive on;
// colibri-lean has keep-alive off, and rawtcp is the same echo over plain
// TCP, the floor (not a WebSocket). With -json FILE, run also writes SVG
// charts beside FILE; on a terminal it keeps a progress line up to date.
//
// "capacity" measures colibri's cost model: memory per idle socket and per
// socket receiving a large message, CPU per handshake, per echoed message
// and per local and remote delivery, and, with two colibri nodes ("node")
// sharing a topic through a NATS server ("nats"), each in its own
// process, publish-to-receipt latency across nodes and what a NATS outage
// costs. "render" rewrites the generated parts of docs/performance.md and
// docs/capacity.md, and their charts, from the two results files.
//
// "serve" runs one library's server until standard input closes or
// SIGTERM arrives, printing the address it listens on as its only line of
// output. Each library is one file, server_NAME.go; see the server type.
//
// Traffic never leaves the loopback interface, every loop is bounded, and
// the defaults keep a full run of the seven columns to about ten minutes
// on two cores; -quick is a smoke run of about a minute.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// dispatch runs the subcommand named by args[0] and returns the exit code.
func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := run(ctx, args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "wsbench: %v\n", err)
			return 1
		}
		return 0
	case "serve":
		return serveMain(args[1:], stdin, stdout, stderr)
	case "capacity":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := capacityMain(ctx, args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "wsbench: %v\n", err)
			return 1
		}
		return 0
	case "render":
		if err := renderMain(args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "wsbench: %v\n", err)
			return 1
		}
		return 0
	case "nats":
		return natsMain(args[1:], stdin, stdout, stderr)
	case "node":
		return nodeMain(args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "wsbench: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  wsbench run [flags]          compare the libraries (wsbench run -h for flags)
  wsbench serve -lib NAME      run one library's server (started by run)
  wsbench capacity [flags]     measure colibri's cost model and cross-node figures
  wsbench render [flags]       rewrite the docs' tables and charts from results files
  wsbench nats | node          a NATS server, a colibri node (started by capacity)
`)
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// The cross-node scenarios run three processes besides the driver, each a
// wsbench subcommand that prints its address and runs until its standard
// input closes:
//
//	wsbench nats   a NATS server, embedded from its Go module
//	wsbench node   a colibri node: defaults on, a topics hub whose broker
//	               is natsbroker, and the /cluster endpoint
//
// The driver may also kill the NATS process outright and start it again
// on the same ports, which is how the outage scenario breaks the link
// between the nodes.

// untilStdinCloses returns a context that ends when standard input closes
// (the driver is done with this process, or died) or on SIGTERM/SIGINT.
func untilStdinCloses(stdin io.Reader) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	return ctx, func() { cancel(); stop() }
}

// natsMain is "wsbench nats": a NATS server on -addr, with its monitoring
// endpoint (for /varz) on -http. Its line of output is "ADDR HTTPADDR".
func natsMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsbench nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "client address (loopback only)")
	httpAddr := fs.String("http", "127.0.0.1:0", "monitoring address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, port, err := splitLoopback(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "wsbench nats: %v\n", err)
		return 2
	}
	hhost, hport, err := splitLoopback(*httpAddr)
	if err != nil {
		fmt.Fprintf(stderr, "wsbench nats: %v\n", err)
		return 2
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	if hport == 0 {
		hport = natsserver.RANDOM_PORT
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: host, Port: port, HTTPHost: hhost, HTTPPort: hport,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		fmt.Fprintf(stderr, "wsbench nats: %v\n", err)
		return 1
	}
	ctx, stop := untilStdinCloses(stdin)
	defer stop()
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(stderr, "wsbench nats: the server is not ready after 10s")
		ns.Shutdown()
		return 1
	}
	fmt.Fprintf(stdout, "%s %s\n", ns.Addr(), ns.MonitorAddr())
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return 0
}

// splitLoopback splits a loopback host:port.
func splitLoopback(addr string) (string, int, error) {
	if err := checkLoopback(addr); err != nil {
		return "", 0, err
	}
	host, p, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(p)
	return host, port, err
}

// nodeStats is what a node reports on /debug/stats.
type nodeStats struct {
	Hub           topics.Stats      `json:"hub"`
	BrokerLost    int64             `json:"broker_lost"`
	Losses        natsbroker.Losses `json:"broker_losses"`
	PublishErrors int64             `json:"publish_errors"`
	Reconnects    uint64            `json:"nats_reconnects"`
	Connected     bool              `json:"nats_connected"`
	NATSOutMsgs   uint64            `json:"nats_out_msgs"`
	NATSInMsgs    uint64            `json:"nats_in_msgs"`
}

// clusterTopic is the topic every connection to /cluster subscribes to.
const clusterTopic = "bench/cluster"

// nodeMain is "wsbench node": colibri as its users get it (defaults on),
// with a topics hub on NATS. Every connection to /cluster joins the hub
// and subscribes to clusterTopic; every message it sends is published
// there (not back to itself). /debug/stats reports the hub's and the
// broker's counters as JSON.
func nodeMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsbench node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (loopback only)")
	natsURL := fs.String("nats", "", "NATS server URL (loopback only), nats://HOST:PORT")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintf(stderr, "wsbench node: %v\n", err)
		return 2
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "wsbench node: %v\n", err)
	}
	var hostPort string
	if _, err := fmt.Sscanf(*natsURL, "nats://%s", &hostPort); err != nil || checkLoopback(hostPort) != nil {
		fmt.Fprintf(stderr, "wsbench node: -nats must be nats://HOST:PORT on loopback, not %q\n", *natsURL)
		return 2
	}
	ctx, stop := untilStdinCloses(stdin)
	defer stop()
	if err := runNode(ctx, *addr, *natsURL, stdout); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "wsbench node: %v\n", err)
		return 1
	}
	return 0
}

func runNode(ctx context.Context, addr, natsURL string, stdout io.Writer) error {
	quiet := slog.New(slog.DiscardHandler)
	nc, err := natsbroker.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	broker := natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
	// Members hold up to 4,096 messages rather than the default 256: when
	// NATS comes back after the outage scenario's two seconds, node A's
	// reconnect buffer (up to 400 messages) reaches node B at once, and
	// with the default queue the default policy would close B's
	// subscribers with 1013 (see docs/scaling.md, "What an outage
	// loses"). The scenario measures what the outage loses, not that.
	hub, err := topics.NewHub(&topics.Options{Broker: broker, Logger: quiet, Limits: topics.Limits{MaxMessages: 4096}})
	if err != nil {
		return err
	}
	defer hub.Close()

	var pubErrs atomic.Int64
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	dbg := debugHandler().(*http.ServeMux)
	dbg.HandleFunc("GET /debug/stats", func(w http.ResponseWriter, _ *http.Request) {
		ns := nc.Stats()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(nodeStats{
			Hub: hub.Stats(), BrokerLost: broker.Lost(), Losses: broker.Losses(), PublishErrors: pubErrs.Load(),
			Reconnects: ns.Reconnects, Connected: nc.IsConnected(),
			NATSOutMsgs: ns.OutMsgs, NATSInMsgs: ns.InMsgs,
		})
	})
	r.Handle("/debug/", dbg)
	router.WS(r, "/cluster", nil, func(ctx context.Context, in *wsconn.Inbound, _ *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, nil)
		if err := m.Subscribe(clusterTopic); err != nil {
			return err
		}
		for msg := range in.Messages(0) {
			// A publish that NATS refuses (its reconnect buffer full
			// during an outage) has still reached this node's members;
			// it is counted, and the connection goes on.
			if err := m.Publish(ctx, clusterTopic, msg); err != nil {
				pubErrs.Add(1)
			}
		}
		return in.Err()
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, ln.Addr().String()); err != nil {
		ln.Close()
		return err
	}
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true})
	return a.Serve(ctx, ln)
}

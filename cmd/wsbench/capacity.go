package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// capConfig is what "wsbench capacity" was asked to do.
type capConfig struct {
	quick         bool
	idleConns     []int
	inflightConns int
	inflightSize  int
	handshakes    int
	echoConns     int
	echoDuration  time.Duration
	clusterSubs   int
	clusterMsgs   int
	clusterBatch  int
	latencyMsgs   int
	outageSubs    int
	outageRate    int
	outageBefore  time.Duration
	outageDown    time.Duration
	outageAfter   time.Duration
	steps         []string
	timeout       time.Duration
	jsonFile      string
	exe           string
}

var capQuickDefaults = map[string]string{
	"idle-conns":     "2000,3000",
	"inflight-conns": "200",
	"handshakes":     "300",
	"echo-duration":  "1s",
	"cluster-subs":   "200",
	"cluster-msgs":   "300",
	"latency-msgs":   "100",
	"outage-subs":    "40",
	"outage-before":  "1s",
	"outage-down":    "1s",
	"outage-after":   "2s",
}

// capSteps are the measurements of "wsbench capacity", in order.
var capSteps = []string{"idle", "inflight", "handshake", "echo", "cluster", "outage"}

// capReport is everything "wsbench capacity" measured; -json writes it.
type capReport struct {
	Machine     machine            `json:"machine"`
	Started     time.Time          `json:"started"`
	WallSeconds float64            `json:"wall_seconds"`
	Config      map[string]any     `json:"config"`
	Cost        map[string]float64 `json:"cost"` // the cost model's figures, by key
	Detail      map[string]any     `json:"detail"`
	Errors      map[string]string  `json:"errors,omitempty"`
}

func parseCapFlags(args []string, stderr io.Writer) (*capConfig, error) {
	cfg := &capConfig{}
	fs := flag.NewFlagSet("wsbench capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wsbench capacity [flags]\n\n"+
			"Measures what colibri, with its defaults, costs per socket and per\n"+
			"delivery on this machine, and what crossing nodes through NATS adds,\n"+
			"then prints the figures (and writes them with -json FILE).\n\nflags:\n")
		fs.PrintDefaults()
	}
	idle := fs.String("idle-conns", "10000,15000", "comma-separated counts of idle connections to measure memory at")
	fs.BoolVar(&cfg.quick, "quick", false, "smoke run of about a minute: smaller counts (explicit flags still win)")
	fs.IntVar(&cfg.inflightConns, "inflight-conns", 1000, "connections each holding a partly received message")
	fs.IntVar(&cfg.inflightSize, "inflight-size", 64<<10, "size of the message each of them is receiving")
	fs.IntVar(&cfg.handshakes, "handshakes", 2000, "sequential handshakes for the CPU per handshake")
	fs.IntVar(&cfg.echoConns, "echo-conns", 64, "connections echoing 32-byte messages for the CPU per message")
	fs.DurationVar(&cfg.echoDuration, "echo-duration", 4*time.Second, "echo measurement time")
	fs.IntVar(&cfg.clusterSubs, "cluster-subs", 1000, "subscribers in the cross-node scenario, half on each node")
	fs.IntVar(&cfg.clusterMsgs, "cluster-msgs", 1000, "messages published in the cross-node throughput phase")
	fs.IntVar(&cfg.clusterBatch, "cluster-batch", 10, fmt.Sprintf("messages in flight before the publisher waits for every delivery (1-%d)", maxFanoutBatch))
	fs.IntVar(&cfg.latencyMsgs, "latency-msgs", 500, "messages published one at a time for publish-to-receipt latency")
	fs.IntVar(&cfg.outageSubs, "outage-subs", 100, "subscribers in the outage scenario, half on each node")
	fs.IntVar(&cfg.outageRate, "outage-rate", 200, "messages per second published during the outage scenario")
	fs.DurationVar(&cfg.outageBefore, "outage-before", 2*time.Second, "publishing before NATS is killed")
	fs.DurationVar(&cfg.outageDown, "outage-down", 2*time.Second, "how long NATS stays down")
	fs.DurationVar(&cfg.outageAfter, "outage-after", 4*time.Second, "publishing after NATS is back")
	steps := fs.String("steps", strings.Join(capSteps, ","), "comma-separated measurements to make")
	fs.DurationVar(&cfg.timeout, "timeout", 20*time.Minute, "limit on the whole run")
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the figures to this file as JSON, and charts beside it; \"-\" writes the JSON to standard output instead of the summary")
	if err := parseFlags(fs, args, &cfg.quick, capQuickDefaults); err != nil {
		return nil, err
	}
	for n := range strings.SplitSeq(*idle, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("-idle-conns: %q is not a positive count", n)
		}
		cfg.idleConns = append(cfg.idleConns, v)
	}
	var err error
	if cfg.steps, err = pickList(*steps, capSteps, "step"); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"inflight-conns", int64(cfg.inflightConns)}, {"inflight-size", int64(cfg.inflightSize)},
		{"handshakes", int64(cfg.handshakes)}, {"echo-conns", int64(cfg.echoConns)},
		{"echo-duration", int64(cfg.echoDuration)}, {"cluster-subs", int64(cfg.clusterSubs) - 1},
		{"cluster-msgs", int64(cfg.clusterMsgs)}, {"latency-msgs", int64(cfg.latencyMsgs)},
		{"outage-subs", int64(cfg.outageSubs) - 1}, {"outage-rate", int64(cfg.outageRate)},
		{"outage-before", int64(cfg.outageBefore)}, {"outage-down", int64(cfg.outageDown)},
		{"outage-after", int64(cfg.outageAfter)}, {"timeout", int64(cfg.timeout)},
	} {
		if c.v <= 0 {
			return nil, fmt.Errorf("-%s is too small", c.name)
		}
	}
	if cfg.clusterBatch < 1 || cfg.clusterBatch > maxFanoutBatch {
		return nil, fmt.Errorf("-cluster-batch must be between 1 and %d", maxFanoutBatch)
	}
	if cfg.inflightSize < 2 {
		return nil, fmt.Errorf("-inflight-size must be at least 2")
	}
	return cfg, nil
}

// capacityMain is "wsbench capacity".
func capacityMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseCapFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.exe, err = os.Executable(); err != nil {
		return fmt.Errorf("finding wsbench's own executable: %w", err)
	}
	return capacity(ctx, cfg, stdout, stderr)
}

func capacity(ctx context.Context, cfg *capConfig, stdout, stderr io.Writer) error {
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "wsbench: %v\n", err)
	}
	if need := uint64(slices.Max(cfg.idleConns) + 64); fileLimit() < need {
		return fmt.Errorf("the open-file limit is %d; %d idle connections need %d", fileLimit(), slices.Max(cfg.idleConns), need)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	rep := &capReport{
		Machine: machineFacts(),
		Started: time.Now(),
		Config:  cfg.summary(),
		Cost:    map[string]float64{},
		Detail:  map[string]any{},
		Errors:  map[string]string{},
	}
	toStdout := cfg.jsonFile == "-"
	var steps []progressStep
	for i, s := range cfg.steps {
		steps = append(steps, progressStep{scenario: s, index: i + 1, lib: colibri, round: 1, rounds: 1, guess: cfg.guess(s)})
	}
	prog := newProgress(stderr, toStdout, steps)
	for _, step := range cfg.steps {
		if ctx.Err() != nil {
			break
		}
		prog.begin(len(cfg.steps))
		start := time.Now()
		values, detail, err := cfg.measure(ctx, step)
		for k, v := range values {
			rep.Cost[k] = v
		}
		if detail != nil {
			rep.Detail[step] = detail
		}
		result := fmt.Sprintf("%d figures (%.1fs)", len(values), time.Since(start).Seconds())
		if err != nil {
			rep.Errors[step] = err.Error()
			result = "error: " + err.Error()
		}
		prog.end(time.Since(start), result)
	}
	prog.finish()
	rep.WallSeconds = time.Since(rep.Started).Seconds()
	if toStdout {
		return writeJSON(stdout, rep)
	}
	printCapacity(stdout, rep)
	if cfg.jsonFile != "" {
		if err := writeJSONFile(cfg.jsonFile, rep); err != nil {
			return err
		}
		files, err := writeCapacityCharts(cfg.jsonFile, rep)
		if err != nil {
			return fmt.Errorf("charts: %w", err)
		}
		for _, f := range files {
			fmt.Fprintf(stdout, "chart: %s\n", f)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run stopped early: %w", err)
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d of %d measurements failed", len(rep.Errors), len(cfg.steps))
	}
	return nil
}

func (cfg *capConfig) summary() map[string]any {
	return map[string]any{
		"quick": cfg.quick, "idle_conns": cfg.idleConns, "inflight_conns": cfg.inflightConns,
		"inflight_size": cfg.inflightSize, "handshakes": cfg.handshakes, "echo_conns": cfg.echoConns,
		"echo_duration": cfg.echoDuration.String(), "cluster_subs": cfg.clusterSubs,
		"cluster_msgs": cfg.clusterMsgs, "cluster_batch": cfg.clusterBatch, "latency_msgs": cfg.latencyMsgs,
		"outage_subs": cfg.outageSubs, "outage_rate": cfg.outageRate,
		"outage_before": cfg.outageBefore.String(), "outage_down": cfg.outageDown.String(),
		"outage_after": cfg.outageAfter.String(), "steps": cfg.steps,
	}
}

// guess is how long a step might take, for the ETA.
func (cfg *capConfig) guess(step string) time.Duration {
	switch step {
	case "idle":
		var n int
		for _, c := range cfg.idleConns {
			n += c
		}
		return time.Duration(len(cfg.idleConns))*8*time.Second + time.Duration(n)*400*time.Microsecond
	case "inflight":
		return 8*time.Second + time.Duration(cfg.inflightConns)*time.Millisecond
	case "handshake":
		return time.Second + time.Duration(cfg.handshakes)*400*time.Microsecond
	case "echo":
		return 2*time.Second + cfg.echoDuration
	case "cluster":
		return 5*time.Second + time.Duration(cfg.clusterSubs*(cfg.clusterMsgs+cfg.latencyMsgs))*5*time.Microsecond
	case "outage":
		return 4*time.Second + cfg.outageBefore + cfg.outageDown + cfg.outageAfter
	}
	return 5 * time.Second
}

// measure runs one step and returns its cost figures.
func (cfg *capConfig) measure(ctx context.Context, step string) (map[string]float64, any, error) {
	switch step {
	case "cluster":
		return measureCluster(ctx, cfg)
	case "outage":
		return measureOutage(ctx, cfg)
	}
	values := map[string]float64{}
	details := map[string]any{}
	withServer := func(f func(srv *child) error) error {
		srv, err := startChild(ctx, cfg.exe, colibri, -1)
		if err != nil {
			return err
		}
		defer srv.stop()
		return f(srv)
	}
	var err error
	switch step {
	case "idle":
		for _, n := range cfg.idleConns {
			err = withServer(func(srv *child) error {
				gc, nogc, d, err := measureIdle(ctx, srv, n)
				if err != nil {
					return err
				}
				values[fmt.Sprintf("idle_kib_%d", n)] = gc
				values[fmt.Sprintf("idle_nogc_kib_%d", n)] = nogc
				details[strconv.Itoa(n)] = d
				return nil
			})
			if err != nil {
				break
			}
		}
	case "inflight":
		err = withServer(func(srv *child) error {
			kib, d, err := measureInflight(ctx, srv, cfg.inflightConns, cfg.inflightSize)
			values["inflight_kib"] = kib
			details["inflight"] = d
			return err
		})
	case "handshake":
		err = withServer(func(srv *child) error {
			out, err := runHandshake(ctx, &config{handshakes: cfg.handshakes}, srv)
			values["handshake_cpu_us"] = out.Values["handshake_server_cpu_us"]
			details["handshake"] = out.Detail
			return err
		})
	case "echo":
		err = withServer(func(srv *child) error {
			out, err := runEcho(ctx, &config{echoConns: cfg.echoConns, echoWarmup: time.Second, echoDuration: cfg.echoDuration}, srv, smallPayload, "echo32")
			values["echo_cpu_us"] = out.Values["echo32_server_cpu_us"]
			details["echo"] = out.Detail
			return err
		})
	}
	return values, details, err
}

// measureIdle opens n idle connections and returns the server's RSS
// growth per connection, in KiB, after a forced garbage collection and
// without one (a second after the last connection opened, as a server
// that is left alone would hold them).
func measureIdle(ctx context.Context, srv *child, n int) (gcKiB, noGCKiB float64, detail map[string]any, err error) {
	// The server has served nothing yet: its RSS now is the baseline
	// without a forced collection.
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return 0, 0, nil, err
	}
	rss0, err := srv.rssKiB()
	if err != nil {
		return 0, 0, nil, err
	}
	conns, err := dialMany(ctx, srv.addr, srv.raw, "/echo", n, 4, 4096)
	if err != nil {
		return 0, 0, nil, err
	}
	defer closeAll(conns)
	if err := sleep(ctx, time.Second); err != nil {
		return 0, 0, nil, err
	}
	rss1, err := srv.rssKiB()
	if err != nil {
		return 0, 0, nil, err
	}
	after, err := srv.settle(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	// Both figures are growth over the RSS the fresh server had before
	// its first connection, when it had made next to no garbage yet.
	fn := float64(n)
	return float64(after.RSSKiB-rss0) / fn, float64(rss1-rss0) / fn,
		map[string]any{"conns": n, "rss_before_kib": rss0, "rss_open_kib": rss1, "after_gc": after}, nil
}

// measureInflight opens n connections, lets them go idle, then has each
// send all but the last byte of a size-byte binary message, so that the
// server holds n partly received messages. It returns the server's RSS
// growth per connection over the idle state, in KiB, after a collection
// (what it holds for the messages is live and survives it).
func measureInflight(ctx context.Context, srv *child, n, size int) (float64, map[string]any, error) {
	conns, err := dialMany(ctx, srv.addr, false, "/echo", n, 4, 4096)
	if err != nil {
		return 0, nil, err
	}
	defer closeAll(conns)
	idle, err := srv.settle(ctx)
	if err != nil {
		return 0, nil, err
	}
	f := wsFrame(ws.OpBinary, payload(size, 'i'))
	partial := f[:len(f)-1]
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(conns); i += 4 {
				_ = conns[i].nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := conns[i].write(partial); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if k := failed.Load(); k > 0 {
		return 0, nil, fmt.Errorf("%d of %d partial messages could not be sent", k, n)
	}
	if err := sleep(ctx, time.Second); err != nil {
		return 0, nil, err
	}
	held, err := srv.settle(ctx)
	if err != nil {
		return 0, nil, err
	}
	return float64(held.RSSKiB-idle.RSSKiB) / float64(n), map[string]any{
		"conns": n, "message_bytes": size, "idle": idle, "in_flight": held,
	}, nil
}

// A cluster is a NATS server and two colibri nodes, A and B, each in its
// own process.
type cluster struct {
	exe      string
	nats     *child
	natsAddr string // client address, kept for restarts on the same port
	monitor  string // monitoring address
	a, b     *child
}

func startCluster(ctx context.Context, exe string) (*cluster, error) {
	c := &cluster{exe: exe}
	if err := c.startNATS(ctx, "127.0.0.1:0", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	var err error
	url := "nats://" + c.natsAddr
	if c.a, err = startProcess(ctx, "node A", exe, "node", "-nats", url); err != nil {
		c.stop()
		return nil, err
	}
	if c.b, err = startProcess(ctx, "node B", exe, "node", "-nats", url); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) startNATS(ctx context.Context, addr, monitor string) error {
	n, err := startProcess(ctx, "nats", c.exe, "nats", "-addr", addr, "-http", monitor)
	if err != nil {
		return err
	}
	c.nats, c.natsAddr, c.monitor = n, n.addr, n.extra
	return nil
}

func (c *cluster) stop() {
	for _, p := range []*child{c.a, c.b, c.nats} {
		if p != nil {
			p.stop()
		}
	}
}

// varz returns the NATS server's message counters.
func (c *cluster) varz(ctx context.Context) (in, out int64, err error) {
	var v struct {
		InMsgs  int64 `json:"in_msgs"`
		OutMsgs int64 `json:"out_msgs"`
	}
	err = getJSON(ctx, "http://"+c.monitor+"/varz", &v)
	return v.InMsgs, v.OutMsgs, err
}

// stats returns a node's counters.
func stats(ctx context.Context, node *child) (nodeStats, error) {
	var s nodeStats
	err := getJSON(ctx, "http://"+node.addr+"/debug/stats", &s)
	return s, err
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// A stamped message is a 64-byte binary message: a tag, a sequence number
// and the time it was sent (nanoseconds since the run's epoch), so that
// each receiver measures publish-to-receipt latency on the driver's one
// clock.
const stampedSize = fanoutPayload

func stamp(tag byte, seq uint64, sent time.Duration) []byte {
	p := payload(stampedSize, tag)
	binary.BigEndian.PutUint64(p[1:], seq)
	binary.BigEndian.PutUint64(p[9:], uint64(sent))
	return p
}

func unstamp(p []byte) (tag byte, seq uint64, sent time.Duration) {
	return p[0], binary.BigEndian.Uint64(p[1:]), time.Duration(binary.BigEndian.Uint64(p[9:]))
}

// receiver is one subscriber connection of the cross-node scenarios.
type receiver struct {
	c      *clientConn
	remote bool // connected to node B, the publisher being on node A
	// got records, for the outage scenario, the arrival of every measured
	// message: seq and time since the epoch. Owned by the reading goroutine
	// until the readers are stopped.
	got []arrival
}

type arrival struct {
	seq uint64
	at  time.Duration
}

// fanState is what the readers of a cross-node scenario share.
type fanState struct {
	epoch     time.Time
	ready     atomic.Int64 // receivers that have seen a probe
	remaining atomic.Int64 // deliveries the current batch still needs
	batchDone chan struct{}
	record    atomic.Bool // keep latencies and arrivals
	stopping  atomic.Bool
	errc      chan error

	mu  sync.Mutex
	lat [2][]time.Duration // local, remote
}

func (st *fanState) read(r *receiver) {
	buf := make([]byte, stampedSize)
	probed := false
	var lat []time.Duration
	defer func() {
		st.mu.Lock()
		i := 0
		if r.remote {
			i = 1
		}
		st.lat[i] = append(st.lat[i], lat...)
		st.mu.Unlock()
	}()
	for {
		op, n, err := r.c.readMessage(buf)
		if err != nil {
			if !st.stopping.Load() {
				st.errc <- fmt.Errorf("subscriber: %w", err)
			}
			return
		}
		now := time.Since(st.epoch)
		if op != ws.OpBinary || n != stampedSize {
			st.errc <- fmt.Errorf("subscriber got a %d-byte %v message", n, op)
			return
		}
		tag, seq, sent := unstamp(buf)
		switch tag {
		case tagProbe:
			if !probed {
				probed = true
				st.ready.Add(1)
			}
		case tagMeasured:
			if st.record.Load() {
				lat = append(lat, now-sent)
				r.got = append(r.got, arrival{seq: seq, at: now})
			}
			if st.remaining.Add(-1) == 0 {
				select {
				case st.batchDone <- struct{}{}:
				default:
				}
			}
		}
	}
}

// connectFan dials subs receivers, the first half to node A and the rest
// to node B, and the publisher to node A; starts the readers; and probes
// until every receiver has heard from the publisher.
func connectFan(ctx context.Context, cl *cluster, subs int, st *fanState) (pub *clientConn, recvs []*receiver, stop func(), err error) {
	nA := subs / 2
	ca, err := dialMany(ctx, cl.a.addr, false, "/cluster", nA, 4, 4096)
	if err != nil {
		return nil, nil, nil, err
	}
	cb, err := dialMany(ctx, cl.b.addr, false, "/cluster", subs-nA, 4, 4096)
	if err != nil {
		closeAll(ca)
		return nil, nil, nil, err
	}
	pub, err = dial(ctx, cl.a.addr, false, "/cluster", 4096)
	if err != nil {
		closeAll(append(ca, cb...))
		return nil, nil, nil, err
	}
	var wg sync.WaitGroup
	for i, c := range append(ca, cb...) {
		r := &receiver{c: c, remote: i >= nA}
		recvs = append(recvs, r)
		wg.Go(func() { st.read(r) })
	}
	stop = func() {
		st.stopping.Store(true)
		all := []*clientConn{pub}
		for _, r := range recvs {
			all = append(all, r.c)
		}
		closeAll(all)
		wg.Wait()
	}
	readyBy := time.Now().Add(15 * time.Second)
	for st.ready.Load() < int64(len(recvs)) {
		if time.Now().After(readyBy) {
			stop()
			return nil, nil, nil, fmt.Errorf("only %d of %d subscribers received a probe within 15s", st.ready.Load(), len(recvs))
		}
		_ = pub.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := pub.write(wsFrame(ws.OpBinary, stamp(tagProbe, 0, 0))); err != nil {
			stop()
			return nil, nil, nil, err
		}
		if err := waitOrFail(ctx, st.errc, 50*time.Millisecond); err != nil {
			stop()
			return nil, nil, nil, err
		}
	}
	return pub, recvs, stop, nil
}

// sendBatch publishes b stamped messages and waits until every receiver
// has each of them.
func sendBatch(ctx context.Context, st *fanState, pub *clientConn, b, receivers int, seq *uint64) error {
	st.remaining.Store(int64(b * receivers))
	_ = pub.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for range b {
		*seq++
		if err := pub.write(wsFrame(ws.OpBinary, stamp(tagMeasured, *seq, time.Since(st.epoch)))); err != nil {
			return err
		}
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-st.batchDone:
		return nil
	case err := <-st.errc:
		return err
	case <-t.C:
		return fmt.Errorf("batch at message %d: %d of %d deliveries missing after 10s", *seq, st.remaining.Load(), b*receivers)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measureCluster is the cross-node scenario: a publisher on node A and
// subscribers split across A and B. A throughput phase sends batches and
// waits for every delivery after each; it gives deliveries per second,
// each node's CPU per delivery, the NATS server's CPU and messages per
// publish. A latency phase then publishes one message at a time and
// records publish-to-receipt latency at each subscriber, local (on A) or
// remote (on B).
func measureCluster(ctx context.Context, cfg *capConfig) (map[string]float64, any, error) {
	cl, err := startCluster(ctx, cfg.exe)
	if err != nil {
		return nil, nil, err
	}
	defer cl.stop()
	st := &fanState{epoch: time.Now(), batchDone: make(chan struct{}, 1), errc: make(chan error, cfg.clusterSubs+1)}
	pub, recvs, stop, err := connectFan(ctx, cl, cfg.clusterSubs, st)
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	nA := cfg.clusterSubs / 2
	nB := len(recvs) - nA

	var seq uint64
	// Warm-up: one batch, not counted.
	if err := sendBatch(ctx, st, pub, cfg.clusterBatch, len(recvs), &seq); err != nil {
		return nil, nil, err
	}
	cpuA0, errA := cl.a.cpuTime()
	cpuB0, errB := cl.b.cpuTime()
	cpuN0, errN := cl.nats.cpuTime()
	in0, out0, errV := cl.varz(ctx)
	if err := firstErr(errA, errB, errN, errV); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	for sent := 0; sent < cfg.clusterMsgs; {
		b := min(cfg.clusterBatch, cfg.clusterMsgs-sent)
		if err := sendBatch(ctx, st, pub, b, len(recvs), &seq); err != nil {
			return nil, nil, err
		}
		sent += b
	}
	elapsed := time.Since(start)
	cpuA1, errA := cl.a.cpuTime()
	cpuB1, errB := cl.b.cpuTime()
	cpuN1, errN := cl.nats.cpuTime()
	in1, out1, errV := cl.varz(ctx)
	if err := firstErr(errA, errB, errN, errV); err != nil {
		return nil, nil, err
	}
	msgs := float64(cfg.clusterMsgs)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	values := map[string]float64{
		"cluster_deliveries_per_sec":  msgs * float64(len(recvs)) / elapsed.Seconds(),
		"local_delivery_cpu_us":       us(cpuA1-cpuA0) / (msgs * float64(nA)),
		"remote_delivery_cpu_us":      us(cpuB1-cpuB0) / (msgs * float64(nB)),
		"node_a_cpu_per_publish_us":   us(cpuA1-cpuA0) / msgs,
		"node_b_cpu_per_publish_us":   us(cpuB1-cpuB0) / msgs,
		"nats_cpu_per_publish_us":     us(cpuN1-cpuN0) / msgs,
		"nats_msgs_in_per_publish":    float64(in1-in0) / msgs,
		"nats_msgs_out_per_publish":   float64(out1-out0) / msgs,
		"nats_msgs_per_publish":       float64(in1-in0+out1-out0) / msgs,
		"cluster_subscribers_local":   float64(nA),
		"cluster_subscribers_remote":  float64(nB),
		"cluster_throughput_messages": msgs,
	}

	// Latency: one message at a time.
	st.record.Store(true)
	for range cfg.latencyMsgs {
		if err := sendBatch(ctx, st, pub, 1, len(recvs), &seq); err != nil {
			return nil, nil, err
		}
	}
	stop()
	st.mu.Lock()
	local, remote := st.lat[0], st.lat[1]
	st.mu.Unlock()
	slices.Sort(local)
	slices.Sort(remote)
	for _, lq := range latencyQuantiles {
		values["local_latency_"+lq.name+"_us"] = us(quantile(local, lq.q))
		values["remote_latency_"+lq.name+"_us"] = us(quantile(remote, lq.q))
	}
	detail := map[string]any{
		"subscribers_a": nA, "subscribers_b": nB, "throughput_seconds": elapsed.Seconds(),
		"latency_messages": cfg.latencyMsgs, "local_samples": len(local), "remote_samples": len(remote),
		"nats_in_msgs": in1 - in0, "nats_out_msgs": out1 - out0,
	}
	return values, detail, nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// measureOutage publishes at a steady rate from node A to subscribers on
// both nodes, kills the NATS server mid-run (SIGKILL, as a crash), starts
// it again on the same ports after a pause, and goes on publishing. It
// reports how many messages the remote subscribers did not get, how many
// of those the nodes counted (natsbroker's Losses on both nodes, B's hub's
// Dropped), and how long remote delivery took to resume.
func measureOutage(ctx context.Context, cfg *capConfig) (map[string]float64, any, error) {
	cl, err := startCluster(ctx, cfg.exe)
	if err != nil {
		return nil, nil, err
	}
	defer cl.stop()
	st := &fanState{epoch: time.Now(), batchDone: make(chan struct{}, 1), errc: make(chan error, cfg.outageSubs+1)}
	pub, recvs, stop, err := connectFan(ctx, cl, cfg.outageSubs, st)
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	a0, errA := stats(ctx, cl.a)
	b0, errB := stats(ctx, cl.b)
	if err := firstErr(errA, errB); err != nil {
		return nil, nil, err
	}

	st.record.Store(true)
	st.remaining.Store(1 << 62) // no batches here
	var (
		sentAt  []time.Duration // by seq-1
		pubErr  = make(chan error, 1)
		pubDone = make(chan struct{})
		total   = cfg.outageBefore + cfg.outageDown + cfg.outageAfter
	)
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(time.Second / time.Duration(cfg.outageRate))
		defer tick.Stop()
		end := time.Now().Add(total)
		var seq uint64
		for time.Now().Before(end) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			seq++
			at := time.Since(st.epoch)
			sentAt = append(sentAt, at)
			_ = pub.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := pub.write(wsFrame(ws.OpBinary, stamp(tagMeasured, seq, at))); err != nil {
				pubErr <- err
				return
			}
		}
	}()

	if err := waitOrFail(ctx, st.errc, cfg.outageBefore); err != nil {
		return nil, nil, err
	}
	killAt := time.Since(st.epoch)
	cl.nats.kill()
	if err := waitOrFail(ctx, st.errc, cfg.outageDown); err != nil {
		return nil, nil, err
	}
	if err := cl.startNATS(ctx, cl.natsAddr, cl.monitor); err != nil {
		return nil, nil, fmt.Errorf("restarting NATS: %w", err)
	}
	restartAt := time.Since(st.epoch)
	select {
	case <-pubDone:
	case err := <-pubErr:
		return nil, nil, err
	case err := <-st.errc:
		return nil, nil, err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	// Let the last messages and the nodes' once-a-second drop counts in.
	if err := waitOrFail(ctx, st.errc, 1500*time.Millisecond); err != nil {
		return nil, nil, err
	}
	a1, errA := stats(ctx, cl.a)
	b1, errB := stats(ctx, cl.b)
	if err := firstErr(errA, errB); err != nil {
		return nil, nil, err
	}
	stop()

	published := len(sentAt)
	var local, remote []*receiver
	for _, r := range recvs {
		if r.remote {
			remote = append(remote, r)
		} else {
			local = append(local, r)
		}
	}
	missing := func(rs []*receiver) (deliveries int, messages int) {
		seen := make([]int, published+1)
		for _, r := range rs {
			got := map[uint64]bool{}
			for _, a := range r.got {
				if a.seq >= 1 && int(a.seq) <= published && !got[a.seq] {
					got[a.seq] = true
					seen[a.seq]++
				}
			}
			deliveries += published - len(got)
		}
		for s := 1; s <= published; s++ {
			if seen[s] == 0 {
				messages++
			}
		}
		return deliveries, messages
	}
	localMissing, _ := missing(local)
	remoteMissing, remoteLostMsgs := missing(remote)

	// Resumption: the last remote arrival before the kill, the first
	// after the restart, and the first arrival of a message published
	// after the restart.
	var lastBefore, firstAfter, firstNew time.Duration = -1, -1, -1
	for _, r := range remote {
		for _, a := range r.got {
			if a.at <= killAt && a.at > lastBefore {
				lastBefore = a.at
			}
			if a.at > restartAt && (firstAfter < 0 || a.at < firstAfter) {
				firstAfter = a.at
			}
			if int(a.seq) <= published && sentAt[a.seq-1] > restartAt && (firstNew < 0 || a.at < firstNew) {
				firstNew = a.at
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	// What the nodes counted. In messages: those B found missing, and
	// those A did not send (refused by NATS, or discarded from its
	// reconnect buffer). In deliveries to B's subscribers: B's hub
	// reports a missing message once per member (DropLost), and each
	// message A did not send is one per remote subscriber.
	lostB := b1.BrokerLost - b0.BrokerLost
	missingB := b1.Losses.Missing - b0.Losses.Missing
	notSentA := (a1.Losses.NotSent - a0.Losses.NotSent) + (a1.Losses.Discarded - a0.Losses.Discarded)
	droppedB := b1.Hub.Dropped - b0.Hub.Dropped
	refused := a1.PublishErrors - a0.PublishErrors
	counted := droppedB + notSentA*int64(len(remote))
	values := map[string]float64{
		"outage_published":                float64(published),
		"outage_local_missing_deliveries": float64(localMissing),
		"outage_remote_missing":           float64(remoteMissing),
		"outage_remote_lost_messages":     float64(remoteLostMsgs),
		"outage_broker_lost_b":            float64(lostB),
		"outage_broker_missing_b":         float64(missingB),
		"outage_broker_not_sent_a":        float64(notSentA),
		"outage_counted_lost_messages":    float64(missingB + notSentA),
		"outage_hub_dropped_b":            float64(droppedB),
		"outage_refused_publishes_a":      float64(refused),
		"outage_counted_deliveries":       float64(counted),
		"outage_uncounted_deliveries":     float64(max(int64(remoteMissing)-counted, 0)),
		"outage_overcounted_deliveries":   float64(max(counted-int64(remoteMissing), 0)),
		"outage_down_ms":                  ms(restartAt - killAt),
		"outage_reconnects_a":             float64(a1.Reconnects - a0.Reconnects),
		"outage_reconnects_b":             float64(b1.Reconnects - b0.Reconnects),
	}
	if firstAfter >= 0 {
		values["outage_resume_ms"] = ms(firstAfter - restartAt)
	}
	if firstNew >= 0 {
		values["outage_resume_new_ms"] = ms(firstNew - restartAt)
	}
	if lastBefore >= 0 && firstAfter >= 0 {
		values["outage_gap_ms"] = ms(firstAfter - lastBefore)
	}
	// The remote arrivals over time, in 100 ms bins, for the chart.
	bins := make([]int, int(total/(100*time.Millisecond))+20)
	for _, r := range remote {
		for _, a := range r.got {
			if i := int(a.at / (100 * time.Millisecond)); i < len(bins) {
				bins[i]++
			}
		}
	}
	detail := map[string]any{
		"subscribers_local": len(local), "subscribers_remote": len(remote),
		"rate_per_sec": cfg.outageRate, "kill_at_ms": ms(killAt), "restart_at_ms": ms(restartAt),
		"remote_arrivals_per_100ms": bins, "node_a_before": a0, "node_a_after": a1,
		"node_b_before": b0, "node_b_after": b1,
	}
	return values, detail, nil
}

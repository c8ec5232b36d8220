package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// A metric is one row of the table.
type metric struct {
	key    string // name in the JSON results
	label  string
	unit   string
	higher bool   // whether a higher figure is better
	format string // fmt verb for the figure
	// hidden figures are kept in the JSON results (and charts) but have
	// no row in the table.
	hidden bool
}

// A scenario is one measurement, run against a fresh server process for
// every library. It reports one or more metrics.
type scenario struct {
	key     string // the -scenarios value
	metrics []metric
	run     func(ctx context.Context, cfg *config, srv *child) (outcome, error)
	// wsOnly scenarios need WebSocket endpoints the rawtcp floor does not
	// serve.
	wsOnly bool
	// estimate guesses how long one run takes, for the progress line's
	// ETA until a run has been timed.
	estimate func(cfg *config) time.Duration
}

// skips says why s is not run against lib, or "" when it is.
func (s scenario) skips(lib string) string {
	if s.wsOnly && kindOf(lib) == floorLib {
		return rawTCP + " serves echo only"
	}
	return ""
}

// guess is s.estimate, or a few seconds.
func (s scenario) guess(cfg *config) time.Duration {
	if s.estimate == nil {
		return 3 * time.Second
	}
	return s.estimate(cfg)
}

// outcome is what one scenario measured for one library.
type outcome struct {
	Values map[string]float64 `json:"values,omitempty"`
	// Ratios are each figure's ratio to the best peer's, taken within
	// each round and folded like the figures (see roundRatios); absent
	// for a single round, where they are Values over the baseline.
	Ratios  map[string]float64 `json:"ratios,omitempty"`
	Detail  map[string]any     `json:"detail,omitempty"`
	Error   string             `json:"error,omitempty"`
	Skipped string             `json:"skipped,omitempty"` // why it was not run
	Seconds float64            `json:"seconds"`
}

const (
	smallPayload  = 32
	largePayload  = 16 << 10
	fanoutPayload = 64
)

// scenarios lists every scenario in the order they run and their rows
// appear. Labels are filled in from the configuration by scenarioList.
func scenarioList(cfg *config) []scenario {
	return []scenario{
		{
			key: "echo32",
			metrics: []metric{
				{key: "echo32_msgs_per_sec", unit: "msg/s", higher: true, format: "%.0f",
					label: fmt.Sprintf("echo %d B, %d conns", smallPayload, cfg.echoConns)},
				{key: "echo32_server_cpu_us", unit: "µs", format: "%.1f",
					label: fmt.Sprintf("server CPU per %d B echo", smallPayload)},
			},
			run: func(ctx context.Context, cfg *config, srv *child) (outcome, error) {
				return runEcho(ctx, cfg, srv, smallPayload, "echo32")
			},
			estimate: echoEstimate,
		},
		{
			key: "echo16k",
			metrics: []metric{
				{key: "echo16k_msgs_per_sec", unit: "msg/s", higher: true, format: "%.0f",
					label: fmt.Sprintf("echo %d KiB, %d conns", largePayload>>10, cfg.echoConns)},
				{key: "echo16k_server_cpu_us", unit: "µs", format: "%.1f",
					label: fmt.Sprintf("server CPU per %d KiB echo", largePayload>>10)},
			},
			run: func(ctx context.Context, cfg *config, srv *child) (outcome, error) {
				return runEcho(ctx, cfg, srv, largePayload, "echo16k")
			},
			estimate: echoEstimate,
		},
		{
			key: "latency",
			metrics: []metric{
				{key: "latency_p50_us", unit: "µs", format: "%.1f",
					label: fmt.Sprintf("latency p50, %d B, 1 conn", smallPayload)},
				{key: "latency_p99_us", unit: "µs", format: "%.1f",
					label: fmt.Sprintf("latency p99, %d B, 1 conn", smallPayload)},
				{key: "latency_p90_us", unit: "µs", format: "%.1f", hidden: true, label: "latency p90"},
				{key: "latency_p999_us", unit: "µs", format: "%.1f", hidden: true, label: "latency p99.9"},
				{key: "latency_p9999_us", unit: "µs", format: "%.1f", hidden: true, label: "latency p99.99"},
			},
			run: runLatency,
			estimate: func(cfg *config) time.Duration {
				return time.Second + time.Duration(cfg.latencyN)*40*time.Microsecond
			},
		},
		{
			key: "fanout",
			metrics: []metric{{key: "fanout_deliveries_per_sec", unit: "deliveries/s", higher: true, format: "%.0f",
				label: fmt.Sprintf("fan-out %d B to %d subs", fanoutPayload, cfg.fanoutSubs)}},
			run:    runFanout,
			wsOnly: true,
			estimate: func(cfg *config) time.Duration {
				return 2*time.Second + time.Duration(cfg.fanoutSubs*cfg.fanoutMsgs)*3*time.Microsecond
			},
		},
		{
			key: "idle",
			metrics: []metric{
				{key: "idle_kib_per_conn", unit: "KiB", format: "%.2f",
					label: fmt.Sprintf("memory per idle conn (%d), after forced GC", cfg.idleConns)},
				{key: "idle_nogc_kib_per_conn", unit: "KiB", format: "%.2f",
					label: fmt.Sprintf("memory per idle conn (%d), no forced GC", cfg.idleConns)},
				{key: "idle_goroutines_per_conn", unit: "goroutines", format: "%.2f",
					label: "goroutines per idle conn"},
			},
			run: runIdle,
			estimate: func(cfg *config) time.Duration {
				return 5*time.Second + time.Duration(cfg.idleConns)*400*time.Microsecond
			},
		},
		{
			key: "handshake",
			metrics: []metric{
				{key: "handshake_us", unit: "µs", format: "%.0f",
					label: fmt.Sprintf("handshake, %d sequential", cfg.handshakes)},
				{key: "handshake_server_cpu_us", unit: "µs", format: "%.0f",
					label: "server CPU per handshake"},
			},
			run: runHandshake,
			estimate: func(cfg *config) time.Duration {
				return time.Second + time.Duration(cfg.handshakes)*400*time.Microsecond
			},
		},
	}
}

func echoEstimate(cfg *config) time.Duration {
	return time.Second + cfg.echoWarmup + cfg.echoDuration
}

// payload returns n bytes of a repeating pattern starting with tag.
func payload(n int, tag byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	if n > 0 {
		p[0] = tag
	}
	return p
}

// roundTrip sends f and checks that the echo is a message of type op
// carrying want.
func roundTrip(c *clientConn, f []byte, op ws.OpCode, want []byte) error {
	if err := c.write(f); err != nil {
		return err
	}
	got := make([]byte, len(want))
	gop, n, err := c.readMessage(got)
	if err != nil {
		return err
	}
	if gop != op || n != len(want) || !bytes.Equal(got, want) {
		return fmt.Errorf("echo of a %d-byte %v message came back as a %d-byte %v message, or with other bytes", len(want), op, n, gop)
	}
	return nil
}

// runEcho measures echo throughput: every connection sends a binary
// message of size bytes and waits for its echo, in a loop, for the
// configured duration after a warm-up. It reports name_msgs_per_sec and
// the server's CPU time per message, name_server_cpu_us.
func runEcho(ctx context.Context, cfg *config, srv *child, size int, name string) (outcome, error) {
	conns, err := dialMany(ctx, srv.addr, srv.raw, "/echo", cfg.echoConns, 4, max(4096, size+64))
	if err != nil {
		return outcome{}, err
	}
	defer closeAll(conns)

	// Both message types must come back as they went out.
	text := []byte("wsbench: text echo")
	if err := roundTrip(conns[0], conns[0].frame(ws.OpText, text), ws.OpText, text); err != nil {
		return outcome{}, fmt.Errorf("text echo: %w", err)
	}
	p := payload(size, 'e')
	deadline := time.Now().Add(cfg.echoWarmup + cfg.echoDuration + 30*time.Second)
	frames := make([][]byte, len(conns))
	for i, c := range conns {
		frames[i] = c.frame(ws.OpBinary, p)
		if err := roundTrip(c, frames[i], ws.OpBinary, p); err != nil {
			return outcome{}, fmt.Errorf("binary echo: %w", err)
		}
		_ = c.nc.SetDeadline(deadline)
	}

	counts := make([]paddedCount, len(conns))
	var stop atomic.Bool
	errc := make(chan error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for !stop.Load() {
				if err := c.write(frames[i]); err != nil {
					errc <- err
					return
				}
				op, n, err := c.readMessage(nil)
				if err != nil {
					errc <- err
					return
				}
				if op != ws.OpBinary || n != size {
					errc <- fmt.Errorf("echo came back as a %d-byte %v message", n, op)
					return
				}
				counts[i].n.Add(1)
			}
		})
	}
	sum := func() (s int64) {
		for i := range counts {
			s += counts[i].n.Load()
		}
		return s
	}
	var before, after int64
	var elapsed, cpu0, cpu1 time.Duration
	var cpuErr error
	err = waitOrFail(ctx, errc, cfg.echoWarmup)
	if err == nil {
		before = sum()
		cpu0, cpuErr = srv.cpuTime()
		start := time.Now()
		err = waitOrFail(ctx, errc, cfg.echoDuration)
		after = sum()
		elapsed = time.Since(start)
		if cpuErr == nil {
			cpu1, cpuErr = srv.cpuTime()
		}
	}
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return outcome{}, err
	}
	msgs := after - before
	values := map[string]float64{name + "_msgs_per_sec": float64(msgs) / elapsed.Seconds()}
	if cpuErr == nil && msgs > 0 {
		// What each echoed message cost the server in CPU: the client and
		// the server share the machine, so throughput also depends on how
		// the two are scheduled, and this figure less so.
		values[name+"_server_cpu_us"] = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(msgs)
	}
	return outcome{
		Values: values,
		Detail: map[string]any{"conns": len(conns), "payload_bytes": size, "messages": msgs, "measured_seconds": elapsed.Seconds()},
	}, nil
}

// paddedCount is a counter on its own cache line.
type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

// waitOrFail waits for d, returning early with the first error from errc
// or the context's error.
func waitOrFail(ctx context.Context, errc <-chan error, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runLatency measures round-trip time on one connection: a small binary
// message, then its echo, one at a time.
func runLatency(ctx context.Context, cfg *config, srv *child) (outcome, error) {
	c, err := dial(ctx, srv.addr, srv.raw, "/echo", 4096)
	if err != nil {
		return outcome{}, err
	}
	defer c.close()
	p := payload(smallPayload, 'l')
	f := c.frame(ws.OpBinary, p)
	if err := roundTrip(c, f, ws.OpBinary, p); err != nil {
		return outcome{}, err
	}
	_ = c.nc.SetDeadline(time.Now().Add(5 * time.Minute))

	n := cfg.latencyN
	warm := min(1000, max(n/10, 10))
	lat := make([]time.Duration, n)
	for i := -warm; i < n; i++ {
		if i%1000 == 0 && ctx.Err() != nil {
			return outcome{}, ctx.Err()
		}
		start := time.Now()
		if err := c.write(f); err != nil {
			return outcome{}, err
		}
		op, got, err := c.readMessage(nil)
		if err != nil {
			return outcome{}, err
		}
		if i >= 0 {
			lat[i] = time.Since(start)
		}
		if op != ws.OpBinary || got != smallPayload {
			return outcome{}, fmt.Errorf("echo came back as a %d-byte %v message", got, op)
		}
	}
	slices.Sort(lat)
	values := map[string]float64{}
	for _, lq := range latencyQuantiles {
		values["latency_"+lq.name+"_us"] = float64(quantile(lat, lq.q)) / float64(time.Microsecond)
	}
	return outcome{
		Values: values,
		Detail: map[string]any{"iterations": n, "warmup_iterations": warm,
			"min_us": float64(lat[0]) / 1e3, "max_us": float64(lat[n-1]) / 1e3},
	}, nil
}

// quantile returns the q-quantile of sorted, the smallest value that at
// least a fraction q of the values do not exceed.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := max(int(math.Ceil(q*float64(len(sorted))))-1, 0)
	return sorted[min(i, len(sorted)-1)]
}

// Tags in the first byte of a fan-out message.
const (
	tagProbe    = 'p' // readiness probe, not counted
	tagMeasured = 'm'
)

// runFanout measures broadcast: the subscribers and one publisher connect
// to /broadcast, the publisher sends binary messages in batches, and each
// batch must reach every connection (the publisher too: every client of
// the endpoint is a subscriber) before the next one is sent, so that no
// server's queues grow without bound.
func runFanout(ctx context.Context, cfg *config, srv *child) (outcome, error) {
	subs, err := dialMany(ctx, srv.addr, srv.raw, "/broadcast", cfg.fanoutSubs, 4, 4096)
	if err != nil {
		return outcome{}, err
	}
	pub, err := dial(ctx, srv.addr, srv.raw, "/broadcast", 4096)
	if err != nil {
		closeAll(subs)
		return outcome{}, err
	}
	all := append(subs, pub)

	var (
		ready     atomic.Int64 // receivers that have seen a probe
		remaining atomic.Int64 // deliveries the current batch still needs
		stopping  atomic.Bool
		batchDone = make(chan struct{}, 1)
		errc      = make(chan error, len(all))
		wg        sync.WaitGroup
	)
	for _, c := range all {
		wg.Go(func() {
			buf := make([]byte, fanoutPayload)
			probed := false
			for {
				op, n, err := c.readMessage(buf)
				if err != nil {
					if !stopping.Load() {
						errc <- fmt.Errorf("subscriber: %w", err)
					}
					return
				}
				if op != ws.OpBinary || n != fanoutPayload {
					errc <- fmt.Errorf("subscriber got a %d-byte %v message", n, op)
					return
				}
				switch buf[0] {
				case tagProbe:
					if !probed {
						probed = true
						ready.Add(1)
					}
				case tagMeasured:
					if remaining.Add(-1) == 0 {
						select {
						case batchDone <- struct{}{}:
						default:
						}
					}
				}
			}
		})
	}
	defer func() {
		stopping.Store(true)
		closeAll(all)
		wg.Wait()
	}()

	// A server may register a subscriber a moment after its handshake:
	// probe until every connection has received something.
	probe := pub.frame(ws.OpBinary, payload(fanoutPayload, tagProbe))
	readyBy := time.Now().Add(10 * time.Second)
	_ = pub.nc.SetWriteDeadline(readyBy)
	for ready.Load() < int64(len(all)) {
		if time.Now().After(readyBy) {
			return outcome{}, fmt.Errorf("only %d of %d connections received a probe within 10s", ready.Load(), len(all))
		}
		if err := pub.write(probe); err != nil {
			return outcome{}, err
		}
		if err := waitOrFail(ctx, errc, 50*time.Millisecond); err != nil {
			return outcome{}, err
		}
	}

	msg := pub.frame(ws.OpBinary, payload(fanoutPayload, tagMeasured))
	start := time.Now()
	for sent := 0; sent < cfg.fanoutMsgs; {
		b := min(cfg.fanoutBatch, cfg.fanoutMsgs-sent)
		remaining.Store(int64(b * len(all)))
		_ = pub.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for range b {
			if err := pub.write(msg); err != nil {
				return outcome{}, err
			}
		}
		t := time.NewTimer(10 * time.Second)
		select {
		case <-batchDone:
		case err := <-errc:
			t.Stop()
			return outcome{}, err
		case <-t.C:
			return outcome{}, fmt.Errorf("batch at message %d: %d of %d deliveries missing after 10s", sent, remaining.Load(), b*len(all))
		case <-ctx.Done():
			t.Stop()
			return outcome{}, ctx.Err()
		}
		t.Stop()
		sent += b
	}
	elapsed := time.Since(start)
	deliveries := int64(cfg.fanoutMsgs) * int64(len(all))
	return outcome{
		Values: map[string]float64{"fanout_deliveries_per_sec": float64(deliveries) / elapsed.Seconds()},
		Detail: map[string]any{"receivers": len(all), "messages": cfg.fanoutMsgs, "batch": cfg.fanoutBatch,
			"deliveries": deliveries, "measured_seconds": elapsed.Seconds()},
	}, nil
}

// runIdle measures what an idle echo connection costs the server: RSS
// growth per connection over the fresh server's, once a second after the
// last connection opened (what a server left alone holds) and after
// forced garbage collections once the numbers have settled; and the
// goroutines per connection.
func runIdle(ctx context.Context, cfg *config, srv *child) (outcome, error) {
	g0, err := srv.goroutines(ctx)
	if err != nil {
		return outcome{}, err
	}
	gc, nogc, detail, err := measureIdle(ctx, srv, cfg.idleConns)
	if err != nil {
		return outcome{}, err
	}
	after := detail["after_gc"].(memSample)
	return outcome{
		Values: map[string]float64{
			"idle_kib_per_conn":        gc,
			"idle_nogc_kib_per_conn":   nogc,
			"idle_goroutines_per_conn": float64(after.Goroutines-g0) / float64(cfg.idleConns),
		},
		Detail: detail,
	}, nil
}

// runHandshake measures the time to open connections one after another,
// each a TCP connect and a WebSocket handshake. The connections stay open
// until all are made.
func runHandshake(ctx context.Context, cfg *config, srv *child) (outcome, error) {
	// Warm the server's handshake path first.
	warm, err := dialMany(ctx, srv.addr, srv.raw, "/echo", 10, 1, 512)
	if err != nil {
		return outcome{}, err
	}
	closeAll(warm)

	conns := make([]*clientConn, 0, cfg.handshakes)
	defer func() { closeAll(conns) }()
	cpu0, cpuErr := srv.cpuTime()
	start := time.Now()
	for range cfg.handshakes {
		c, err := dial(ctx, srv.addr, srv.raw, "/echo", 512)
		if err != nil {
			return outcome{}, fmt.Errorf("after %d handshakes: %w", len(conns), err)
		}
		conns = append(conns, c)
	}
	elapsed := time.Since(start)
	values := map[string]float64{"handshake_us": float64(elapsed) / float64(time.Microsecond) / float64(len(conns))}
	if cpu1, err := srv.cpuTime(); err == nil && cpuErr == nil {
		// What each handshake cost the server in CPU, less sensitive to
		// scheduling on a loaded machine than the wall time.
		values["handshake_server_cpu_us"] = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(len(conns))
	}
	return outcome{
		Values: values,
		Detail: map[string]any{"handshakes": len(conns), "seconds": elapsed.Seconds()},
	}, nil
}

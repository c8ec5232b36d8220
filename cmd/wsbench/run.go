package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// config is what "wsbench run" was asked to do.
type config struct {
	libs         []string
	scenarios    []string
	quick        bool
	echoConns    int
	echoWarmup   time.Duration
	echoDuration time.Duration
	latencyN     int
	fanoutSubs   int
	fanoutMsgs   int
	fanoutBatch  int
	idleConns    int
	handshakes   int
	rounds       int
	timeout      time.Duration
	jsonFile     string
	exe          string // the program to start as "exe serve"
	pin          bool   // client on clientCPU, servers on serverCPU (see pin.go)
}

// quickDefaults are the defaults -quick puts in place of the full ones;
// flags given explicitly win over both.
var quickDefaults = map[string]string{
	"echo-warmup":   "250ms",
	"echo-duration": "2s",
	"latency-n":     "2000",
	"fanout-subs":   "200",
	"fanout-msgs":   "300",
	"idle-conns":    "2000",
	"handshakes":    "200",
	"rounds":        "1",
}

// maxFanoutBatch keeps a batch within the smallest per-subscriber queue
// of the servers (coder's chat example queues 16 messages and closes a
// subscriber that overflows them).
const maxFanoutBatch = 16

func parseRunFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	scenarioKeys := make([]string, 0, 8)
	for _, s := range scenarioList(cfg) {
		scenarioKeys = append(scenarioKeys, s.key)
	}
	fs := flag.NewFlagSet("wsbench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wsbench run [flags]\n\n"+
			"Runs every scenario against every library's server, each in a fresh\n"+
			"child process on 127.0.0.1, and prints one table.\n\nflags:\n")
		fs.PrintDefaults()
	}
	libs := fs.String("libs", strings.Join(libraryNames(), ","), "comma-separated libraries to compare")
	scens := fs.String("scenarios", strings.Join(scenarioKeys, ","), "comma-separated scenarios to run")
	fs.BoolVar(&cfg.quick, "quick", false, "smoke run of about a minute: smaller counts and shorter durations (explicit flags still win)")
	fs.IntVar(&cfg.echoConns, "echo-conns", 64, "connections in the echo throughput scenarios")
	fs.DurationVar(&cfg.echoWarmup, "echo-warmup", time.Second, "echo warm-up before measuring")
	fs.DurationVar(&cfg.echoDuration, "echo-duration", 4*time.Second, "echo measurement time, per payload size and round")
	fs.IntVar(&cfg.latencyN, "latency-n", 30000, "round trips measured in the latency scenario")
	fs.IntVar(&cfg.fanoutSubs, "fanout-subs", 1000, "subscriber connections in the fan-out scenario (the publisher also receives)")
	fs.IntVar(&cfg.fanoutMsgs, "fanout-msgs", 500, "messages the publisher sends in the fan-out scenario")
	fs.IntVar(&cfg.fanoutBatch, "fanout-batch", 10, fmt.Sprintf("messages in flight before the publisher waits for every delivery (1-%d)", maxFanoutBatch))
	fs.IntVar(&cfg.idleConns, "idle-conns", 10000, "connections held open in the idle-memory scenario")
	fs.IntVar(&cfg.handshakes, "handshakes", 1000, "sequential handshakes in the handshake scenario")
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds of every scenario, each taking the libraries in a rotated order; the table has each figure's median")
	fs.BoolVar(&cfg.pin, "pin", canPin(), fmt.Sprintf("bind the load client to CPU %d and each server to CPU %d, each with GOMAXPROCS 1 (default: on when the machine has both CPUs)", clientCPU, serverCPU))
	fs.DurationVar(&cfg.timeout, "timeout", 20*time.Minute, "limit on the whole run")
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the raw results to this file as JSON, and SVG charts beside it (FILE without .json, then -NAME.svg); \"-\" writes the JSON to standard output instead of the table, and no charts")
	if err := parseFlags(fs, args, &cfg.quick, quickDefaults); err != nil {
		return nil, err
	}

	var err error
	if cfg.libs, err = pickList(*libs, libraryNames(), "library"); err != nil {
		return nil, err
	}
	if cfg.scenarios, err = pickList(*scens, scenarioKeys, "scenario"); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"echo-conns", int64(cfg.echoConns)},
		{"echo-duration", int64(cfg.echoDuration)},
		{"latency-n", int64(cfg.latencyN)},
		{"fanout-subs", int64(cfg.fanoutSubs)},
		{"fanout-msgs", int64(cfg.fanoutMsgs)},
		{"idle-conns", int64(cfg.idleConns)},
		{"handshakes", int64(cfg.handshakes)},
		{"rounds", int64(cfg.rounds)},
		{"timeout", int64(cfg.timeout)},
	} {
		if c.v <= 0 {
			return nil, fmt.Errorf("-%s must be positive", c.name)
		}
	}
	if cfg.echoWarmup < 0 {
		return nil, errors.New("-echo-warmup must not be negative")
	}
	if cfg.fanoutBatch < 1 || cfg.fanoutBatch > maxFanoutBatch {
		return nil, fmt.Errorf("-fanout-batch must be between 1 and %d", maxFanoutBatch)
	}
	return cfg, nil
}

// pickList parses a comma-separated list of names, each of which must be
// in known, and returns them in known's order.
func pickList(s string, known []string, what string) ([]string, error) {
	want := map[string]bool{}
	for n := range strings.SplitSeq(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown %s %q (have %s)", what, n, strings.Join(known, ", "))
		}
		want[n] = true
	}
	var out []string
	for _, n := range known {
		if want[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s chosen", what)
	}
	return out, nil
}

// report is everything one run measured; -json writes it as it is.
type report struct {
	Machine     machine                        `json:"machine"`
	Started     time.Time                      `json:"started"`
	WallSeconds float64                        `json:"wall_seconds"`
	Config      map[string]any                 `json:"config"`
	Libs        []string                       `json:"libs"`
	Metrics     []metricInfo                   `json:"metrics"`
	Results     map[string]map[string]*outcome `json:"results"` // library, then scenario
}

type metricInfo struct {
	Key      string `json:"key"`
	Scenario string `json:"scenario"`
	Label    string `json:"label"`
	Unit     string `json:"unit"`
	Higher   bool   `json:"higher_is_better"`
	Hidden   bool   `json:"hidden,omitempty"` // in the JSON and charts, not the table
}

// run is "wsbench run": the scenarios in order, each against every
// library's server in turn (so that one row's figures are measured close
// together in time), then the table.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.exe == "" {
		if cfg.exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding wsbench's own executable: %w", err)
		}
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "wsbench: %v\n", err)
	}
	if need := uint64(max(cfg.idleConns, cfg.handshakes, cfg.fanoutSubs) + 64); fileLimit() < need {
		return fmt.Errorf("the open-file limit is %d; the scenarios need %d (lower -idle-conns)", fileLimit(), need)
	}
	if cfg.pin {
		if err := pinProcess(clientCPU); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	rep := &report{
		Machine: machineFacts(),
		Started: time.Now(),
		Config:  cfg.summary(),
		Libs:    cfg.libs,
		Results: map[string]map[string]*outcome{},
	}
	var scens []scenario
	for _, s := range scenarioList(cfg) {
		if slices.Contains(cfg.scenarios, s.key) {
			scens = append(scens, s)
			for _, m := range s.metrics {
				rep.Metrics = append(rep.Metrics, metricInfo{Key: m.key, Scenario: s.key, Label: m.label, Unit: m.unit, Higher: m.higher, Hidden: m.hidden})
			}
		}
	}
	for _, lib := range cfg.libs {
		rep.Results[lib] = map[string]*outcome{}
	}
	toStdout := cfg.jsonFile == "-"
	if !toStdout {
		printHeader(stdout, rep)
	}

	// On a shared machine the load drifts while a row is measured: rounds
	// interleave the libraries, each round in a rotated order, and the
	// table folds them (see foldRounds).
	var steps []progressStep
	for i, s := range scens {
		for r := range cfg.rounds {
			for j := range cfg.libs {
				lib := cfg.libs[(j+r)%len(cfg.libs)]
				steps = append(steps, progressStep{scenario: s.key, index: i + 1, lib: lib,
					round: r + 1, rounds: cfg.rounds, guess: s.guess(cfg)})
			}
		}
	}
	prog := newProgress(stderr, toStdout, steps)

	var runErr error
scenarios:
	for _, s := range scens {
		outs := map[string][]*outcome{}
		for r := range cfg.rounds {
			for i := range cfg.libs {
				lib := cfg.libs[(i+r)%len(cfg.libs)]
				if runErr = ctx.Err(); runErr != nil {
					break scenarios
				}
				prog.begin(len(scens))
				start := time.Now()
				var out *outcome
				if why := s.skips(lib); why != "" {
					out = &outcome{Skipped: why}
				} else {
					out = runOne(ctx, cfg, s, lib)
				}
				outs[lib] = append(outs[lib], out)
				prog.end(time.Since(start), describe(s, out))
			}
		}
		folded := map[string]*outcome{}
		for lib, o := range outs {
			folded[lib] = foldRounds(s, o)
			rep.Results[lib][s.key] = folded[lib]
		}
		roundRatios(s, cfg.libs, outs, folded)
	}
	prog.finish()
	rep.WallSeconds = time.Since(rep.Started).Seconds()

	if toStdout {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printTable(stdout, rep, scens)
		fmt.Fprintf(stdout, "\ntotal wall time: %s\n", time.Duration(rep.WallSeconds*float64(time.Second)).Round(100*time.Millisecond))
	}
	if cfg.jsonFile != "" && !toStdout {
		if err := writeJSONFile(cfg.jsonFile, rep); err != nil {
			return err
		}
		svgs, err := writeRunCharts(cfg.jsonFile, rep)
		if err != nil {
			return fmt.Errorf("charts: %w", err)
		}
		for _, f := range svgs {
			fmt.Fprintf(stdout, "chart: %s\n", f)
		}
	}
	if runErr != nil {
		return fmt.Errorf("run stopped early: %w", runErr)
	}
	return nil
}

// runOne runs scenario s against a fresh server process for lib.
func runOne(ctx context.Context, cfg *config, s scenario, lib string) *outcome {
	start := time.Now()
	cpu := -1
	if cfg.pin {
		cpu = serverCPU
	}
	srv, err := startChild(ctx, cfg.exe, lib, cpu)
	if err != nil {
		return &outcome{Error: err.Error()}
	}
	out, err := s.run(ctx, cfg, srv)
	srv.stop()
	out.Seconds = time.Since(start).Seconds()
	if err != nil {
		out.Values = nil
		out.Error = err.Error()
	}
	return &out
}

// foldRounds folds the rounds of one scenario for one library into one
// outcome: each metric is the median of the rounds that measured it, and
// the rounds themselves stay in its detail. It fails only if every round
// failed.
func foldRounds(s scenario, outs []*outcome) *outcome {
	if len(outs) == 1 || outs[0].Skipped != "" {
		return outs[0]
	}
	var ok []*outcome
	var secs float64
	for _, o := range outs {
		secs += o.Seconds
		if o.Error == "" {
			ok = append(ok, o)
		}
	}
	if len(ok) == 0 {
		return outs[len(outs)-1]
	}
	folded := &outcome{Values: map[string]float64{}, Detail: map[string]any{"rounds": outs}, Seconds: secs}
	for _, m := range s.metrics {
		var vs []float64
		for _, o := range ok {
			if v, found := o.Values[m.key]; found {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			continue
		}
		folded.Values[m.key] = median(vs)
	}
	return folded
}

// median returns the median of vs, which it sorts.
func median(vs []float64) float64 {
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// describe is a progress line for one outcome.
func describe(s scenario, out *outcome) string {
	if out.Error != "" {
		return "error: " + out.Error
	}
	if out.Skipped != "" {
		return "not run: " + out.Skipped
	}
	var parts []string
	for _, m := range s.metrics {
		if m.hidden {
			continue
		}
		if v, ok := out.Values[m.key]; ok {
			parts = append(parts, fmt.Sprintf("%s "+m.format+" %s", m.key, v, m.unit))
		}
	}
	return fmt.Sprintf("%s (%.1fs)", strings.Join(parts, ", "), out.Seconds)
}

func (cfg *config) summary() map[string]any {
	return map[string]any{
		"libs":          cfg.libs,
		"scenarios":     cfg.scenarios,
		"quick":         cfg.quick,
		"echo_conns":    cfg.echoConns,
		"echo_warmup":   cfg.echoWarmup.String(),
		"echo_duration": cfg.echoDuration.String(),
		"latency_n":     cfg.latencyN,
		"fanout_subs":   cfg.fanoutSubs,
		"fanout_msgs":   cfg.fanoutMsgs,
		"fanout_batch":  cfg.fanoutBatch,
		"idle_conns":    cfg.idleConns,
		"handshakes":    cfg.handshakes,
		"rounds":        cfg.rounds,
		"pinned":        cfg.pin,
	}
}

// machine describes where the figures were measured.
type machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPU        string `json:"cpu"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	Kernel     string `json:"kernel,omitempty"`
}

func machineFacts() machine {
	m := machine{
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		CPU:        "unknown",
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// parseFlags parses args, which must be flags only; with -quick, every
// flag the command line did not set takes its value from quick.
func parseFlags(fs *flag.FlagSet, args []string, isQuick *bool, quick map[string]string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if !*isQuick {
		return nil
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range quick {
		if !given[name] {
			if err := fs.Set(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

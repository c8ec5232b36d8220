package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for wsbench: the driver under test
// starts os.Executable() as "serve", "nats" or "node", which land here.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "nats" || os.Args[1] == "node") {
		os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestRunQuickTable runs every scenario with tiny counts against two
// libraries, each server in its own child process, and checks the table
// and the JSON results.
func TestRunQuickTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes and opens hundreds of connections")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	jsonFile := filepath.Join(t.TempDir(), "results.json")
	libs := []string{colibri, "gorilla", rawTCP}
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{
		"-quick",
		"-libs", strings.Join(libs, ","),
		"-echo-conns", "4",
		"-echo-warmup", "50ms",
		"-echo-duration", "200ms",
		"-latency-n", "200",
		"-fanout-subs", "20",
		"-fanout-msgs", "40",
		"-idle-conns", "200",
		"-handshakes", "20",
		"-json", jsonFile,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Logf("table:\n%s", out)

	for _, want := range []string{"machine: ", "scenario", "better", "total wall time"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "errors:") {
		t.Errorf("a scenario failed:\n%s", out)
	}
	// Every metric has a row with a figure and a ratio for each library.
	var rows int
	for _, s := range scenarioList(&config{echoConns: 4, fanoutSubs: 20, idleConns: 200, handshakes: 20}) {
		for _, m := range s.metrics {
			if m.hidden {
				continue
			}
			line := lineWith(out, m.label)
			if line == "" {
				t.Errorf("no row for %q", m.label)
				continue
			}
			rows++
			want := len(libs)
			if s.wsOnly {
				want-- // rawtcp's cell is n/a
				if !strings.Contains(line, "n/a") {
					t.Errorf("row %q has no n/a for %s: %s", m.label, rawTCP, line)
				}
			}
			if n := strings.Count(line, "×"); n != want {
				t.Errorf("row %q has %d ratios, want %d: %s", m.label, n, want, line)
			}
		}
	}
	if rows == 0 {
		t.Fatal("no rows")
	}

	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results file: %v", err)
	}
	for _, lib := range libs {
		for _, m := range rep.Metrics {
			o := rep.Results[lib][m.Scenario]
			if o != nil && o.Skipped != "" && lib == rawTCP {
				continue
			}
			if o == nil || o.Error != "" {
				t.Errorf("%s %s: %+v", lib, m.Scenario, o)
				continue
			}
			if v := o.Values[m.Key]; v <= 0 && m.Higher {
				t.Errorf("%s %s = %v, want a positive figure", lib, m.Key, v)
			}
		}
	}

	// The charts are beside the JSON, and are SVG.
	for _, name := range []string{"comparison", "latency"} {
		b, err := os.ReadFile(chartPath(jsonFile, name))
		if err != nil {
			t.Errorf("chart %s: %v", name, err)
			continue
		}
		if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte(colibri)) {
			t.Errorf("chart %s is not an SVG naming %s", name, colibri)
		}
	}
}

func lineWith(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, sub) {
			return line
		}
	}
	return ""
}

// TestBaselineIgnoresColibri checks which figure the ratios are taken
// against: the best peer's, in the row's own direction, and the best
// library's when colibri runs alone.
func TestBaselineIgnoresColibri(t *testing.T) {
	up := metric{key: "x", higher: true}
	down := metric{key: "x"}
	s := scenario{key: "s"}
	rep := &report{
		Libs: []string{colibri, "a", "b"},
		Results: map[string]map[string]*outcome{
			colibri: {"s": {Values: map[string]float64{"x": 100}}},
			"a":     {"s": {Values: map[string]float64{"x": 10}}},
			"b":     {"s": {Values: map[string]float64{"x": 20}}},
		},
	}
	if got, _ := baseline(rep, up, s); got != 20 {
		t.Errorf("higher is better: baseline %v, want 20", got)
	}
	if got, _ := baseline(rep, down, s); got != 10 {
		t.Errorf("lower is better: baseline %v, want 10", got)
	}
	rep.Results["b"]["s"] = &outcome{Error: "boom"}
	if got, _ := baseline(rep, up, s); got != 10 {
		t.Errorf("with b failed: baseline %v, want 10", got)
	}
	rep.Libs = []string{colibri}
	if got, ok := baseline(rep, down, s); !ok || got != 100 {
		t.Errorf("colibri alone: baseline %v %v, want 100", got, ok)
	}
}

func TestFoldRounds(t *testing.T) {
	s := scenario{key: "x", metrics: []metric{{key: "a"}, {key: "b"}}}
	outs := []*outcome{
		{Values: map[string]float64{"a": 3, "b": 10}, Seconds: 1},
		{Error: "refused", Seconds: 1},
		{Values: map[string]float64{"a": 1, "b": 30}, Seconds: 1},
		{Values: map[string]float64{"a": 2, "b": 20}, Seconds: 1},
	}
	got := foldRounds(s, outs)
	if got.Error != "" || got.Values["a"] != 2 || got.Values["b"] != 20 || got.Seconds != 4 {
		t.Fatalf("median of rounds: %+v", got)
	}
	even := foldRounds(s, outs[:3])
	if even.Values["a"] != 2 || even.Values["b"] != 20 {
		t.Fatalf("median of two rounds: %+v", even.Values)
	}
	if failed := foldRounds(s, outs[1:2]); failed.Error != "refused" {
		t.Fatalf("a single failed round: %+v", failed)
	}
	if allFailed := foldRounds(s, []*outcome{{Error: "e1"}, {Error: "e2"}}); allFailed.Error == "" {
		t.Fatal("every round failed, yet the outcome has no error")
	}
}

func TestRoundRatiosFollowTheRound(t *testing.T) {
	s := scenario{key: "x", metrics: []metric{{key: "cpu"}}}
	libs := []string{colibri, "gws", "gorilla"}
	round := func(v float64) *outcome { return &outcome{Values: map[string]float64{"cpu": v}} }
	// The machine is twice as fast in the last two rounds: colibri is 10 %
	// behind gws in every round, which the medians of the figures (10 vs
	// 10.5) would not say.
	rounds := map[string][]*outcome{
		colibri:   {round(22), round(22), round(11), round(11), round(11)},
		"gws":     {round(20), round(20), round(20), round(10), round(10)},
		"gorilla": {round(30), {Error: "refused"}, round(30), round(15), round(15)},
	}
	folded := map[string]*outcome{}
	for lib, o := range rounds {
		folded[lib] = foldRounds(s, o)
	}
	roundRatios(s, libs, rounds, folded)
	if got := folded[colibri].Ratios["cpu"]; math.Abs(got-1.1) > 1e-9 {
		t.Errorf("colibri's ratio %v, want 1.1 (its figures' median %v, gws's %v)", got, folded[colibri].Values["cpu"], folded["gws"].Values["cpu"])
	}
	if got := folded["gws"].Ratios["cpu"]; got != 1 {
		t.Errorf("the best peer's ratio %v, want 1", got)
	}
	if got := folded["gorilla"].Ratios["cpu"]; got != 1.5 {
		t.Errorf("gorilla's ratio %v over its four good rounds, want 1.5", got)
	}
	rep := &report{Libs: libs, Results: map[string]map[string]*outcome{}}
	for lib, f := range folded {
		rep.Results[lib] = map[string]*outcome{"x": f}
	}
	best, ok := baseline(rep, s.metrics[0], s)
	if r, _ := ratio(folded[colibri], s.metrics[0], best, ok); math.Abs(r-1.1) > 1e-9 {
		t.Errorf("the table's ratio %v, want the rounds' 1.1", r)
	}
}

package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// printHeader prints the machine facts and the run's settings.
func printHeader(w io.Writer, rep *report) {
	m := rep.Machine
	fmt.Fprintf(w, "wsbench: WebSocket servers side by side, client and servers on 127.0.0.1\n")
	fmt.Fprintf(w, "machine: %s/%s, %s, NumCPU %d, GOMAXPROCS %d, %s", m.GOOS, m.GOARCH, m.CPU, m.NumCPU, m.GOMAXPROCS, m.Go)
	if m.Kernel != "" {
		fmt.Fprintf(w, ", kernel %s", m.Kernel)
	}
	c := rep.Config
	if c["pinned"] == true {
		fmt.Fprintf(w, "; client on CPU %d, servers on CPU %d, GOMAXPROCS 1 each", clientCPU, serverCPU)
	}
	fmt.Fprintf(w, "\nstarted: %s\n", rep.Started.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "settings: echo %v conns, %v warm-up + %v; latency %v round trips; fan-out %v subs, %v msgs in batches of %v; idle %v conns; %v handshakes\n",
		c["echo_conns"], c["echo_warmup"], c["echo_duration"], c["latency_n"],
		c["fanout_subs"], c["fanout_msgs"], c["fanout_batch"], c["idle_conns"], c["handshakes"])
	fmt.Fprintln(w)
}

// baseline is the figure a row's ratios are taken against: the best peer's
// (every WebSocket library but colibri and its variants), or the best
// library's when no peer has a figure.
func baseline(rep *report, m metric, s scenario) (float64, bool) {
	return bestOf(rep.Libs, m, func(lib string) (float64, bool) {
		out := rep.Results[lib][s.key]
		if out == nil || out.Error != "" {
			return 0, false
		}
		v, ok := out.Values[m.key]
		return v, ok
	})
}

// bestOf returns the best of the figures value gives for libs, taking
// peers only when any peer has one.
func bestOf(libs []string, m metric, value func(lib string) (float64, bool)) (float64, bool) {
	best, found := 0.0, false
	for _, peersOnly := range []bool{true, false} {
		for _, lib := range libs {
			if peersOnly && kindOf(lib) != peerLib {
				continue
			}
			v, ok := value(lib)
			if !ok {
				continue
			}
			if !found || (m.higher && v > best) || (!m.higher && v < best) {
				best, found = v, true
			}
		}
		if found {
			break
		}
	}
	return best, found
}

// ratio returns out's figure for m over the baseline: the ratio folded
// from the rounds when there were several, else the figure over best.
func ratio(out *outcome, m metric, best float64, haveBest bool) (float64, bool) {
	if r, ok := out.Ratios[m.key]; ok {
		return r, true
	}
	v, ok := out.Values[m.key]
	if !ok || !haveBest || best == 0 || math.IsNaN(v/best) {
		return 0, false
	}
	return v / best, true
}

// roundRatios sets each library's Ratios from its rounds: in every round,
// the library's figure over the best peer's in that same round, then the
// median over the rounds. The libraries of one round are measured within
// a minute of each other, while the machine's speed can change from one
// minute to the next (a shared two-core machine moved every library's
// 16 KiB echo from 13 to 8.5 µs per message within one run), so ratios
// within a round say more than ratios of medians. folded maps each
// library to its folded outcome, rounds to its rounds in order.
func roundRatios(s scenario, libs []string, rounds map[string][]*outcome, folded map[string]*outcome) {
	n := 0
	for _, o := range rounds {
		n = max(n, len(o))
	}
	if n < 2 {
		return
	}
	for _, m := range s.metrics {
		perLib := map[string][]float64{}
		for r := range n {
			value := func(lib string) (float64, bool) {
				if r >= len(rounds[lib]) {
					return 0, false
				}
				o := rounds[lib][r]
				if o.Error != "" || o.Skipped != "" {
					return 0, false
				}
				v, ok := o.Values[m.key]
				return v, ok
			}
			best, ok := bestOf(libs, m, value)
			if !ok || best == 0 {
				continue
			}
			for _, lib := range libs {
				if v, ok := value(lib); ok {
					perLib[lib] = append(perLib[lib], v/best)
				}
			}
		}
		for lib, rs := range perLib {
			f := folded[lib]
			if f == nil || f.Error != "" || f.Skipped != "" {
				continue
			}
			if f.Ratios == nil {
				f.Ratios = map[string]float64{}
			}
			f.Ratios[m.key] = median(rs)
		}
	}
}

// rowCells is a table row for m: its label, unit and direction, then a
// cell per library, the figure as format writes it and its ratio to the
// baseline.
func rowCells(rep *report, m metric, scenarioKey string, format func(float64) string) []string {
	better := "lower"
	if m.higher {
		better = "higher"
	}
	cells := []string{m.label, m.unit, better}
	best, haveBest := baseline(rep, m, scenario{key: scenarioKey})
	for _, lib := range rep.Libs {
		out := rep.Results[lib][scenarioKey]
		switch {
		case out == nil:
			cells = append(cells, "not run")
		case out.Skipped != "":
			cells = append(cells, "n/a")
		case out.Error != "":
			cells = append(cells, "error")
		default:
			v, ok := out.Values[m.key]
			if !ok {
				cells = append(cells, "n/a")
				continue
			}
			cell := format(v)
			if r, ok := ratio(out, m, best, haveBest); ok {
				cell += fmt.Sprintf(" ×%.2f", r)
			}
			cells = append(cells, cell)
		}
	}
	return cells
}

// printTable prints one row per metric and one column per library; each
// cell is the figure and, after ×, its ratio to the baseline.
func printTable(w io.Writer, rep *report, scens []scenario) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tunit\tbetter\t%s\n", strings.Join(rep.Libs, "\t"))
	var errs []string
	for _, s := range scens {
		for _, m := range s.metrics {
			if m.hidden {
				continue
			}
			cells := rowCells(rep, m, s.key, func(v float64) string { return fmt.Sprintf(m.format, v) })
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		for _, lib := range rep.Libs {
			if out := rep.Results[lib][s.key]; out != nil && out.Error != "" {
				errs = append(errs, fmt.Sprintf("  %s, %s: %s", s.key, lib, out.Error))
			}
		}
	}
	_ = tw.Flush()

	ref := "the best peer's figure in its row (peers: every WebSocket library but " + colibri + " and its variants; " + rawTCP + " is not a WebSocket)"
	if !hasPeer(rep.Libs) {
		ref = "the best figure in its row"
	}
	fmt.Fprintf(w, "\n×r: the figure divided by %s, within each round, then the median over the rounds.\n", ref)
	fmt.Fprintf(w, "better=higher rows: ×r above 1 beats the baseline; better=lower rows: ×r below 1 beats it.\n")
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nerrors:\n%s\n", strings.Join(errs, "\n"))
	}
}

func hasPeer(libs []string) bool {
	for _, l := range libs {
		if kindOf(l) == peerLib {
			return true
		}
	}
	return false
}

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
	best, found := 0.0, false
	for _, peersOnly := range []bool{true, false} {
		for _, lib := range rep.Libs {
			if peersOnly && kindOf(lib) != peerLib {
				continue
			}
			out := rep.Results[lib][s.key]
			if out == nil || out.Error != "" {
				continue
			}
			v, ok := out.Values[m.key]
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
			better := "lower"
			if m.higher {
				better = "higher"
			}
			cells := []string{m.label, m.unit, better}
			best, haveBest := baseline(rep, m, s)
			for _, lib := range rep.Libs {
				out := rep.Results[lib][s.key]
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
					cell := fmt.Sprintf(m.format, v)
					if haveBest && best != 0 && !math.IsNaN(v/best) {
						cell += fmt.Sprintf(" ×%.2f", v/best)
					}
					cells = append(cells, cell)
				}
			}
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
	fmt.Fprintf(w, "\n×r: the figure divided by %s.\n", ref)
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

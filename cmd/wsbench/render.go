package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// printCapacity prints a capacity run's figures as a table.
func printCapacity(w io.Writer, rep *capReport) {
	m := rep.Machine
	fmt.Fprintf(w, "wsbench capacity: colibri with its defaults, on 127.0.0.1\n")
	fmt.Fprintf(w, "machine: %s/%s, %s, NumCPU %d, %s\n\n", m.GOOS, m.GOARCH, m.CPU, m.NumCPU, m.Go)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range costRows(rep) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	_ = tw.Flush()
	if len(rep.Errors) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, k := range sortedKeys(rep.Errors) {
			fmt.Fprintf(w, "  %s: %s\n", k, rep.Errors[k])
		}
	}
	fmt.Fprintf(w, "\ntotal wall time: %.1fs\n", rep.WallSeconds)
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// costRows lists the figures of a capacity run that it has, in the order
// docs/capacity.md gives them: what, figure, unit.
func costRows(rep *capReport) [][3]string {
	var rows [][3]string
	add := func(key, label, format, unit string) {
		if v, ok := rep.Cost[key]; ok {
			rows = append(rows, [3]string{label, fmt.Sprintf(format, v), unit})
		}
	}
	var idle []int
	for k := range rep.Cost {
		var n int
		if _, err := fmt.Sscanf(k, "idle_kib_%d", &n); err == nil {
			idle = append(idle, n)
		}
	}
	slices.Sort(idle)
	for _, n := range idle {
		add(fmt.Sprintf("idle_kib_%d", n), fmt.Sprintf("memory per idle socket at %s, after a forced GC", num(float64(n))), "%.2f", "KiB")
		add(fmt.Sprintf("idle_nogc_kib_%d", n), fmt.Sprintf("memory per idle socket at %s, no forced GC", num(float64(n))), "%.2f", "KiB")
	}
	size := "a message"
	if v, ok := rep.Config["inflight_size"].(float64); ok {
		size = fmt.Sprintf("a %d KiB message", int(v)>>10)
	} else if v, ok := rep.Config["inflight_size"].(int); ok {
		size = fmt.Sprintf("a %d KiB message", v>>10)
	}
	add("inflight_kib", "memory per socket receiving "+size+", over idle", "%.1f", "KiB")
	add("handshake_cpu_us", "CPU per handshake", "%.0f", "µs")
	add("echo_cpu_us", fmt.Sprintf("CPU per echoed %d B message", smallPayload), "%.1f", "µs")
	add("local_delivery_cpu_us", "CPU per local delivery (node A, publisher's node)", "%.2f", "µs")
	add("remote_delivery_cpu_us", "CPU per remote delivery (node B, through NATS)", "%.2f", "µs")
	add("nats_msgs_per_publish", "NATS messages per publish (in + out), 2 nodes", "%.2f", "messages")
	add("nats_cpu_per_publish_us", "NATS server CPU per publish, 2 nodes", "%.1f", "µs")
	add("cluster_deliveries_per_sec", "cross-node deliveries per second", "%.0f", "deliveries/s")
	for _, side := range []string{"local", "remote"} {
		for _, lq := range latencyQuantiles[:4] {
			add(side+"_latency_"+lq.name+"_us", fmt.Sprintf("publish-to-receipt latency %s, %s subscribers", strings.Replace(lq.name, "p999", "p99.9", 1), side), "%.0f", "µs")
		}
	}
	add("outage_published", "outage: messages published", "%.0f", "messages")
	add("outage_down_ms", "outage: NATS down for", "%.0f", "ms")
	add("outage_remote_lost_messages", "outage: messages no remote subscriber got", "%.0f", "messages")
	add("outage_counted_lost_messages", "outage: messages the nodes counted lost (missing on B, not sent by A)", "%.0f", "messages")
	add("outage_remote_missing", "outage: remote deliveries missing", "%.0f", "deliveries")
	add("outage_counted_deliveries", "outage: remote deliveries the nodes counted lost", "%.0f", "deliveries")
	add("outage_uncounted_deliveries", "outage: missing and not counted", "%.0f", "deliveries")
	add("outage_overcounted_deliveries", "outage: counted lost but delivered", "%.0f", "deliveries")
	add("outage_refused_publishes_a", "outage: publishes NATS refused on node A", "%.0f", "publishes")
	add("outage_local_missing_deliveries", "outage: local deliveries missing", "%.0f", "deliveries")
	add("outage_resume_ms", "outage: first remote delivery after the restart", "%.0f", "ms")
	add("outage_resume_new_ms", "outage: first remote delivery of a message published after the restart", "%.0f", "ms")
	add("outage_gap_ms", "outage: longest gap in remote deliveries", "%.0f", "ms")
	return rows
}

// writeCapacityCharts writes the charts of a capacity run beside
// jsonFile: publish-to-receipt latency local versus remote, and remote
// deliveries over the outage.
func writeCapacityCharts(jsonFile string, rep *capReport) ([]string, error) {
	var out []string
	if _, ok := rep.Cost["local_latency_p50_us"]; ok {
		path := chartPath(jsonFile, "latency")
		var lines []percentileLine
		for _, side := range []struct {
			name string
			c    color.Color
			dash bool
		}{
			{"local (node A, the publisher's)", libColor(colibri, 0), false},
			{"remote (node B, through NATS)", color.RGBA{R: 0xd0, G: 0x60, B: 0x20, A: 0xff}, true},
		} {
			key := strings.Fields(side.name)[0]
			l := percentileLine{name: side.name, color: side.c, dash: side.dash, us: map[float64]float64{}}
			for _, lq := range latencyQuantiles {
				if v, ok := rep.Cost[key+"_latency_"+lq.name+"_us"]; ok {
					l.us[lq.q] = v
				}
			}
			lines = append(lines, l)
		}
		subs := rep.Cost["cluster_subscribers_local"] + rep.Cost["cluster_subscribers_remote"]
		title := fmt.Sprintf("publish-to-receipt latency, 1 publisher to %s subscribers on 2 nodes", num(subs))
		if err := percentilePlot(title, lines, path); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	if d, ok := rep.Detail["outage"].(map[string]any); ok {
		path := chartPath(jsonFile, "outage")
		if err := outageChart(d, path); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}

// outageChart draws remote deliveries per 100 ms through the outage, with
// the kill and the restart marked.
func outageChart(d map[string]any, path string) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	var o struct {
		Bins      []float64 `json:"remote_arrivals_per_100ms"`
		KillAt    float64   `json:"kill_at_ms"`
		RestartAt float64   `json:"restart_at_ms"`
		Remote    int       `json:"subscribers_remote"`
		Rate      float64   `json:"rate_per_sec"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("NATS killed and restarted: deliveries to %d remote subscribers (%.0f msg/s published)", o.Remote, o.Rate)
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "remote deliveries per 100 ms"
	last := len(o.Bins)
	for last > 0 && o.Bins[last-1] == 0 {
		last--
	}
	var xys plotter.XYs
	for i, v := range o.Bins[:last] {
		xys = append(xys, plotter.XY{X: float64(i) / 10, Y: v}, plotter.XY{X: float64(i+1) / 10, Y: v})
	}
	if len(xys) == 0 {
		return fmt.Errorf("no remote deliveries to draw")
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = libColor(colibri, 0)
	l.Width = vg.Points(1.5)
	p.Add(l)
	ymax := 0.0
	for _, v := range o.Bins {
		ymax = math.Max(ymax, v)
	}
	for _, m := range []struct {
		at   float64
		name string
		c    color.Color
	}{
		{o.KillAt / 1000, "NATS killed", color.RGBA{R: 0xc0, A: 0xff}},
		{o.RestartAt / 1000, "NATS restarted", color.RGBA{G: 0x90, A: 0xff}},
	} {
		v, err := plotter.NewLine(plotter.XYs{{X: m.at, Y: 0}, {X: m.at, Y: ymax * 1.1}})
		if err != nil {
			return err
		}
		v.Color = m.c
		v.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(v)
		p.Legend.Add(m.name, v)
	}
	p.Legend.Top = true
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 3.5*vg.Inch, path)
}

// renderMain is "wsbench render": it rewrites the generated parts of the
// docs from results files, so that the figures, tables and charts in
// docs/performance.md and docs/capacity.md all come from one run.
func renderMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runFile := fs.String("run", "", "results of wsbench run -json")
	capFile := fs.String("capacity", "", "results of wsbench capacity -json")
	docs := fs.String("docs", "docs", "the docs folder: performance.md and capacity.md are rewritten between their <!-- wsbench:NAME --> markers; charts go to its bench/ folder")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wsbench render -run FILE -capacity FILE [-docs DIR]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runFile == "" && *capFile == "" {
		return fmt.Errorf("nothing to render: give -run, -capacity or both")
	}
	benchDir := filepath.Join(*docs, "bench")
	if err := os.MkdirAll(benchDir, 0o755); err != nil {
		return err
	}
	if *runFile != "" {
		var rep report
		if err := readJSON(*runFile, &rep); err != nil {
			return err
		}
		files, err := writeRunCharts(filepath.Join(benchDir, "wsbench.json"), &rep)
		if err != nil {
			return err
		}
		section := runMarkdown(&rep, files, *docs)
		if err := replaceSections(filepath.Join(*docs, "performance.md"), map[string]string{"comparison": section}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rendered %s into %s\n", *runFile, filepath.Join(*docs, "performance.md"))
	}
	if *capFile != "" {
		var rep capReport
		if err := readJSON(*capFile, &rep); err != nil {
			return err
		}
		files, err := writeCapacityCharts(filepath.Join(benchDir, "capacity.json"), &rep)
		if err != nil {
			return err
		}
		sections, err := capacityMarkdown(&rep, files, *docs)
		if err != nil {
			return err
		}
		if err := replaceSections(filepath.Join(*docs, "capacity.md"), sections); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rendered %s into %s\n", *capFile, filepath.Join(*docs, "capacity.md"))
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// replaceSections rewrites, in the Markdown file at path, what lies
// between <!-- wsbench:NAME --> and <!-- /wsbench:NAME --> for each
// section. A missing marker is an error: the docs decide where generated
// text goes.
func replaceSections(path string, sections map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	for _, name := range sortedKeys(sections) {
		begin, end := "<!-- wsbench:"+name+" -->", "<!-- /wsbench:"+name+" -->"
		i := strings.Index(doc, begin)
		j := strings.Index(doc, end)
		if i < 0 || j < i {
			return fmt.Errorf("%s has no %s ... %s markers", path, begin, end)
		}
		doc = doc[:i+len(begin)] + "\n" + strings.TrimSpace(sections[name]) + "\n" + doc[j:]
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// machineLine describes the machine in prose.
func machineLine(m machine) string {
	s := fmt.Sprintf("%s/%s, %s, %d CPUs, %s", m.GOOS, m.GOARCH, m.CPU, m.NumCPU, m.Go)
	if m.Kernel != "" {
		s += ", Linux " + m.Kernel
	}
	return s
}

// relLink is path relative to the docs folder, for an image link.
func relLink(docs, path string) string {
	if r, err := filepath.Rel(docs, path); err == nil {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(path)
}

// runMarkdown is the comparison table of a run, in Markdown, with its
// charts.
func runMarkdown(rep *report, charts []string, docs string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s. Started %s, total wall time %.0f s. Settings: %v.\n\n",
		machineLine(rep.Machine), rep.Started.Format("2006-01-02 15:04 MST"), rep.WallSeconds, configLine(rep.Config))
	fmt.Fprintf(&b, "| scenario | unit | better | %s |\n|---|---|---|%s\n", strings.Join(rep.Libs, " | "), strings.Repeat("---|", len(rep.Libs)))
	for _, mi := range rep.Metrics {
		if mi.Hidden {
			continue
		}
		m := metric{key: mi.Key, label: mi.Label, unit: mi.Unit, higher: mi.Higher}
		cells := rowCells(rep, m, mi.Scenario, func(v float64) string {
			if v < 100 {
				return fmt.Sprintf("%.2f", v)
			}
			return num(v)
		})
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	b.WriteString("\nEach cell is the median of the rounds and, after ×, its ratio to the best peer's figure, taken within each round and then the median over the rounds (peers: every WebSocket library but colibri and colibri-lean; rawtcp is plain TCP, not a WebSocket).\n")
	for _, c := range charts {
		fmt.Fprintf(&b, "\n![%s](%s)\n", strings.TrimSuffix(filepath.Base(c), ".svg"), relLink(docs, c))
	}
	return b.String()
}

func configLine(c map[string]any) string {
	var parts []string
	for _, k := range sortedKeys(c) {
		if k == "libs" || k == "scenarios" || k == "steps" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %v", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

// capacityMarkdown is the generated parts of docs/capacity.md.
func capacityMarkdown(rep *capReport, charts []string, docs string) (map[string]string, error) {
	c, missing := costsOf(rep)
	if len(missing) > 0 {
		return nil, fmt.Errorf("the capacity results lack %s: run every step", strings.Join(missing, ", "))
	}
	sections := map[string]string{}

	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s. Started %s, total wall time %.0f s. Settings: %v.\n\n",
		machineLine(rep.Machine), rep.Started.Format("2006-01-02 15:04 MST"), rep.WallSeconds, configLine(rep.Config))
	b.WriteString("| what | figure | unit |\n|---|---|---|\n")
	for _, r := range costRows(rep) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	for _, ch := range charts {
		fmt.Fprintf(&b, "\n![%s](%s)\n", strings.TrimSuffix(filepath.Base(ch), ".svg"), relLink(docs, ch))
	}
	sections["figures"] = b.String()

	b.Reset()
	for i, w := range theWorkloads {
		p := planFor(w, c)
		fmt.Fprintf(&b, "### %d. %s\n\n", i+1, w.name)
		for _, l := range p.lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
		fmt.Fprintf(&b, "\n**%d colibri node(s) of this machine's size and %d NATS server(s).**\n\n", p.nodes, p.natsServers)
	}
	sections["plans"] = b.String()

	b.Reset()
	nodeMemKiB := planMemGiB * planMemUse * 1024 * 1024
	b.WriteString("| per node of this machine's size | from | figure |\n|---|---|---|\n")
	row := func(what, from string, v float64) { fmt.Fprintf(&b, "| %s | %s | %s |\n", what, from, num(v)) }
	row(fmt.Sprintf("idle sockets in %.0f%% of %d GiB", planMemUse*100, planMemGiB), fmt.Sprintf("%.2f KiB each", c.idleKiB), nodeMemKiB/c.idleKiB)
	row(fmt.Sprintf("sockets each receiving a %d KiB message at once", 64), fmt.Sprintf("%.2f + %.1f KiB each", c.idleKiB, c.inflightKiB), nodeMemKiB/(c.idleKiB+c.inflightKiB))
	perCore := planCPUUse * 1e6
	row("handshakes per second per core", fmt.Sprintf("%.0f µs each", c.handshakeUs), perCore/c.handshakeUs)
	row("echoed small messages per second per core", fmt.Sprintf("%.1f µs each", c.echoUs), perCore/c.echoUs)
	row("local deliveries per second per core", fmt.Sprintf("%.2f µs each", c.localUs), perCore/c.localUs)
	row("remote deliveries per second per core", fmt.Sprintf("%.2f µs each", c.remoteUs), perCore/c.remoteUs)
	row("sockets kept alive (30 s pings) per core", fmt.Sprintf("%.1f µs per ping", c.echoUs), perCore*planPingSec/c.echoUs)
	row("NATS messages (in or out) per second per core", fmt.Sprintf("%.2f µs each", c.natsUsPerMsg), perCore/c.natsUsPerMsg)
	fmt.Fprintf(&b, "\nPer-core rows assume %.0f%% of a core; multiply by your cores. Memory rows scale with the memory you give the process.\n", planCPUUse*100)
	sections["rescale"] = b.String()
	return sections, nil
}

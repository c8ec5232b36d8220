package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCapacityQuick runs every capacity step with tiny counts: a colibri
// server per step, then a NATS server and two nodes in their own
// processes, NATS killed and restarted; then renders the docs from the
// results.
func TestCapacityQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes and a NATS server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "capacity.json")
	cfg, err := parseCapFlags([]string{
		"-quick", "-idle-conns", "200,300", "-inflight-conns", "50", "-handshakes", "50",
		"-echo-conns", "4", "-echo-duration", "300ms",
		"-cluster-subs", "20", "-cluster-msgs", "50", "-latency-msgs", "20",
		"-outage-subs", "10", "-outage-rate", "100",
		"-outage-before", "700ms", "-outage-down", "500ms", "-outage-after", "1500ms",
		"-json", jsonFile,
	}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.exe, err = os.Executable(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := capacity(ctx, cfg, &stdout, &stderr); err != nil {
		t.Fatalf("capacity: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("summary:\n%s", stdout.String())

	var rep capReport
	if err := readJSON(jsonFile, &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"idle_kib_200", "idle_kib_300", "idle_nogc_kib_300", "inflight_kib", "handshake_cpu_us", "echo_cpu_us",
		"local_delivery_cpu_us", "remote_delivery_cpu_us", "nats_cpu_per_publish_us",
		"local_latency_p50_us", "remote_latency_p99_us", "cluster_deliveries_per_sec",
	} {
		if v, ok := rep.Cost[k]; !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want a positive figure", k, v, ok)
		}
	}
	// A 64 KiB message held by the server costs at least its size.
	if v := rep.Cost["inflight_kib"]; v < 32 {
		t.Errorf("memory per socket with a 64 KiB message in flight: %.1f KiB", v)
	}
	// A publish on A enters NATS once and leaves once, for B: A's own
	// subscribers get it locally, and NATS does not echo it back.
	if v := rep.Cost["nats_msgs_per_publish"]; v != 2 {
		t.Errorf("NATS messages per publish = %v, want 2", v)
	}
	if v := rep.Cost["outage_local_missing_deliveries"]; v != 0 {
		t.Errorf("the outage cost %v local deliveries; local members do not depend on NATS", v)
	}
	if _, ok := rep.Cost["outage_resume_ms"]; !ok {
		t.Errorf("remote delivery did not resume after NATS came back: %v", rep.Cost)
	}
	if v := rep.Cost["outage_published"]; v < 100 {
		t.Errorf("only %v messages published during the outage scenario", v)
	}
	missing, counted, uncounted := rep.Cost["outage_remote_missing"], rep.Cost["outage_counted_deliveries"], rep.Cost["outage_uncounted_deliveries"]
	if uncounted != max(missing-counted, 0) {
		t.Errorf("outage: missing %v, counted %v, uncounted %v do not add up", missing, counted, uncounted)
	}
	// Every remote delivery the outage cost is counted, and nothing more.
	if missing != counted {
		t.Errorf("outage: %v remote deliveries missing, %v counted", missing, counted)
	}
	if lost, countedLost := rep.Cost["outage_remote_lost_messages"], rep.Cost["outage_counted_lost_messages"]; lost != countedLost {
		t.Errorf("outage: %v messages reached no remote subscriber, the nodes counted %v", lost, countedLost)
	}
	for _, name := range []string{"latency", "outage"} {
		b, err := os.ReadFile(chartPath(jsonFile, name))
		if err != nil || !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("chart %s: %v", name, err)
		}
	}

	// Render a docs folder from the results.
	docs := filepath.Join(dir, "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	page := "# Capacity\n\n<!-- wsbench:figures -->\nold\n<!-- /wsbench:figures -->\n\n" +
		"<!-- wsbench:plans -->\n<!-- /wsbench:plans -->\n\n<!-- wsbench:rescale -->\n<!-- /wsbench:rescale -->\n\nhand-written tail\n"
	if err := os.WriteFile(filepath.Join(docs, "capacity.md"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := renderMain([]string{"-capacity", jsonFile, "-docs", docs}, &stdout, &stderr); err != nil {
		t.Fatalf("render: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(docs, "capacity.md"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"CPU per remote delivery", "NATS server(s)", "colibri node(s)", "](bench/capacity-latency.svg)", "hand-written tail"} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered capacity.md lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\nold\n") {
		t.Error("render kept the old text between the markers")
	}
}

// TestPlanArithmetic checks the model against a plan worked out by hand.
func TestPlanArithmetic(t *testing.T) {
	c := costs{idleKiB: 8, echoUs: 10, handshakeUs: 300, localUs: 2, remoteUs: 3, natsUsPerMsg: 5}
	// 1M sockets × 8 KiB = 7.6 GiB: one node's 70 % of 24 GiB holds it.
	// CPU with 2 nodes: pings 33,333/s × 10 µs = 0.33 cores; handshakes
	// 278/s × 300 µs = 0.08; publishes read 10,000 × 10 µs = 0.1;
	// deliveries 490,000/s × (0.5 × 3 + 0.5 × 2) µs = 1.225; in all 1.74
	// cores, over one node's 1.4: 2 nodes (with 1 node the deliveries
	// would be all local, 0.98 cores, 1.5 in all: 2 nodes as well).
	p := planFor(theWorkloads[0], c)
	if p.nodes != 2 {
		t.Errorf("nodes = %d, want 2:\n%s", p.nodes, strings.Join(p.lines, "\n"))
	}
	// NATS: 10,000 publishes × (1 + ~1 out) × 5 µs = 0.1 cores: 1 server.
	if p.natsServers != 1 {
		t.Errorf("NATS servers = %d, want 1", p.natsServers)
	}
	// A memory-bound load: 100,000 sockets at 300 KiB each is 28.6 GiB,
	// two nodes' worth of 16.8 GiB.
	heavy := costs{idleKiB: 300, echoUs: 10, handshakeUs: 300, localUs: 2, remoteUs: 3, natsUsPerMsg: 5}
	p = planFor(workload{name: "heavy", sockets: 1e5, feed: true, feedHz: 0.001}, heavy)
	if p.nodes != 2 {
		t.Errorf("memory-bound nodes = %d, want 2:\n%s", p.nodes, strings.Join(p.lines, "\n"))
	}
	if got := num(1234567.4); got != "1,234,567" {
		t.Errorf("num = %q", got)
	}
}

func TestNatsOut(t *testing.T) {
	w := workload{roomSize: 50}
	if got := w.natsOut(1); got != 0 {
		t.Errorf("one node: %v NATS messages out, want 0", got)
	}
	// With 2 nodes the other node almost surely has one of 49 members.
	if got := w.natsOut(2); got < 0.999 || got > 1 {
		t.Errorf("two nodes: %v, want about 1", got)
	}
	// With 100 nodes, 49 members reach about 39 of the 99 others.
	if got := w.natsOut(100); got < 38 || got > 40 {
		t.Errorf("100 nodes: %v, want about 39", got)
	}
	if got := (workload{feed: true}).natsOut(5); got != 4 {
		t.Errorf("a feed on 5 nodes: %v, want 4", got)
	}
}

func TestReplaceSectionsNeedsMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.md")
	if err := os.WriteFile(path, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replaceSections(path, map[string]string{"a": "text"}); err == nil {
		t.Fatal("no error for a page without markers")
	}
}

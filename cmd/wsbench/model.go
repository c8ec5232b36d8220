package main

import (
	"fmt"
	"math"
	"strings"
)

// The capacity model turns the measured costs into node counts. Its
// assumptions are stated once, here and in the text it writes:
//
//   - a node is this machine: planCores cores and planMemGiB GiB, of
//     which planCPUUse and planMemUse are planned for, the rest being
//     headroom for bursts, garbage collection and the application's own
//     work;
//   - a keep-alive ping costs the server what a small echo does (a frame
//     out, a frame in), once per socket per wsconn.DefaultPingInterval;
//   - reading a publish costs what a small echo does (an upper bound: an
//     echo also writes);
//   - sockets reconnect once an hour on average (deploys, networks);
//   - a delivery to a member on the publisher's node costs what a local
//     delivery measured; to a member on another node, what a remote one
//     measured (NATS receive, framing, queueing, the write);
//   - rooms are spread evenly: a member of a room is on each node with the
//     same chance;
//   - the NATS server's CPU per message (in or out) is the same at any
//     rate, within one NATS server's limits.
const (
	planCores      = 2
	planMemGiB     = 24
	planCPUUse     = 0.7
	planMemUse     = 0.7
	planPingSec    = 30.0
	planReconnects = 1.0 / 3600 // per socket per second
)

// costs are the figures the model reads from a capacity run.
type costs struct {
	idleKiB, inflightKiB                float64
	handshakeUs, echoUs                 float64
	localUs, remoteUs                   float64
	natsUsPerMsg, natsMsgsPerPub        float64
	idleAt                              int
	localP50, localP99, remoteP50, rP99 float64
}

// costsOf picks the model's figures from rep: memory per idle socket at
// the largest count measured, the larger of with and without a forced
// collection.
func costsOf(rep *capReport) (costs, []string) {
	c := costs{}
	var missing []string
	get := func(k string) float64 {
		v, ok := rep.Cost[k]
		if !ok {
			missing = append(missing, k)
		}
		return v
	}
	for k := range rep.Cost {
		var n int
		if _, err := fmt.Sscanf(k, "idle_kib_%d", &n); err == nil && n > c.idleAt {
			c.idleAt = n
		}
	}
	if c.idleAt == 0 {
		missing = append(missing, "idle_kib_N")
	} else {
		c.idleKiB = max(rep.Cost[fmt.Sprintf("idle_kib_%d", c.idleAt)], rep.Cost[fmt.Sprintf("idle_nogc_kib_%d", c.idleAt)])
	}
	c.inflightKiB = get("inflight_kib")
	c.handshakeUs = get("handshake_cpu_us")
	c.echoUs = get("echo_cpu_us")
	c.localUs = get("local_delivery_cpu_us")
	c.remoteUs = get("remote_delivery_cpu_us")
	c.natsMsgsPerPub = get("nats_msgs_per_publish")
	if n := get("nats_cpu_per_publish_us"); c.natsMsgsPerPub > 0 {
		c.natsUsPerMsg = n / c.natsMsgsPerPub
	}
	c.localP50, c.localP99 = get("local_latency_p50_us"), get("local_latency_p99_us")
	c.remoteP50, c.rP99 = get("remote_latency_p50_us"), get("remote_latency_p99_us")
	return c, missing
}

// workload is one planning question.
type workload struct {
	name        string
	sockets     float64
	publishes   float64 // per second, into rooms
	roomSize    float64 // members per room, the publisher included
	feed        bool    // every socket subscribes to one feed
	feedHz      float64
	publisherIn bool // publishes come in from clients (and are read)
}

// plan is the model's answer for one workload, with its arithmetic.
type plan struct {
	nodes, natsServers int
	lines              []string // the arithmetic, one step a line
}

// deliveries per second and the share of them that cross nodes, for n
// nodes.
func (w workload) deliveries(n int) (perSec, remoteShare float64) {
	if w.feed {
		// Every subscriber gets every tick; the publisher's node is one
		// of n.
		return w.sockets * w.feedHz, float64(n-1) / float64(n)
	}
	return w.publishes * (w.roomSize - 1), float64(n-1) / float64(n)
}

// natsOut is the NATS messages delivered per publish: one to each other
// node with a member of the room (NoEcho keeps the publisher's own).
func (w workload) natsOut(n int) float64 {
	if n <= 1 {
		return 0
	}
	if w.feed {
		return float64(n - 1)
	}
	others := float64(n - 1)
	// Each of the roomSize-1 other members is on a given other node with
	// chance 1/n.
	return others * (1 - math.Pow(1-1/float64(n), w.roomSize-1))
}

func planFor(w workload, c costs) plan {
	var p plan
	add := func(format string, args ...any) { p.lines = append(p.lines, fmt.Sprintf(format, args...)) }
	nodeMemKiB := planMemGiB * planMemUse * 1024 * 1024
	nodeCPU := planCores * planCPUUse * 1e6 // µs of CPU per second

	memKiB := w.sockets * c.idleKiB
	memNodes := int(math.Ceil(memKiB / nodeMemKiB))
	add("memory: %s sockets × %.2f KiB = %s; a node plans for %.0f%% of %d GiB = %.1f GiB → **%d node(s)**",
		num(w.sockets), c.idleKiB, gib(memKiB), planMemUse*100, planMemGiB, nodeMemKiB/1024/1024, memNodes)

	pings := w.sockets / planPingSec
	handshakes := w.sockets * planReconnects
	n := max(memNodes, 1)
	var cpuNodes int
	var total, deliv, share float64
	for range 10 { // the remote share depends on n: iterate to a fixed point
		deliv, share = w.deliveries(n)
		perDelivery := share*c.remoteUs + (1-share)*c.localUs
		total = pings*c.echoUs + handshakes*c.handshakeUs + deliv*perDelivery
		if w.publisherIn {
			total += w.publishes * c.echoUs
		}
		cpuNodes = int(math.Ceil(total / nodeCPU))
		next := max(memNodes, cpuNodes, 1)
		if next == n {
			break
		}
		n = next
	}
	add("keep-alive: %s sockets / %.0f s = %s pings/s × %.1f µs = %.2f cores",
		num(w.sockets), planPingSec, num(pings), c.echoUs, pings*c.echoUs/1e6)
	add("reconnects: %s sockets / 3,600 s = %s handshakes/s × %.0f µs = %.2f cores",
		num(w.sockets), num(handshakes), c.handshakeUs, handshakes*c.handshakeUs/1e6)
	if w.publisherIn {
		add("publishes read: %s/s × %.1f µs = %.2f cores", num(w.publishes), c.echoUs, w.publishes*c.echoUs/1e6)
	}
	if w.feed {
		add("deliveries: %s sockets × %.0f Hz = %s/s", num(w.sockets), w.feedHz, num(deliv))
	} else {
		add("deliveries: %s publishes/s × %.0f other members = %s/s", num(w.publishes), w.roomSize-1, num(deliv))
	}
	add("with %d node(s), %.0f%% of members are on another node than the publisher: %s × (%.2f × %.2f µs remote + %.2f × %.2f µs local) = %.2f cores",
		n, share*100, num(deliv), share, c.remoteUs, 1-share, c.localUs, deliv*(share*c.remoteUs+(1-share)*c.localUs)/1e6)
	add("CPU in all: %.2f cores; a node plans for %.0f%% of %d cores = %.1f → **%d node(s)**",
		total/1e6, planCPUUse*100, planCores, nodeCPU/1e6, cpuNodes)
	p.nodes = max(memNodes, cpuNodes, 1)
	add("nodes: the larger of the two → **%d**", p.nodes)

	pubs := w.publishes
	if w.feed {
		pubs = w.feedHz
	}
	out := w.natsOut(p.nodes)
	natsMsgs := pubs * (1 + out)
	natsCores := natsMsgs * c.natsUsPerMsg / 1e6
	p.natsServers = max(int(math.Ceil(natsCores/(planCores*planCPUUse))), 1)
	add("NATS: %s publishes/s × (1 in + %.1f out to the other nodes with members) = %s messages/s × %.2f µs = %.2f cores → **%d NATS server(s)** (more for redundancy)",
		num(pubs), out, num(natsMsgs), c.natsUsPerMsg, natsCores, p.natsServers)
	return p
}

// num formats a count with thousands separators, rounding to an integer.
func num(v float64) string {
	s := fmt.Sprintf("%.0f", math.Round(v))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// gib formats KiB as GiB.
func gib(kib float64) string { return fmt.Sprintf("%.1f GiB", kib/1024/1024) }

// theWorkloads are the two questions docs/capacity.md answers.
var theWorkloads = []workload{
	{name: "1,000,000 sockets, 1% active per second: 10,000 publishes/s into rooms of 50",
		sockets: 1e6, publishes: 1e4, roomSize: 50, publisherIn: true},
	{name: "100,000 sockets receiving a 10 Hz feed",
		sockets: 1e5, feed: true, feedHz: 10},
}

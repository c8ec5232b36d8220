package natsbroker

// filterSubjects against a brute-force oracle: every small filter against
// the topics it matches by topics.Match, escaped levels included.

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/topics"
)

// rcoMatch reports whether NATS pattern p matches literal subject s.
func rcoMatch(p, s string) bool {
	pt, st := strings.Split(p, "."), strings.Split(s, ".")
	for i, tok := range pt {
		if tok == ">" {
			return len(st) > i
		}
		if i >= len(st) || (tok != "*" && tok != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

// rcoLevels are the levels topics and filters are made of: plain ones,
// one starting with '$', and levels that travel escaped (empty, holding
// '.', '*', '>', a space or non-ASCII, starting with '~').
var rcoLevels = []string{"a", "b", "$sys", "", "x.y", "*", ">", "~k", "sp ace", "é"}

// rcoTopics returns every topic of one to three levels over levels.
func rcoTopics(levels []string) []string {
	var out []string
	cur := []string{""}
	for n := 1; n <= 3; n++ {
		var next []string
		for _, c := range cur {
			for _, l := range levels {
				if n == 1 {
					next = append(next, l)
				} else {
					next = append(next, c+"/"+l)
				}
			}
		}
		cur = next
		for _, c := range cur {
			if c != "" { // the empty topic is invalid
				out = append(out, c)
			}
		}
	}
	return out
}

// rcoFilter returns a random valid filter of one to three levels.
func rcoFilter(r *rand.Rand, levels []string) string {
	n := 1 + r.IntN(3)
	if n == 1 && r.IntN(2) == 0 {
		return "+"
	}
	parts := make([]string, n)
	for i := range parts {
		switch x := r.IntN(10); {
		case x < 3:
			parts[i] = "+"
		case x < 4 && i == n-1:
			parts[i] = "#"
		default:
			parts[i] = levels[r.IntN(len(levels))]
		}
	}
	if f := strings.Join(parts, "/"); f != "" {
		return f
	}
	return "a"
}

// TestFilterSubjectsOracle: for random filters over plain and escaped
// levels, a topic's subject matches one of the filter's subjects exactly
// when the hub's matching says the filter matches it, apart from the '$'
// rule the hub applies itself; the subjects of one filter are disjoint;
// every topic's subject comes back as the topic.
func TestFilterSubjectsOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all := rcoTopics(rcoLevels)
	subjOf := make(map[string]string, len(all))
	for _, tp := range all {
		subjOf[tp] = string(appendSubject(nil, "p.q", tp))
		back, ok := topicOf("p.q", subjOf[tp])
		if !ok || back != tp {
			t.Fatalf("topic %q: subject %q comes back as %q, %v", tp, subjOf[tp], back, ok)
		}
	}
	// natsMatches: the topics some subject of f matches on the wire.
	natsMatches := func(f string) map[string]bool {
		m := map[string]bool{}
		subs := filterSubjects("p.q", f)
		for _, tp := range all {
			n := 0
			for _, s := range subs {
				if rcoMatch(s, subjOf[tp]) {
					n++
				}
			}
			if n > 1 {
				t.Errorf("filter %q: topic %q arrives through %d of its subjects %q", f, tp, n, subs)
			}
			m[tp] = n > 0
		}
		return m
	}
	hubMatch := func(f, tp string) bool {
		if topics.Match(f, tp) {
			return true
		}
		// The hub's '$' rule: NATS still carries such topics to a
		// subscription whose first token is a wildcard; the hub filters
		// them.
		return tp[0] == '$' && (f[0] == '+' || f[0] == '#') && topics.Match(f, "Z"+tp[1:])
	}
	for range 400 {
		f := rcoFilter(r, rcoLevels)
		nm := natsMatches(f)
		for _, tp := range all {
			if nm[tp] != hubMatch(f, tp) {
				t.Fatalf("filter %q, topic %q: on the wire %v, hub %v (subjects %q)", f, tp, nm[tp], hubMatch(f, tp), filterSubjects("p.q", f))
			}
		}
	}
}

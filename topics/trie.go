package topics

import "strings"

// subscription is one member's subscription to one filter.
type subscription struct {
	m      *Member
	filter string
	policy Policy // resolved: never the zero Policy
}

// node is one level of the subscription trie. The path from the root
// spells a filter; subs are the subscriptions to exactly that filter.
type node struct {
	children map[string]*node // literal levels
	plus     *node            // '+'
	hash     *node            // '#'; never has children of its own
	subs     []*subscription
	index    map[*Member]int // position of each member's subscription in subs
}

func (n *node) empty() bool {
	return len(n.subs) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

func (n *node) child(level string, create bool) *node {
	var c *node
	switch level {
	case "+":
		c = n.plus
	case "#":
		c = n.hash
	default:
		c = n.children[level]
	}
	if c != nil || !create {
		return c
	}
	c = &node{}
	switch level {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		if n.children == nil {
			n.children = make(map[string]*node)
		}
		n.children[level] = c
	}
	return c
}

func (n *node) drop(level string) {
	switch level {
	case "+":
		n.plus = nil
	case "#":
		n.hash = nil
	default:
		delete(n.children, level)
	}
}

// trie holds every subscription of a hub, keyed by filter. It is not
// safe for concurrent use; the hub guards it.
type trie struct {
	root node
}

// add stores s, or updates the policy of the member's existing
// subscription to the same filter. It reports whether s was new.
func (t *trie) add(s *subscription) bool {
	n := &t.root
	rest := s.filter
	for {
		level, after, more := strings.Cut(rest, "/")
		n = n.child(level, true)
		if !more {
			break
		}
		rest = after
	}
	if i, ok := n.index[s.m]; ok {
		n.subs[i].policy = s.policy
		return false
	}
	if n.index == nil {
		n.index = make(map[*Member]int)
	}
	n.index[s.m] = len(n.subs)
	n.subs = append(n.subs, s)
	return true
}

// remove deletes m's subscription to filter and prunes the levels that
// are left empty. It reports whether there was one.
func (t *trie) remove(filter string, m *Member) bool {
	var pathBuf [16]*node
	var levelBuf [16]string
	path, levels := pathBuf[:0], levelBuf[:0]
	n := &t.root
	rest := filter
	for {
		level, after, more := strings.Cut(rest, "/")
		path, levels = append(path, n), append(levels, level)
		if n = n.child(level, false); n == nil {
			return false
		}
		if !more {
			break
		}
		rest = after
	}
	i, ok := n.index[m]
	if !ok {
		return false
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		n.index[n.subs[i].m] = i
	}
	n.subs[last] = nil
	n.subs = n.subs[:last]
	delete(n.index, m)
	if cap(n.subs) > 16 && len(n.subs) < cap(n.subs)/4 {
		n.subs = append([]*subscription(nil), n.subs...)
	}
	if len(n.subs) == 0 {
		n.subs, n.index = nil, nil
	}
	for k := len(path) - 1; k >= 0 && n.empty(); k-- {
		path[k].drop(levels[k])
		n = path[k]
	}
	return true
}

// match appends to out every node whose filter matches topic and that has
// subscriptions. Nodes come in order of specificity: comparing filters
// level by level from the left, a literal level comes before '+', which
// comes before '#'. topic must be valid.
func (t *trie) match(topic string, out []*node) []*node {
	dollar := topic[0] == '$' // MQTT: '$' topics are hidden from leading wildcards
	var stackBuf [16]step
	stack := append(stackBuf[:0], step{n: &t.root, rest: topic, more: true, first: true})
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := s.n
		switch {
		case s.hash:
			out = append(out, n.hash)
			continue
		case !s.more:
			// The topic ends here, which "a/#" matches as well as "a".
			if len(n.subs) > 0 {
				out = append(out, n)
			}
			if n.hash != nil && len(n.hash.subs) > 0 {
				out = append(out, n.hash)
			}
			continue
		}
		level, after, more := strings.Cut(s.rest, "/")
		wild := !(s.first && dollar)
		// Pushed in reverse: the literal level is visited first, then '+',
		// then '#'.
		if n.hash != nil && wild && len(n.hash.subs) > 0 {
			stack = append(stack, step{n: n, hash: true})
		}
		if n.plus != nil && wild {
			stack = append(stack, step{n: n.plus, rest: after, more: more})
		}
		if c := n.children[level]; c != nil {
			stack = append(stack, step{n: c, rest: after, more: more})
		}
	}
	return out
}

// step is a node match still has to visit: n has consumed a level, and
// rest holds the levels after it if more is set. A hash step emits n.hash.
type step struct {
	n     *node
	rest  string
	more  bool
	first bool // n is the root
	hash  bool
}

// seenBefore reports whether m has a subscription in one of nodes, which
// come earlier in a match: m then already got the message.
func seenBefore(nodes []*node, m *Member) bool {
	for _, n := range nodes {
		if _, ok := n.index[m]; ok {
			return true
		}
	}
	return false
}

package natsbroker

import "testing"

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		t, s string
		want bool
	}{
		{"p.a.>", "p.a.b", true},
		{"p.a.>", "p.a.b.c", true},
		{"p.a.>", "p.a.*", true},
		{"p.a.>", "p.a.>", true},
		{"p.a.>", "p.a", false}, // '>' takes one token or more
		{"p.>", "p.a", true},
		{"p.a.*", "p.a.b", true},
		{"p.a.*", "p.a.*", true},
		{"p.a.*", "p.a.>", false},
		{"p.a.*", "p.a.b.c", false},
		{"p.a.b", "p.a.*", false},
		{"p.a.b", "p.a.b", true},
		{"p.a.b", "p.a.c", false},
		{"p.a.b", "p.a", false},
		{"p.a", "p.a.b", false},
		{"p.*.b", "p.a.b", true},
		{"p.*.b", "p.a.*", false},
		{"p.+.b", "p.a.b", false}, // no MQTT wildcards on the wire
		{"q.>", "p.a", false},
		{"p.a.~YS5i", "p.a.~YS5i", true},
	} {
		if got := covers(c.t, c.s); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.t, c.s, got, c.want)
		}
	}
}

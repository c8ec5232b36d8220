package natsbroker

import (
	"slices"
	"testing"
)

func TestSubjectsRoundTrip(t *testing.T) {
	for _, tc := range []struct{ topic, subject string }{
		{"room/lobby", "p.room.lobby"},
		{"a", "p.a"},
		{"$sys/load", "p.$sys.load"},
		{"a//b", "p.a.~.b"},
		{"/", "p.~.~"},
		{"v1.2/x", "p.~djEuMg.x"},
		{"*/>", "p.~Kg.~Pg"},
		{"café", "p.~Y2Fmw6k"},
		{"~x", "p.~fng"},
		{"a~b", "p.a~b"},
		{"with space", "p.~d2l0aCBzcGFjZQ"},
	} {
		if got := string(appendSubject(nil, "p", tc.topic)); got != tc.subject {
			t.Errorf("subject of %q = %q, want %q", tc.topic, got, tc.subject)
		}
		if got, ok := topicOf("p", tc.subject); !ok || got != tc.topic {
			t.Errorf("topic of %q = %q, %v; want %q", tc.subject, got, ok, tc.topic)
		}
	}
	for _, bad := range []string{"p", "p.", "q.a", "pa.b", "p.~!!"} {
		if got, ok := topicOf("p", bad); ok {
			t.Errorf("topicOf(%q) = %q, want failure", bad, got)
		}
	}
}

func TestFilterSubjects(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"room/lobby", []string{"p.room.lobby"}},
		{"room/+", []string{"p.room.*"}},
		{"+/+", []string{"p.*.*"}},
		{"room/#", []string{"p.room", "p.room.>"}},
		{"+/#", []string{"p.*", "p.*.>"}},
		{"#", []string{"p.>"}},
		{"a//#", []string{"p.a.~", "p.a.~.>"}},
	} {
		if got := filterSubjects("p", tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("filterSubjects(%q) = %q, want %q", tc.filter, got, tc.want)
		}
	}
}

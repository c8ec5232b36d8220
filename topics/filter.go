package topics

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic or filter, in bytes.
const MaxTopicLen = 1024

// Sentinel errors, for errors.Is. The errors returned wrap them with the
// offending topic or filter and the rule it broke.
var (
	// ErrInvalidTopic is returned by Publish for a topic that breaks the
	// rules of the package doc: empty, too long, not UTF-8, holding U+0000
	// or a wildcard.
	ErrInvalidTopic = errors.New("topics: invalid topic")

	// ErrInvalidFilter is returned by Subscribe for a filter that breaks
	// the rules of the package doc: empty, too long, not UTF-8, holding
	// U+0000, a wildcard that does not fill its level, or a '#' that is
	// not the last level.
	ErrInvalidFilter = errors.New("topics: invalid filter")
)

// CheckTopic reports why topic cannot be published to, as an error
// matching ErrInvalidTopic, or nil. A Broker checks the topics it
// receives from other nodes with it before it delivers them, since a
// Publication's topic must be valid.
func CheckTopic(topic string) error {
	if why := checkCommon(topic); why != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidTopic, topic, why)
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w %q: wildcards are for filters, not topics", ErrInvalidTopic, topic)
	}
	return nil
}

// checkFilter reports why filter cannot be subscribed to, or nil.
func checkFilter(filter string) error {
	if why := checkCommon(filter); why != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidFilter, filter, why)
	}
	rest := filter
	for {
		level, after, more := strings.Cut(rest, "/")
		if len(level) > 1 && strings.ContainsAny(level, "+#") {
			return fmt.Errorf("%w %q: a wildcard must fill its level", ErrInvalidFilter, filter)
		}
		if level == "#" && more {
			return fmt.Errorf("%w %q: '#' must be the last level", ErrInvalidFilter, filter)
		}
		if !more {
			return nil
		}
		rest = after
	}
}

// checkCommon applies the rules topics and filters share.
func checkCommon(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxTopicLen:
		return fmt.Sprintf("longer than %d bytes", MaxTopicLen)
	case strings.IndexByte(s, 0) >= 0:
		return "holds U+0000"
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	return ""
}

// Match reports whether filter matches topic, by the rules a Hub applies
// to deliver a publish: '+' stands for exactly one level, '#' (the last
// level only) for any number of levels including none, so "a/#" matches
// "a" too; empty levels are levels like any other; and a topic whose
// first level starts with '$' is matched only by filters whose first
// level is literal. An invalid filter or topic matches nothing.
func Match(filter, topic string) bool {
	if checkFilter(filter) != nil || CheckTopic(topic) != nil {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

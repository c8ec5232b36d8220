package natsbroker

import (
	"encoding/base64"
	"strings"
)

// A topic level becomes one NATS subject token. Levels made only of
// characters that mean nothing to NATS travel as they are; any other
// level (empty, holding '.', '*', '>', spaces or non-ASCII, or starting
// with the escape mark) travels as "~" followed by its bytes in unpadded
// URL-safe base64, so that every topic has exactly one subject and back.
const escapeMark = '~'

func plainToken(level string) bool {
	if level == "" || level[0] == escapeMark {
		return false
	}
	for i := 0; i < len(level); i++ {
		switch c := level[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '$', c == ':', c == '@', c == '=', c == '~':
		default:
			return false
		}
	}
	return true
}

func appendToken(b []byte, level string) []byte {
	if plainToken(level) {
		return append(b, level...)
	}
	b = append(b, escapeMark)
	return base64.RawURLEncoding.AppendEncode(b, []byte(level))
}

// appendSubject appends the subject of topic under prefix.
func appendSubject(b []byte, prefix, topic string) []byte {
	b = append(b, prefix...)
	for {
		level, rest, more := strings.Cut(topic, "/")
		b = append(b, '.')
		b = appendToken(b, level)
		if !more {
			return b
		}
		topic = rest
	}
}

// filterSubjects returns the NATS subjects whose union holds every topic
// filter matches: '+' becomes '*'; a trailing '#' becomes '>' and, since
// MQTT's "a/#" matches "a" too, the subject of its parent as well. The
// subjects are disjoint, so a message arrives through at most one of them.
func filterSubjects(prefix, filter string) []string {
	b := []byte(prefix)
	for {
		level, rest, more := strings.Cut(filter, "/")
		switch level {
		case "#":
			if len(b) == len(prefix) {
				return []string{prefix + ".>"}
			}
			return []string{string(b), string(b) + ".>"}
		case "+":
			b = append(b, ".*"...)
		default:
			b = append(b, '.')
			b = appendToken(b, level)
		}
		if !more {
			return []string{string(b)}
		}
		filter = rest
	}
}

// topicOf turns a subject under prefix back into its topic.
func topicOf(prefix, subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok || len(rest) < 2 || rest[0] != '.' {
		return "", false
	}
	rest = rest[1:]
	var b strings.Builder
	b.Grow(len(rest))
	for {
		tok, after, more := strings.Cut(rest, ".")
		if tok != "" && tok[0] == escapeMark {
			raw, err := base64.RawURLEncoding.DecodeString(tok[1:])
			if err != nil {
				return "", false
			}
			b.Write(raw)
		} else {
			b.WriteString(tok)
		}
		if !more {
			return b.String(), true
		}
		b.WriteByte('/')
		rest = after
	}
}

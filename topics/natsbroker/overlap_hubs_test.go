package natsbroker_test

// End to end, with WebSocket members: two hubs sharing one Broker (one
// NATS connection) and a hub on another node, members with overlapping
// filters on each, and members leaving so that wildcard filters go while
// narrower ones stay. Every member gets each message its filters match
// exactly once, from every publisher, before and after; each hub's Link
// holds the subscriptions of its own filters.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// rcServe serves hub: each connection joins it, subscribes to its "sub"
// query values, says "ready" and then only receives.
func rcServe(t *testing.T, hub *topics.Hub) string {
	t.Helper()
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[url.Values]) error {
		m := hub.Join(s.Conn, nil)
		for _, f := range s.Value["sub"] {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		if err := out.WriteText(ctx, "ready"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		return in.Err()
	}
	return serveNode(t, handler, func(r *http.Request) url.Values { return r.URL.Query() })
}

// rcMember is a WebSocket client subscribed to filters.
type rcMember struct {
	name    string
	filters []string
	ws      *websocket.Conn
	done    chan struct{}

	mu     sync.Mutex
	got    []string
	marker map[string]chan struct{}
}

func rcJoin(t *testing.T, base, name string, filters ...string) *rcMember {
	t.Helper()
	filters = append(slices.Clone(filters), "zz/"+name)
	d := websocket.Dialer{HandshakeTimeout: rcGuard}
	ws, resp, err := d.Dial(base+"?"+url.Values{"sub": filters}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = ws.SetReadDeadline(time.Now().Add(rcGuard))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "ready" {
		t.Fatalf("%s: %q, %v", name, msg, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	m := &rcMember{name: name, filters: filters, ws: ws, done: make(chan struct{}), marker: map[string]chan struct{}{}}
	go func() {
		defer close(m.done)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			m.mu.Lock()
			m.got = append(m.got, string(msg))
			if ch := m.marker[string(msg)]; ch != nil {
				close(ch)
				delete(m.marker, string(msg))
			}
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ws.Close()
		<-m.done
	})
	return m
}

func (m *rcMember) expectMarker(payload string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan struct{})
	m.marker[payload] = ch
	return ch
}

func (m *rcMember) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	got := m.got
	m.got = nil
	return got
}

func (m *rcMember) leave(t *testing.T) {
	t.Helper()
	_ = m.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(rcGuard))
	select {
	case <-m.done:
	case <-time.After(rcGuard):
		t.Fatalf("%s: the server did not close", m.name)
	}
}

func TestHubsSharingABrokerWithOverlappingFilters(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	nc1 := rcConnect(t, ns.ClientURL())
	nc2 := rcConnect(t, ns.ClientURL())
	shared := natsbroker.New(nc1, &natsbroker.Options{Logger: quiet})
	h1 := newHub(t, topics.Options{Broker: shared, Limits: topics.Limits{MaxMessages: 4096}})
	h2 := newHub(t, topics.Options{Broker: shared, Limits: topics.Limits{MaxMessages: 4096}})
	h3 := newHub(t, topics.Options{Broker: natsbroker.New(nc2, &natsbroker.Options{Logger: quiet}), Limits: topics.Limits{MaxMessages: 4096}})
	hubs := map[string]*topics.Hub{"h1": h1, "h2": h2, "h3": h3}
	base := map[string]string{"h1": rcServe(t, h1), "h2": rcServe(t, h2), "h3": rcServe(t, h3)}

	members := map[string]*rcMember{
		"u1": rcJoin(t, base["h1"], "u1", "room/#", "room/lobby"),
		"u2": rcJoin(t, base["h1"], "u2", "room/lobby"),
		"u3": rcJoin(t, base["h2"], "u3", "room/+"),
		"u4": rcJoin(t, base["h2"], "u4", "+/lobby", "room/lobby"),
		"u5": rcJoin(t, base["h3"], "u5", "#"),
		"u6": rcJoin(t, base["h3"], "u6", "room/lobby", "hall"),
	}
	onHub := map[string]string{"u1": "h1", "u2": "h1", "u3": "h2", "u4": "h2", "u5": "h3", "u6": "h3"}
	topicPool := []string{"room/lobby", "room/x", "room/a/b", "room", "hall", "x/lobby", "other"}

	// filtersOf returns the filters of the members present on hub.
	filtersOf := func(hub string) []string {
		set := map[string]bool{}
		for name, m := range members {
			if onHub[name] == hub {
				for _, f := range m.filters {
					set[f] = true
				}
			}
		}
		var out []string
		for f := range set {
			out = append(out, f)
		}
		return out
	}
	checkSubs := func(phase string) {
		t.Helper()
		want := append(rcHeld(natsbroker.DefaultPrefix, filtersOf("h1")), rcHeld(natsbroker.DefaultPrefix, filtersOf("h2"))...)
		sort.Strings(want)
		var got []string
		deadline := time.Now().Add(rcGuard)
		for {
			got = rcServerSubs(t, ns, nc1)
			if slices.Equal(got, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond) // a poll: the hubs tell their Links after the members left
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: node 1 holds %q, want %q", phase, got, want)
		}
		want3 := rcHeld(natsbroker.DefaultPrefix, filtersOf("h3"))
		for deadline := time.Now().Add(rcGuard); ; {
			got = rcServerSubs(t, ns, nc2)
			if slices.Equal(got, want3) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if !slices.Equal(got, want3) {
			t.Fatalf("%s: node 2 holds %q, want %q", phase, got, want3)
		}
	}
	round := func(phase string) {
		t.Helper()
		for _, pub := range []string{"h1", "h2", "h3"} {
			for _, tp := range topicPool {
				msg := fmt.Sprintf("%s|%s|%s", phase, pub, tp)
				if err := hubs[pub].Publish(context.Background(), tp, messages.Text(msg)); err != nil {
					t.Fatal(err)
				}
			}
			// A marker per member, from the same publisher: what it
			// published before has reached the member when it arrives.
			var waits []<-chan struct{}
			for name, m := range members {
				marker := fmt.Sprintf("%s|%s|marker", phase, pub)
				waits = append(waits, m.expectMarker(marker))
				if err := hubs[pub].Publish(context.Background(), "zz/"+name, messages.Text(marker)); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range waits {
				select {
				case <-w:
				case <-time.After(rcGuard):
					t.Fatalf("%s: a marker from %s did not arrive", phase, pub)
				}
			}
		}
		for name, m := range members {
			count := map[string]int{}
			for _, g := range m.take() {
				if strings.HasSuffix(g, "|marker") {
					continue
				}
				count[g]++
			}
			for _, pub := range []string{"h1", "h2", "h3"} {
				for _, tp := range topicPool {
					want := 0
					for _, f := range m.filters {
						if topics.Match(f, tp) {
							want = 1
						}
					}
					msg := fmt.Sprintf("%s|%s|%s", phase, pub, tp)
					if count[msg] != want {
						t.Errorf("%s: %s got %q %d times, want %d", phase, name, msg, count[msg], want)
					}
					delete(count, msg)
				}
			}
			for msg, n := range count {
				t.Errorf("%s: %s got %q %d times, unexpected", phase, name, msg, n)
			}
		}
	}

	checkSubs("start")
	round("start")
	for _, name := range []string{"u1", "u5", "u3"} { // room/#, #, room/+ go
		members[name].leave(t)
		delete(members, name)
		checkSubs("after " + name + " left")
		round("after " + name + " left")
	}
	for _, h := range []*natsbroker.Broker{shared} {
		if l := h.Losses(); l != (natsbroker.Losses{}) {
			t.Errorf("losses %+v", l)
		}
	}
}

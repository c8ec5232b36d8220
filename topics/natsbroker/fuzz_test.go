package natsbroker

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/internal/memconn"
	"github.com/colibri-ws/colibri/internal/race"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// fuzzNode is the node id of the receiving link in FuzzReceive: a message
// that carries it is the node's own, never delivered.
const fuzzNode = 0x0123456789abcdef

// fuzzFilters are the filters of the receiving link's hub, one member's
// and the other's: between them, every valid topic, '$' ones under
// "$SYS" included.
var fuzzFilters = []string{"#", "+/+", "$SYS/#"}

var fuzzQuiet = slog.New(slog.DiscardHandler)

// fuzzEnvelope builds the data of a message as a colibri node sends it
// (version 2) or an older one did (version 1, without tseq).
func fuzzEnvelope(version byte, kind messages.Kind, node, seq, tseq uint64, key, payload string) []byte {
	b := []byte{version, byte(kind)}
	b = binary.BigEndian.AppendUint64(b, node)
	b = binary.BigEndian.AppendUint64(b, seq)
	if version == envVersion {
		b = binary.BigEndian.AppendUint64(b, tseq)
	}
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, payload...)
}

// FuzzReceive hands arbitrary messages, as NATS delivers them on the
// node's subscriptions (any client may publish under the prefix), to a
// receiving link whose deliver is a real hub's, with two members
// subscribed to fuzzFilters. Each run receives the first message, the
// second, then the first again (a second copy, as through overlapping
// subscriptions), with a fresh link. Whatever the subjects and data:
//
//   - nothing panics;
//   - a message is delivered exactly when it is a colibri publish,
//     written out again here: a version 2 envelope of at least 26 bytes
//     or a version 1 one of at least 18, text or binary, from another
//     node, its key within the data, on a subject under the prefix whose
//     escaped levels decode, with a sequence number above the last one
//     delivered from its node, and for a topic beginning with '$' a filter
//     that matches it; then with the topic the subject encodes, the kind,
//     key and payload of the envelope, and Lost the gap in the node's
//     numbering of its messages to that topic;
//   - what reaches the hub has a valid topic and a message of a valid
//     kind (see TestFuzzFindingReceiveInvalidTopic for the topic), and
//     the hub delivers only those;
//   - what the link, the hub and its members' senders allocate is bounded
//     by the input, never by a length the envelope announces;
//   - no goroutine is left once the members have sent what they got.
func FuzzReceive(f *testing.F) {
	subj := func(topic string) string { return string(appendSubject(nil, DefaultPrefix, topic)) }
	text, binaryKind := messages.KindText, messages.KindBinary
	for _, s := range []struct {
		subj1 string
		data1 []byte
		subj2 string
		data2 []byte
	}{
		// Colibri publishes, one after the other, and a gap of two.
		{subj("room/lobby"), fuzzEnvelope(2, text, 7, 1, 1, "", "hello"), subj("room/lobby"), fuzzEnvelope(2, text, 7, 2, 2, "", "again")},
		{subj("room/lobby"), fuzzEnvelope(2, text, 7, 1, 1, "", "hello"), subj("room/lobby"), fuzzEnvelope(2, binaryKind, 7, 4, 4, "k", "\x00\x01")},
		{subj("a"), fuzzEnvelope(2, binaryKind, 7, 5, 9, "price", "{}"), subj("b"), fuzzEnvelope(2, text, 8, 1, 1, "", "")},
		{subj("a.b/c d/é/"), fuzzEnvelope(2, text, 9, 1, 1, "key", "escaped levels"), subj("~x/-_:@=$"), fuzzEnvelope(1, text, 9, 2, 0, "", "version 1")},
		{subj("$SYS/health"), fuzzEnvelope(2, text, 7, 1, 1, "", "sys"), subj("$other/x"), fuzzEnvelope(2, text, 7, 2, 1, "", "not matched")},
		{subj(strings.Repeat("x", 1024)), fuzzEnvelope(2, text, 7, 1, 1, strings.Repeat("k", 200), "long"), subj("a/b"), fuzzEnvelope(2, text, 7, 1, 2, "", "old seq")},
		// Not colibri publishes, or not for this node.
		{subj("t"), fuzzEnvelope(2, text, fuzzNode, 1, 1, "", "own"), subj("t"), fuzzEnvelope(2, messages.Kind(0), 7, 1, 1, "", "kind 0")},
		{subj("t"), fuzzEnvelope(2, messages.Kind(8), 7, 1, 1, "", "close"), subj("t"), fuzzEnvelope(3, text, 7, 1, 1, "", "version 3")},
		{subj("t"), append(fuzzEnvelope(2, text, 7, 1, 1, "", "")[:26], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), subj("t"), fuzzEnvelope(2, text, 7, 2, 2, "", "")[:25]},
		{subj("t"), append(fuzzEnvelope(2, text, 7, 1, 1, "", "")[:26], 0x80, 0x80, 0x80, 0x80, 0x08, 'k'), subj("t"), fuzzEnvelope(1, text, 7, 1, 0, "", "")[:17]},
		{"other.subject", fuzzEnvelope(2, text, 7, 1, 1, "", "x"), "colibri.topicsx.a", fuzzEnvelope(2, text, 7, 2, 1, "", "x")},
		{"colibri.topics", fuzzEnvelope(2, text, 7, 1, 1, "", "x"), "colibri.topics.", fuzzEnvelope(2, text, 7, 2, 1, "", "x")},
		{"colibri.topics.~!!", fuzzEnvelope(2, text, 7, 1, 1, "", "x"), "colibri.topics.a..b", fuzzEnvelope(2, text, 7, 2, 1, "", "x")},
		{"", nil, "colibri.topics.a", []byte{}},
	} {
		f.Add(s.subj1, s.data1, s.subj2, s.data2)
	}
	h := newReceiveHarness(f)
	f.Fuzz(func(t *testing.T, subj1 string, data1 []byte, subj2 string, data2 []byte) {
		h.run(t, []*nats.Msg{
			{Subject: subj1, Data: data1},
			{Subject: subj2, Data: data2},
			{Subject: subj1, Data: data1},
		}, true)
	})
}

// TestFuzzFindingReceiveInvalidTopic holds receive to what
// topics.Publication promises of the Topic a Broker hands its hub ("it is
// valid"): first on the input FuzzReceive found when it checked that
// strictly (the plain token "#" is no NATS wildcard but is a topic's),
// then on the other ways a foreign publisher's subject decodes to an
// invalid topic.
func TestFuzzFindingReceiveInvalidTopic(t *testing.T) {
	h := newReceiveHarness(t)
	found := []byte("\x02\x01" + strings.Repeat("0", 132))
	t.Run("found", func(t *testing.T) {
		h.run(t, []*nats.Msg{
			{Subject: "colibri.topics.#", Data: found},
			{Subject: "0", Data: []byte("0")},
			{Subject: "colibri.topics.#", Data: found},
		}, true)
	})
	env := fuzzEnvelope(2, messages.KindText, 7, 1, 1, "", "foreign")
	for _, subject := range []string{
		"colibri.topics.~",     // ""
		"colibri.topics.~Kw",   // "+"
		"colibri.topics.a.~Iw", // "a/#"
		"colibri.topics.~_w",   // "\xff"
		"colibri.topics.~AA",   // "\x00"
		"colibri.topics." + strings.Repeat("x", topics.MaxTopicLen+1),
	} {
		t.Run(subject[:min(len(subject), 24)], func(t *testing.T) {
			h.run(t, []*nats.Msg{{Subject: subject, Data: env}}, true)
		})
	}
}

// receiveHarness is the hub, its members and the broker a FuzzReceive
// run's link delivers to; it lasts for the whole target.
type receiveHarness struct {
	hub     *topics.Hub
	deliver func(context.Context, topics.Publication) // the hub's
	members []*topics.Member
	b       *Broker
	ctx     context.Context
}

// captureBroker is a topics.Broker that keeps the hub's deliver func, for
// links built by hand.
type captureBroker struct {
	deliver func(context.Context, topics.Publication)
}

func (c *captureBroker) Open(deliver func(context.Context, topics.Publication)) (topics.Link, error) {
	c.deliver = deliver
	return nopLink{}, nil
}

type nopLink struct{}

func (nopLink) Subscribe(string) error                            { return nil }
func (nopLink) Unsubscribe(string) error                          { return nil }
func (nopLink) Publish(context.Context, topics.Publication) error { return nil }
func (nopLink) Close() error                                      { return nil }

func newReceiveHarness(tb testing.TB) *receiveHarness {
	tb.Helper()
	cb := &captureBroker{}
	hub, err := topics.NewHub(&topics.Options{Broker: cb, Logger: fuzzQuiet, Policy: topics.DropOldest})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &receiveHarness{
		hub:     hub,
		deliver: cb.deliver,
		b:       &Broker{prefix: DefaultPrefix, log: fuzzQuiet},
		ctx:     ctx,
	}
	// Two members on in-memory connections whose clients read and
	// discard everything: one takes "#", the other the rest under
	// KeepLatest.
	var wg sync.WaitGroup
	var clients []*memconn.Conn
	for i, filters := range [][]string{fuzzFilters[:1], fuzzFilters[1:]} {
		client, server := memconn.Pipe(0)
		clients = append(clients, client)
		wg.Go(func() { _, _ = io.Copy(io.Discard, client) })
		joined := make(chan *topics.Member, 1)
		wg.Go(func() {
			cfg := &wsconn.Config{Logger: fuzzQuiet, PingInterval: -1, CloseTimeout: time.Second}
			_ = wsconn.Serve(ctx, wsconn.Upgraded{Conn: server}, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				opts := &topics.MemberOptions{}
				if i == 1 {
					opts.Policy = topics.KeepLatest
				}
				m := hub.Join(s.Conn, opts)
				for _, f := range filters {
					if err := m.Subscribe(f); err != nil {
						tb.Errorf("subscribe %q: %v", f, err)
					}
				}
				joined <- m
				<-ctx.Done()
				return nil
			}, cfg)
		})
		select {
		case m := <-joined:
			h.members = append(h.members, m)
		case <-time.After(10 * time.Second):
			tb.Fatal("the member did not join")
		}
	}
	// The connections start goroutines of their own after the handlers
	// run (a reader while the handler does not read): runs count from
	// once they are all there.
	n, still := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(2 * time.Second); still < 10 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		if m := runtime.NumGoroutine(); m != n {
			n, still = m, 0
		} else {
			still++
		}
	}
	tb.Cleanup(func() {
		_ = hub.Close()
		cancel()
		for _, c := range clients {
			_ = c.Close()
		}
		wg.Wait()
	})
	return h
}

// fuzzDelivery is what a run's link handed the hub.
type fuzzDelivery struct {
	topic, key string
	kind       messages.Kind
	payload    []byte
	lost       int
	nilMessage bool
}

// receiveModel is the receiving side written out again from the package
// doc and the envelope's layout.
type receiveModel struct {
	seq  map[uint64]uint64            // the last sequence number delivered per node
	tseq map[uint64]map[string]uint64 // the last number per node and topic
}

// expect returns what receiving msg must deliver, if anything, and
// whether its topic is valid.
func (m *receiveModel) expect(msg *nats.Msg) (want fuzzDelivery, deliver, validTopic bool) {
	topic, ok := fuzzTopicOf(msg.Subject)
	d := msg.Data
	var header int
	switch {
	case len(d) >= 26 && d[0] == 2:
		header = 26
	case len(d) >= 18 && d[0] == 1:
		header = 18
	default:
		return want, false, false
	}
	kind := messages.Kind(d[1])
	node := binary.BigEndian.Uint64(d[2:10])
	seq := binary.BigEndian.Uint64(d[10:18])
	var tseq uint64
	if header == 26 {
		tseq = binary.BigEndian.Uint64(d[18:26])
	}
	klen, n := binary.Uvarint(d[header:])
	if !ok || (kind != messages.KindText && kind != messages.KindBinary) || node == fuzzNode || n <= 0 || klen > uint64(len(d)-header-n) {
		return want, false, false
	}
	last, known := m.seq[node]
	if known && seq <= last {
		return want, false, false // a second copy
	}
	m.seq[node] = seq
	if m.tseq[node] == nil {
		m.tseq[node] = make(map[string]uint64)
	}
	lost := 0
	if tseq != 0 {
		if prev, seen := m.tseq[node][topic]; seen && tseq > prev+1 {
			lost = int(min(tseq-prev-1, 1<<31-1))
		}
		m.tseq[node][topic] = tseq
	}
	validTopic = fuzzValidTopic(topic)
	if strings.HasPrefix(topic, "$") {
		matched := false
		for _, f := range fuzzFilters {
			matched = matched || topics.Match(f, topic)
		}
		if !matched {
			return want, false, validTopic
		}
	}
	start := header + n
	return fuzzDelivery{
		topic:   topic,
		key:     string(d[start : start+int(klen)]),
		kind:    kind,
		payload: d[start+int(klen):],
		lost:    lost,
	}, true, validTopic
}

// fuzzTopicOf decodes a subject under DefaultPrefix: one level per token,
// "~" and unpadded URL-safe base64 for an escaped one.
func fuzzTopicOf(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, DefaultPrefix+".")
	if !ok || rest == "" {
		return "", false
	}
	levels := strings.Split(rest, ".")
	for i, tok := range levels {
		if raw, escaped := strings.CutPrefix(tok, "~"); escaped {
			b, err := base64.RawURLEncoding.DecodeString(raw)
			if err != nil {
				return "", false
			}
			levels[i] = string(b)
		}
	}
	return strings.Join(levels, "/"), true
}

// fuzzValidTopic applies the rules of package topics: not empty, at most
// MaxTopicLen bytes, UTF-8 without U+0000, no wildcard.
func fuzzValidTopic(topic string) bool {
	return topic != "" && len(topic) <= topics.MaxTopicLen && utf8.ValidString(topic) &&
		!strings.ContainsAny(topic, "\x00+#")
}

// run receives msgs, in order, on a fresh link of h's hub, and checks each
// delivery. strictTopic makes a delivery with an invalid topic fail the
// run; without it, such a message may be delivered or not (the finding of
// TestFuzzFindingReceiveInvalidTopic), and the hub must ignore it.
func (h *receiveHarness) run(t *testing.T, msgs []*nats.Msg, strictTopic bool) {
	baseGoroutines := runtime.NumGoroutine()
	inputBytes := 0
	for _, m := range msgs {
		inputBytes += len(m.Subject) + len(m.Data)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	publishedBefore := h.hub.Stats().Published

	var got []fuzzDelivery
	l := &link{
		b:    h.b,
		node: fuzzNode,
		deliver: func(ctx context.Context, p topics.Publication) {
			d := fuzzDelivery{topic: p.Topic, key: p.Key, lost: p.Lost, nilMessage: p.Message == nil}
			if p.Message != nil {
				m := p.Message.Message()
				d.kind, d.payload = m.Kind, m.Payload
			}
			got = append(got, d)
			h.deliver(ctx, p)
		},
		tracker: newTracker(),
		filters: make(map[string]struct{}),
		ctx:     h.ctx,
	}
	for _, f := range fuzzFilters {
		l.filters[f] = struct{}{}
	}

	model := &receiveModel{seq: make(map[uint64]uint64), tseq: make(map[uint64]map[string]uint64)}
	validDeliveries := int64(0)
	for i, msg := range msgs {
		n := len(got)
		l.receive(msg)
		want, deliver, validTopic := model.expect(msg)
		mustDeliver := deliver && validTopic
		mayDeliver := deliver && (validTopic || !strictTopic)
		switch {
		case len(got) > n+1:
			t.Fatalf("message %d (%q, % x): %d deliveries", i, msg.Subject, msg.Data, len(got)-n)
		case len(got) == n+1:
			d := got[n]
			switch {
			case d.nilMessage || (d.kind != messages.KindText && d.kind != messages.KindBinary):
				t.Fatalf("message %d (%q, % x) delivered with kind %v (nil message: %v)", i, msg.Subject, msg.Data, d.kind, d.nilMessage)
			case !fuzzValidTopic(d.topic) && strictTopic:
				t.Fatalf("message %d (%q, % x) delivered with the invalid topic %q", i, msg.Subject, msg.Data, d.topic)
			case !mayDeliver:
				t.Fatalf("message %d (%q, % x) delivered as %+v; it is not a colibri publish for this node, or a second copy", i, msg.Subject, msg.Data, d)
			case d.topic != want.topic || d.key != want.key || d.kind != want.kind || string(d.payload) != string(want.payload) || d.lost != want.lost:
				t.Fatalf("message %d (%q, % x) delivered as\n%+v, want\n%+v", i, msg.Subject, msg.Data, d, want)
			}
			if fuzzValidTopic(d.topic) {
				validDeliveries++
			}
		case mustDeliver:
			t.Fatalf("message %d (%q, % x) not delivered, want %+v", i, msg.Subject, msg.Data, want)
		}
	}
	if published := h.hub.Stats().Published - publishedBefore; published != validDeliveries {
		t.Fatalf("the hub delivered %d publishes of the %d with a valid topic", published, validDeliveries)
	}

	// The members' senders write what they got; then nothing may be left
	// running for this run.
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range h.members {
		for {
			if bytes, n := m.Buffered(); bytes == 0 && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the members did not send what they got")
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// A delivery copies the payload once (framed) and decodes the topic;
	// the senders' writes grow the in-memory connection's buffer. The
	// constant is for the maps, the hub's and the members' bookkeeping.
	budget := 16*uint64(inputBytes) + 256<<10
	if race.Enabled {
		budget *= 4
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > budget {
		t.Fatalf("%d bytes in allocated %d bytes, over the budget of %d", inputBytes, grew, budget)
	}
	fuzzNoGoroutinesLeft(t, baseGoroutines)
}

// fuzzNoGoroutinesLeft waits briefly for the goroutine count to fall back
// to base: a member's sender task may still be on its way out.
func fuzzNoGoroutinesLeft(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines left over after the run\n%s", runtime.NumGoroutine()-base, stacks.String())
		}
		time.Sleep(20 * time.Microsecond)
	}
}

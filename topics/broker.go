package topics

import (
	"context"
	"errors"
	"sync"

	"github.com/colibri-ws/colibri/wsconn"
)

// Publication is one publish as a Broker carries it.
type Publication struct {
	// Topic is the topic published to; it is valid.
	Topic string
	// Message is the message, framed once. Brokers that cross the process
	// boundary send its payload and prepare it once again on arrival, so
	// that each node frames a message once for all its subscribers.
	Message *wsconn.Prepared
	// Key is the key the publisher gave with the Key option, or "" for the
	// default, the topic. KeepLatest uses it.
	Key string
	// Lost is set by brokers that can tell when messages went missing on
	// the way between nodes (natsbroker numbers each publisher's messages
	// per topic): it is how many messages to Topic, from the publisher of
	// this one, were lost just before it. The hub counts them as dropped,
	// with DropLost, for every member this publication reaches. Zero for
	// the publisher's own hub and for brokers that lose nothing.
	Lost int
}

// A Broker carries publishes between hubs, usually on different nodes,
// so that a publish on one reaches the subscribers of all. A Hub opens one
// Link to its Broker when it is created and closes it with the hub.
//
// A Broker may serve several hubs; a Link serves one. The hub calls the
// methods of its Link from many goroutines and expects them to be safe
// for concurrent use.
type Broker interface {
	// Open connects a hub. deliver hands over publishes made through the
	// Links of other hubs to topics that match the filters the new Link
	// subscribed to; the Link calls it from one goroutine at a time, in the
	// order each publisher published, with a context that ends when the
	// Link closes (and, for a delivery made in the publisher's goroutine,
	// when the publisher's context ends). deliver may block for as long as
	// a Block policy allows. It ignores a Publication whose Topic is not a
	// valid topic or whose Message is nil.
	Open(deliver func(context.Context, Publication)) (Link, error)
}

// Link is one hub's connection to a Broker.
type Link interface {
	// Subscribe tells the broker that the hub has local subscribers for
	// filter. The hub calls it when the first local subscription to filter
	// is made, and calls it at most once per filter until Unsubscribe.
	Subscribe(filter string) error
	// Unsubscribe tells the broker that the last local subscription to
	// filter has ended.
	Unsubscribe(filter string) error
	// Publish sends p to the other hubs. The hub has already delivered it
	// locally; the Link must not deliver it back to its own hub.
	Publish(ctx context.Context, p Publication) error
	// Close disconnects the hub: deliver is not called after Close returns.
	Close() error
}

// ErrClosed is returned by the methods of a Hub (and of its members) after
// Hub.Close, and by an InProcess Link after it was closed (natsbroker's
// Links return an error matching it too).
var ErrClosed = errors.New("topics: hub closed")

// InProcess is a Broker that connects hubs in the same process: a publish
// on one hub reaches the matching subscribers of the others, and they all
// share the one *wsconn.Prepared the publisher framed. A Hub without a
// Broker needs none of this; InProcess is for programs that run several
// hubs side by side, and for testing code written against Broker. The
// zero value is ready to use.
type InProcess struct {
	mu    sync.RWMutex
	links map[*inLink]struct{}
}

// Open connects a hub to b.
func (b *InProcess) Open(deliver func(context.Context, Publication)) (Link, error) {
	l := &inLink{b: b, deliver: deliver, filters: make(map[string]struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	if b.links == nil {
		b.links = make(map[*inLink]struct{})
	}
	b.links[l] = struct{}{}
	b.mu.Unlock()
	return l, nil
}

type inLink struct {
	b       *InProcess
	deliver func(context.Context, Publication)
	ctx     context.Context
	cancel  context.CancelFunc

	// Guarded by b.mu.
	filters map[string]struct{}
	closed  bool

	// Deliveries from the other hubs take turns, as Broker promises.
	dmu sync.Mutex
}

func (l *inLink) Subscribe(filter string) error {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.filters[filter] = struct{}{}
	return nil
}

func (l *inLink) Unsubscribe(filter string) error {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	delete(l.filters, filter)
	return nil
}

// Publish hands p to every other hub with a matching filter, one after
// the other, in the publisher's goroutine.
func (l *inLink) Publish(ctx context.Context, p Publication) error {
	var buf [8]*inLink
	targets := buf[:0]
	l.b.mu.RLock()
	if l.closed {
		l.b.mu.RUnlock()
		return ErrClosed
	}
	for o := range l.b.links {
		if o == l {
			continue
		}
		for f := range o.filters {
			if Match(f, p.Topic) {
				targets = append(targets, o)
				break
			}
		}
	}
	l.b.mu.RUnlock()
	for _, o := range targets {
		o.dmu.Lock()
		if o.ctx.Err() == nil {
			dctx, done := deliveryContext(ctx, o.ctx)
			o.deliver(dctx, p)
			done()
		}
		o.dmu.Unlock()
	}
	return nil
}

// deliveryContext returns the context for a delivery made in the
// publisher's goroutine: it ends with the publisher's context, which
// bounds a Block wait as it does on the publisher's own hub, or when the
// receiving link closes. done releases it.
func deliveryContext(publisher, link context.Context) (ctx context.Context, done func()) {
	if publisher.Done() == nil {
		return link, func() {}
	}
	ctx, cancel := context.WithCancel(publisher)
	stop := context.AfterFunc(link, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

func (l *inLink) Close() error {
	l.b.mu.Lock()
	l.closed = true
	delete(l.b.links, l)
	l.b.mu.Unlock()
	l.cancel()
	// Wait for a delivery in progress.
	l.dmu.Lock()
	defer l.dmu.Unlock()
	return nil
}

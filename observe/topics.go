package observe

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/colibri-ws/colibri/topics"
)

// Dropped counts the messages a topics member did not get (d.Count, one
// unless a broker lost several in a row), by the member's route and the
// drop's reason. Set it as the hub's topics.Options.OnDrop,
// or call it from yours: it replaces the hub's default warning for the
// first drop of each member, since the counter says more.
func (o *OTel) Dropped(d topics.Drop) {
	route := ""
	if d.Member != nil {
		route = d.Member.Conn().Route()
	}
	o.drops.Add(background, int64(max(d.Count, 1)), o.routeAttrs(route).dropOpts(d.Reason, d.Policy)...)
}

// WatchHub reports the queues of hub's members, labelled with name, each
// time the metrics are collected: the messages and bytes they hold in all
// (queued or being written), the longest queue, and the number of members.
// Reading them walks the members and takes each one's lock for a moment,
// so it costs in proportion to the members, at collection time only.
// Unregister the returned registration when the hub goes away.
func (o *OTel) WatchHub(name string, hub *topics.Hub) (metric.Registration, error) {
	attrs := metric.WithAttributeSet(attribute.NewSet(AttrHub.String(name)))
	return o.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		var msgs, bytes, longest int64
		for m := range hub.Members() {
			b, n := m.Buffered()
			msgs += int64(n)
			bytes += int64(b)
			longest = max(longest, int64(n))
		}
		obs.ObserveInt64(o.queueMessages, msgs, attrs)
		obs.ObserveInt64(o.queueBytes, bytes, attrs)
		obs.ObserveInt64(o.queueLongest, longest, attrs)
		obs.ObserveInt64(o.members, int64(hub.Stats().Members), attrs)
		return nil
	}, o.queueMessages, o.queueBytes, o.queueLongest, o.members)
}

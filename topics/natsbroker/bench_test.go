package natsbroker_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/internal/fanout"
	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// BenchmarkFanoutNATS is topics' BenchmarkFanout across two nodes: the
// publisher's hub has no subscribers, and every message reaches the
// subscribers' hub through an embedded NATS server on loopback, where it
// is framed once and fanned out.
func BenchmarkFanoutNATS(b *testing.B) {
	for _, subs := range []int{1000, 10000} {
		for _, window := range []int{1, 8} {
			b.Run(fmt.Sprintf("subs=%d/window=%d", subs, window), func(b *testing.B) {
				benchFanoutNATS(b, subs, window)
			})
		}
	}
}

func benchFanoutNATS(b *testing.B, subs, window int) {
	ns := startNATS(b, -1)
	defer stopNATS(ns)
	hub := func(opts *topics.Options) *topics.Hub {
		nc, err := natsbroker.Connect(ns.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		opts.Broker = natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
		opts.Logger = quiet
		h, err := topics.NewHub(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() })
		return h
	}
	var dropped int64
	pub := hub(&topics.Options{})
	sub := hub(&topics.Options{
		// The window bounds the total in flight, not each subscriber's
		// lag: Block holds the publisher back when one falls behind.
		Policy: topics.Block(time.Minute),
		Limits: topics.Limits{MaxMessages: 4 * window},
		OnDrop: func(topics.Drop) { dropped++ },
	})
	fan, err := fanout.Start(sub, subs, "bench/fanout", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fan.Close()

	payload := make([]byte, 64)
	msg := messages.Binary(payload)
	publish := func() {
		fanout.Stamp(payload)
		if err := pub.Publish(context.Background(), "bench/fanout", msg); err != nil {
			b.Fatal(err)
		}
	}
	for range window {
		publish()
	}
	if err := fan.AwaitReceived(int64(window*subs), time.Minute); err != nil {
		b.Fatal(err)
	}
	fan.Reset()
	b.ReportAllocs()
	start := time.Now()
	var n int64
	for b.Loop() {
		for fan.Received() < (n-int64(window)+1)*int64(subs) {
			runtime.Gosched()
		}
		publish()
		n++
	}
	if err := fan.AwaitReceived(n*int64(subs), time.Minute); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if dropped != 0 {
		b.Fatalf("%d messages dropped", dropped)
	}
	b.ReportMetric(float64(n*int64(subs))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(fan.Latency(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(fan.Latency(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(fan.BytesPerMember, "B/member")
}

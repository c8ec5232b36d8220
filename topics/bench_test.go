package topics_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/internal/fanout"
)

// BenchmarkFanout publishes 64-byte binary messages from one goroutine to
// 1,000 and 10,000 subscribers over in-memory pipes. One op is one
// publish; a delivery is one message read by one subscriber. window is
// how many publishes may be undelivered at once: 1 measures the latency
// of one fan-out on an idle hub, 8 keeps every sender busy (throughput,
// with latency that includes waiting behind earlier publishes).
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{1000, 10000} {
		for _, window := range []int{1, 8} {
			b.Run(fmt.Sprintf("subs=%d/window=%d", subs, window), func(b *testing.B) {
				benchFanout(b, subs, window)
			})
		}
	}
}

func benchFanout(b *testing.B, subs, window int) {
	var dropped int64
	hub, err := topics.NewHub(&topics.Options{
		// The window bounds the total in flight, not each subscriber's
		// lag: Block holds the publisher back when one falls behind.
		Policy: topics.Block(time.Minute),
		Limits: topics.Limits{MaxMessages: 4 * window},
		OnDrop: func(topics.Drop) { dropped++ },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	fan, err := fanout.Start(hub, subs, "bench/fanout", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fan.Close()
	Publish(b, fan, subs, window, func(msg messages.Message) error {
		return hub.Publish(context.Background(), "bench/fanout", msg)
	})
	if dropped != 0 {
		b.Fatalf("%d messages dropped", dropped)
	}
}

// Publish runs the benchmark loop: publish, keeping at most window
// publishes undelivered, then report the figures.
func Publish(b *testing.B, fan *fanout.Subscribers, subs, window int, publish func(messages.Message) error) {
	payload := make([]byte, 64)
	msg := messages.Binary(payload)
	// Warm up: every member's queue makes its ring on first use.
	for range window {
		fanout.Stamp(payload)
		if err := publish(msg); err != nil {
			b.Fatal(err)
		}
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
		fanout.Stamp(payload)
		if err := publish(msg); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := fan.AwaitReceived(n*int64(subs), time.Minute); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(n*int64(subs))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(fan.Latency(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(fan.Latency(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(fan.BytesPerMember, "B/member")
	b.ReportMetric(fan.BytesPerConn, "B/conn")
}

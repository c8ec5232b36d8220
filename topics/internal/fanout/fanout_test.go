package fanout

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 {
		t.Error("empty histogram has a quantile")
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0, time.Microsecond}} {
		got := h.Quantile(tc.q)
		if got > tc.want || float64(got) < 0.93*float64(tc.want) {
			t.Errorf("Quantile(%v) = %v, want about %v", tc.q, got, tc.want)
		}
	}
	for v := uint64(0); v < 1<<20; v += 997 {
		if lo := bucketLow(bucket(v)); lo > v || (v >= 16 && float64(v-lo) > 0.0625*float64(v)) {
			t.Fatalf("%d falls in a bucket starting at %d", v, lo)
		}
	}
}

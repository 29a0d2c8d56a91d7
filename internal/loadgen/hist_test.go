package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's quantiles stay within its stated precision (1/64 of the
// value) of the exact quantiles of the recorded samples, over the whole
// range from nanoseconds to minutes; min, max, count and mean are exact.
func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var samples []time.Duration
	var sum time.Duration
	for range 100_000 {
		// Log-uniform from 1 ns to about 100 s.
		d := time.Duration(1 << r.IntN(37))
		d += time.Duration(r.Int64N(int64(d)))
		h.record(d)
		samples = append(samples, d)
		sum += d
	}
	slices.Sort(samples)
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		rank := max(int(float64(len(samples))*q+0.999999), 1)
		want := samples[rank-1]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 1.0/64 || diff < -1.0/64 {
			t.Errorf("quantile(%v) = %v, exact %v: off by %.2f%%", q, got, want, diff*100)
		}
	}
	if h.min != samples[0] || h.max != samples[len(samples)-1] || h.n != uint64(len(samples)) || h.mean() != sum/time.Duration(len(samples)) {
		t.Errorf("min %v max %v n %d mean %v; want %v %v %d %v", h.min, h.max, h.n, h.mean(), samples[0], samples[len(samples)-1], len(samples), sum/time.Duration(len(samples)))
	}
	var merged histogram
	merged.merge(&h)
	merged.merge(&histogram{})
	if merged.quantile(0.5) != h.quantile(0.5) || merged.n != h.n {
		t.Error("merging into an empty histogram changed it")
	}
}

// Every bucket's representative value falls back into the same bucket, so
// reading a quantile never moves it to a neighbour.
func TestHistogramBucketsRoundTrip(t *testing.T) {
	for i := range histBuckets {
		if got := bucketOf(uint64(bucketValue(i))); got != i {
			t.Fatalf("bucketOf(bucketValue(%d) = %d) = %d", i, bucketValue(i), got)
		}
	}
}

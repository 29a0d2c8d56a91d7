package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets, in the manner of an
// HDR histogram: exact below 128 ns, and within 1/64 (1.6 %) of the value
// above, over the whole range of time.Duration, in a fixed 29 KiB. The exact minimum
// and maximum are kept beside the buckets.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

const (
	histHalf    = 64            // sub-buckets per power of two (the upper half of 7 bits)
	histBuckets = 58 * histHalf // up to 2^63 ns
)

// bucketOf returns the bucket of a non-negative duration in ns.
func bucketOf(v uint64) int {
	if v < 2*histHalf {
		return int(v)
	}
	shift := bits.Len64(v) - 7 // v>>shift is in [64, 128)
	return min(shift*histHalf+int(v>>shift), histBuckets-1)
}

// bucketValue returns the middle of bucket i's range of values.
func bucketValue(i int) time.Duration {
	if i < 2*histHalf {
		return time.Duration(i)
	}
	shift := i/histHalf - 1
	low := uint64(i%histHalf+histHalf) << shift
	return time.Duration(low + (uint64(1)<<shift)/2)
}

func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
	h.sum += d
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

func (h *histogram) reset() { *h = histogram{} }

// quantile returns the value at quantile q (0..1): the smallest recorded
// value v such that a fraction q of the values are at most v, within the
// bucket precision; clamped to the exact minimum and maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(max(bucketValue(i), h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// A log-linear latency histogram, the same buckets as internal/loadgen's
// (hist.go): exact below 128 ns, within 1/64 of the value above, so a
// quantile read here and one read by lockbench are the same to 1.6 %.
// Values are nanoseconds (Numbers: exact up to 2^53 ns, 104 days).

'use strict';

const HALF = 64; // sub-buckets per power of two
const BUCKETS = 58 * HALF; // up to 2^63 ns, as loadgen's

/** Number of bits of a non-negative integer below 2^53 (Go's bits.Len64). */
function bitLength(v) {
  if (v < 2 ** 32) return 32 - Math.clz32(v);
  return 64 - Math.clz32(Math.floor(v / 2 ** 32));
}

/** The bucket of a non-negative integer ns. */
function bucketOf(v) {
  if (v < 2 * HALF) return v;
  const shift = bitLength(v) - 7; // v >> shift is in [64, 128)
  return Math.min(shift * HALF + Math.floor(v / 2 ** shift), BUCKETS - 1);
}

/** The middle of bucket i's range of values. */
function bucketValue(i) {
  if (i < 2 * HALF) return i;
  const shift = Math.floor(i / HALF) - 1;
  const low = ((i % HALF) + HALF) * 2 ** shift;
  return low + Math.floor(2 ** shift / 2);
}

class Histogram {
  constructor() { this.reset(); }

  reset() {
    this.counts = new Float64Array(BUCKETS);
    this.n = 0;
    this.sum = 0;
    this.min = 0;
    this.max = 0;
  }

  /** Records d ns (negative counts as 0). */
  record(d) {
    const v = Math.max(0, Math.round(d));
    this.counts[bucketOf(v)]++;
    if (this.n === 0 || v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    this.n++;
    this.sum += v;
  }

  merge(o) {
    if (o.n === 0) return;
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += o.counts[i];
    if (this.n === 0 || o.min < this.min) this.min = o.min;
    if (o.max > this.max) this.max = o.max;
    this.n += o.n;
    this.sum += o.sum;
  }

  /**
   * The value at quantile q (0..1): the smallest recorded value v such that
   * a fraction q of the values are at most v, within the bucket precision,
   * clamped to the exact minimum and maximum.
   */
  quantile(q) {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(Math.max(bucketValue(i), this.min), this.max);
    }
    return this.max;
  }

  mean() { return this.n === 0 ? 0 : Math.floor(this.sum / this.n); }
}

const ms = (ns) => ns / 1e6;

/** loadgen's Summary (milliseconds). */
function summarize(h) {
  return {
    count: h.n, mean_ms: ms(h.mean()), min_ms: ms(h.min), p50_ms: ms(h.quantile(0.5)), p90_ms: ms(h.quantile(0.9)),
    p99_ms: ms(h.quantile(0.99)), p999_ms: ms(h.quantile(0.999)), max_ms: ms(h.max),
  };
}

/** loadgen's CurvePercentiles: the points of acquire_curve. */
const CURVE_PERCENTILES = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96.25, 97.5, 98.125, 98.75,
  99, 99.375, 99.5, 99.6875, 99.75, 99.8438, 99.9, 99.9219, 99.95, 99.9609, 99.975, 99.9805, 99.99, 99.995, 99.999, 100];

function curve(h) {
  return CURVE_PERCENTILES.map((p) => ({ p, ms: ms(h.quantile(p / 100)) }));
}

module.exports = { Histogram, bucketOf, bucketValue, summarize, curve, CURVE_PERCENTILES };

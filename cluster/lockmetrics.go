package cluster

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftlock/raftlock/fsm"
)

// Per-lock metrics. They are derived from the changes of applied entries
// (fsm.Result.Changes) and timed in cluster time, so every replica that
// applied the same entries reports the same counts and histograms. Keys are
// not labels (there may be millions): a key is counted under its prefix, its
// first Config.MetricsPrefixDepth segments cut at Config.MetricsPrefixSeparator
// ("stock:prod_123" at depth 1 is "stock:"). The first MetricsMaxPrefixes
// distinct prefixes a node sees get a label each; later ones are counted
// under prefix="other". Only the queue depth names keys, and only the
// MetricsBusiestKeys longest queues at the time of the scrape. Depth 0 and
// no busiest keys leave every trace of key names out of /metrics, which
// answers anyone (docs/security.md).
//
//	raftlock_lock_grants_total{prefix,how}    how: acquired (at once) or handed_off (from the queue)
//	raftlock_lock_ends_total{prefix,how}      how: released, expired or force_released
//	raftlock_lock_busy_total{prefix}          acquires answered busy (the key held, no wait allowed)
//	raftlock_lock_hold_seconds{prefix}        from grant to the end of the hold
//	raftlock_lock_wait_seconds{prefix,outcome} from joining a queue to leaving it: granted, timed_out, cancelled, abandoned
//	raftlock_queue_depth{key}                 waiters of the busiest keys
//
// Everything counts per key: an Acquire of three keys is three grants.
// Holds and waits are timed from the entries this node applied since it
// started or last restored a snapshot; one that began before is counted when
// it ends but not timed.

// Defaults and bounds of the per-lock metrics settings.
const (
	DefaultMetricsPrefixDepth     = 1
	DefaultMetricsPrefixSeparator = ":"
	DefaultMetricsMaxPrefixes     = 100
	DefaultMetricsBusiestKeys     = 10
	maxMetricsPrefixDepth         = 16
	maxMetricsMaxPrefixes         = 10_000
	maxMetricsBusiestKeys         = 1000
	// maxTimed bounds the holds and the waits being timed (each); past it,
	// new ones are counted when they end but not timed.
	maxTimed = 1 << 20
	// otherPrefix is the label of keys past the prefix cap.
	otherPrefix = "other"
)

var lockSecondsBuckets = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

type holdID struct {
	key, owner string
	token      uint64
}

type waitID struct{ rid, key string }

// lockMetrics keeps the per-lock metrics and what timing them needs.
type lockMetrics struct {
	depth       int
	sep         string
	maxPrefixes int

	grants, ends, busy *prometheus.CounterVec
	hold, wait         *prometheus.HistogramVec

	mu       sync.Mutex
	prefixes map[string]bool  // the prefixes that have a label
	holds    map[holdID]int64 // hold -> cluster time of its grant
	waits    map[waitID]int64 // waiter on a key -> cluster time it joined
}

func newLockMetrics(cfg Config, reg *prometheus.Registry, longest func(n int) []fsm.QueueDepth) *lockMetrics {
	m := &lockMetrics{depth: cfg.MetricsPrefixDepth, sep: cfg.MetricsPrefixSeparator, maxPrefixes: cfg.MetricsMaxPrefixes,
		prefixes: map[string]bool{}, holds: map[holdID]int64{}, waits: map[waitID]int64{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "raftlock", Name: name, Help: help}, labels)
	}
	m.grants = counter("lock_grants_total", "Keys granted, by key prefix and how: acquired (at once) or handed_off (from the queue).", "prefix", "how")
	m.ends = counter("lock_ends_total", "Holds ended, by key prefix and how: released, expired or force_released.", "prefix", "how")
	m.busy = counter("lock_busy_total", "Acquires answered busy (the key was held and the caller would not wait), by key prefix.", "prefix")
	m.hold = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "raftlock", Name: "lock_hold_seconds",
		Help: "How long holds lasted (cluster time), by key prefix.", Buckets: lockSecondsBuckets}, []string{"prefix"})
	m.wait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "raftlock", Name: "lock_wait_seconds",
		Help: "How long waiters queued (cluster time), by key prefix and outcome: granted, timed_out, cancelled, abandoned.", Buckets: lockSecondsBuckets},
		[]string{"prefix", "outcome"})
	reg.MustRegister(m.grants, m.ends, m.busy, m.hold, m.wait, &queueDepths{n: cfg.MetricsBusiestKeys, longest: longest})
	return m
}

// prefix returns the label key is counted under.
func (m *lockMetrics) prefix(key string) string {
	p, rest := "", key
	for range m.depth {
		head, tail, ok := strings.Cut(rest, m.sep)
		if !ok {
			p += rest
			break
		}
		p += head + m.sep
		rest = tail
	}
	if m.prefixes[p] {
		return p
	}
	if len(m.prefixes) >= m.maxPrefixes {
		return otherPrefix
	}
	m.prefixes[p] = true
	return p
}

var leftOutcome = map[fsm.LeftReason]string{fsm.LeftTimedOut: "timed_out", fsm.LeftCancelled: "cancelled", fsm.LeftAbandoned: "abandoned"}

// observe counts the changes of one applied entry (on the apply goroutine).
func (m *lockMetrics) observe(r *fsm.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Op == fsm.OpAcquire && r.Code == fsm.CodeBusy && !r.Duplicate && r.Key != "" {
		m.busy.WithLabelValues(m.prefix(r.Key)).Inc()
	}
	seconds := func(since int64) float64 { return time.Duration(r.Now - since).Seconds() }
	for i := range r.Changes {
		c := &r.Changes[i]
		p := m.prefix(c.Key)
		h := holdID{c.Key, c.Owner, c.Token}
		switch c.Kind {
		case fsm.ChangeAcquired, fsm.ChangeHandedOff:
			how := "acquired"
			if c.Kind == fsm.ChangeHandedOff {
				how = "handed_off"
				w := waitID{c.RequestID, c.Key}
				if at, ok := m.waits[w]; ok {
					m.wait.WithLabelValues(p, "granted").Observe(seconds(at))
					delete(m.waits, w)
				}
			}
			m.grants.WithLabelValues(p, how).Inc()
			if _, ok := m.holds[h]; !ok && len(m.holds) < maxTimed { // a re-entrant acquire keeps its start
				m.holds[h] = r.Now
			}
		case fsm.ChangeReleased, fsm.ChangeExpired, fsm.ChangeForceReleased:
			m.ends.WithLabelValues(p, c.Kind.String()).Inc()
			if at, ok := m.holds[h]; ok {
				m.hold.WithLabelValues(p).Observe(seconds(at))
				delete(m.holds, h)
			}
		case fsm.ChangeWaiterJoined:
			if len(m.waits) < maxTimed {
				m.waits[waitID{c.RequestID, c.Key}] = r.Now
			}
		case fsm.ChangeWaiterLeft:
			w := waitID{c.RequestID, c.Key}
			if at, ok := m.waits[w]; ok {
				outcome := leftOutcome[c.Reason]
				if outcome == "" {
					outcome = "left"
				}
				m.wait.WithLabelValues(p, outcome).Observe(seconds(at))
				delete(m.waits, w)
			}
		}
	}
}

// restored forgets the holds and waits being timed: a snapshot replaced the
// table, and their ends may never be applied here.
func (m *lockMetrics) restored() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.holds)
	clear(m.waits)
}

// queueDepths collects raftlock_queue_depth for the n longest queues at
// scrape time.
type queueDepths struct {
	n       int
	longest func(n int) []fsm.QueueDepth
}

var queueDepthDesc = prometheus.NewDesc("raftlock_queue_depth",
	"Waiters in the queues of the busiest keys (the --metrics-busiest-keys longest queues).", []string{"key"}, nil)

func (q *queueDepths) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepthDesc }

func (q *queueDepths) Collect(ch chan<- prometheus.Metric) {
	if q.n == 0 {
		return
	}
	for _, d := range q.longest(q.n) {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(d.Depth), d.Key)
	}
}

package cluster

import (
	"context"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftlock/raftlock/fsm"
)

// metrics are a node's Prometheus metrics, in a registry of its own (tests
// run several nodes in one process).
type metrics struct {
	reg      *prometheus.Registry
	grants   prometheus.Counter
	timeouts prometheus.Counter
	cancels  prometheus.Counter
	expiries prometheus.Counter
	// abandons counts abandons of departed callers' acquires committed by
	// this node; abandonsDropped those it could not even start (too many in
	// flight).
	abandons        prometheus.Counter
	abandonsDropped prometheus.Counter
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	// locks are the per-lock metrics (lockmetrics.go).
	locks *lockMetrics
}

func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "raftlock", Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.grants = f("grants_total", "Locks granted by entries this node applied (immediate and hand-offs).")
	m.timeouts = f("wait_timeouts_total", "Waiting acquires that timed out.")
	m.cancels = f("wait_cancels_total", "Waiting acquires withdrawn by their caller.")
	m.expiries = f("expiries_total", "Locks that expired.")
	m.abandons = f("abandons_total", "Acquires of departed callers this node withdrew (or released, if granted meanwhile).")
	m.abandonsDropped = f("abandons_dropped_total", "Acquires of departed callers this node could not withdraw because too many were in flight; they end at their wait timeout.")
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "raftlock", Name: "requests_total",
		Help: "API requests by procedure and result code."}, []string{"procedure", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "raftlock", Name: "request_duration_seconds",
		Help:    "API request latency by procedure (Acquire includes time spent waiting in a queue).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
		[]string{"procedure"})
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerStages(m.reg)
	n.watches.register(m.reg)
	m.locks = newLockMetrics(n.cfg, m.reg, func(k int) (q []fsm.QueueDepth) {
		n.fsm.Read(func(t *fsm.Table) { q = t.LongestQueues(k) })
		return q
	})

	gauge := func(name, help string, fn func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "raftlock", Name: name, Help: help}, fn))
	}
	gauge("raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) })
	gauge("raft_commit_index", "Highest committed log index known.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("raft_applied_index", "Highest log index applied to the lock table.", func() float64 { return float64(n.fsm.Applied()) })
	gauge("raft_leader", "1 if this node is the leader.", func() float64 {
		if n.raft.State() == raft.Leader {
			return 1
		}
		return 0
	})
	table := func(pick func(fsm.Stats) int) func() float64 {
		return func() (v float64) {
			n.fsm.Read(func(t *fsm.Table) { v = float64(pick(t.Stats())) })
			return v
		}
	}
	gauge("locks_held", "Locks held in the lock table.", table(func(s fsm.Stats) int { return s.Locks }))
	gauge("waiters", "Acquires waiting in the lock table.", table(func(s fsm.Stats) int { return s.Waiters }))
	gauge("remembered_requests", "Request ids remembered for exactly-once retries.", table(func(s fsm.Stats) int { return s.Requests }))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe counts what an applied entry did.
func (m *metrics) observe(r *fsm.Result) {
	m.locks.observe(r)
	if r.Op == fsm.OpAcquire && r.Code == fsm.CodeOK && !r.Duplicate {
		m.grants.Inc()
	}
	if r.Expired > 0 {
		m.expiries.Add(float64(r.Expired))
	}
	for _, ev := range r.Events {
		switch ev.Code {
		case fsm.CodeOK:
			m.grants.Inc()
		case fsm.CodeTimedOut:
			m.timeouts.Inc()
		case fsm.CodeCancelled:
			m.cancels.Inc()
		}
	}
}

// interceptor counts API requests and their latency.
func (m *metrics) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			resp, err := next(ctx, req)
			proc := strings.TrimPrefix(req.Spec().Procedure, "/")
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			m.requests.WithLabelValues(proc, code).Inc()
			m.latency.WithLabelValues(proc).Observe(time.Since(start).Seconds())
			return resp, err
		}
	}
}

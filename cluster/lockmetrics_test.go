package cluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftlock/raftlock/fsm"
)

// A key counts under its first depth segments, separator included; a key
// with fewer segments counts whole; past the cap, prefixes count as other,
// and prefixes already labelled keep their label.
func TestLockMetricsPrefix(t *testing.T) {
	m := &lockMetrics{depth: 2, sep: "/", maxPrefixes: 3, prefixes: map[string]bool{}}
	for _, tc := range []struct{ key, want string }{
		{"tenant/a/stock/1", "tenant/a/"},
		{"tenant/a/stock/2", "tenant/a/"},
		{"tenant/b", "tenant/b"},
		{"flat", "flat"},
		{"tenant/c/x", otherPrefix}, // a fourth prefix
		{"tenant/b", "tenant/b"},
		{"flat", "flat"},
	} {
		if got := m.prefix(tc.key); got != tc.want {
			t.Errorf("prefix(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	none := &lockMetrics{depth: 0, sep: ":", maxPrefixes: 100, prefixes: map[string]bool{}}
	if got := none.prefix("stock:prod_123"); got != "" {
		t.Errorf("depth 0: prefix(stock:prod_123) = %q, want \"\"", got)
	}
	one := &lockMetrics{depth: 1, sep: ":", maxPrefixes: 100, prefixes: map[string]bool{}}
	if got := one.prefix("stock:prod_123"); got != "stock:" {
		t.Errorf("depth 1: prefix(stock:prod_123) = %q, want stock:", got)
	}
}

// BenchmarkLockMetricsObserve: the apply goroutine's cost of the per-lock
// metrics for one acquire-and-release pair of entries.
func BenchmarkLockMetricsObserve(b *testing.B) {
	cfg := DefaultConfig()
	m := newLockMetrics(cfg, prometheus.NewRegistry(), func(int) []fsm.QueueDepth { return nil })
	acq := &fsm.Result{Op: fsm.OpAcquire, Changes: []fsm.Change{{Kind: fsm.ChangeAcquired, Key: "stock:prod_123", Owner: "o", Token: 1}}}
	rel := &fsm.Result{Op: fsm.OpRelease, Changes: []fsm.Change{{Kind: fsm.ChangeReleased, Key: "stock:prod_123", Owner: "o", Token: 1}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		acq.Now, rel.Now = int64(i), int64(i)+1000
		m.observe(acq)
		m.observe(rel)
	}
}

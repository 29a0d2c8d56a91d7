package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// The cost of watching (issue 17's note), measured, not asserted: a
// 3-node cluster takes ~1,000 events/s (acquire and release of 10 keys,
// 50 times a second) while 0, 10 and 100 watchers watch every key on the
// leader and as many on a follower; the nodes' own CPU seconds
// (process_cpu_seconds_total) over each phase, and their heap and
// goroutines with 100 idle watchers more. Opt in: RAFTLOCK_WATCH_COST=1
// go test ./cmd/node -run TestWatchCost -v (about a minute).
func TestWatchCost(t *testing.T) {
	if os.Getenv("RAFTLOCK_WATCH_COST") == "" {
		t.Skip("set RAFTLOCK_WATCH_COST=1 to measure the cost of watches")
	}
	c := testcluster.New(t, 3)
	ctx := t.Context()
	leader := c.Leader()
	f := c.Followers()[0]
	act, err := client.New([]string{c.Addr(leader)})
	if err != nil {
		t.Fatal(err)
	}
	defer act.Close()
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprintf("cost:%d", i)
	}
	var received atomic.Int64
	watchers := 0
	addWatchers := func(n int) {
		for range n {
			for _, i := range []int{leader, f} {
				wc, err := client.New([]string{c.Addr(i)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { wc.Close() })
				go func() {
					for u, err := range wc.Watch(ctx, "cost:") {
						if err != nil {
							return
						}
						received.Add(int64(len(u.Events)))
					}
				}()
			}
		}
		watchers += n
	}
	cpu := func(i int) float64 { return metricOf(t, c, i, "process_cpu_seconds_total") }
	phase := func(d time.Duration) {
		l0, f0, r0 := cpu(leader), cpu(f), received.Load()
		start := time.Now()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		cycles := 0
		for time.Since(start) < d {
			<-tick.C
			l, err := act.Acquire(ctx, keys, client.WithOwner("cost"), client.WithExpire(0))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			cycles++
		}
		el := time.Since(start).Seconds()
		evps := float64(cycles*2*len(keys)) / el
		lc, fc := (cpu(leader)-l0)/el, (cpu(f)-f0)/el
		t.Logf("%3d watchers per node: %.0f events/s applied, %.0f events/s delivered; leader CPU %.1f%% (%.1f%% per 1,000 events/s), follower CPU %.1f%% (%.1f%% per 1,000 events/s)",
			watchers, evps, float64(received.Load()-r0)/el, 100*lc, 100*lc*1000/evps, 100*fc, 100*fc*1000/evps)
	}
	phase(10 * time.Second)
	addWatchers(10)
	phase(10 * time.Second)
	addWatchers(90)
	phase(10 * time.Second)

	// Memory: 100 more idle watchers on one node (a prefix nothing uses).
	h0, g0 := metricOf(t, c, f, "go_memstats_heap_inuse_bytes"), metricOf(t, c, f, "go_goroutines")
	wc, err := client.New([]string{c.Addr(f)})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	for range 100 {
		go func() {
			for _, err := range wc.Watch(ctx, "idle:") {
				if err != nil {
					return
				}
			}
		}()
	}
	c.WaitFor("100 more watches", func() bool { return metricOf(t, c, f, "raftlock_watches") >= float64(watchers+100) })
	h1, g1 := metricOf(t, c, f, "go_memstats_heap_inuse_bytes"), metricOf(t, c, f, "go_goroutines")
	t.Logf("100 idle watchers: heap in use %+.0f KiB (%.1f KiB each), goroutines %+.0f (%.1f each)", (h1-h0)/1024, (h1-h0)/1024/100, g1-g0, (g1-g0)/100)
}

// metricOf reads one value from node i's /metrics.
func metricOf(t *testing.T, c *testcluster.Cluster, i int, name string) float64 {
	t.Helper()
	resp, err := c.HTTPClient().Get(c.URL(i) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return scanMetric(resp.Body, name)
}

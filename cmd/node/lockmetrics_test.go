package main

// Per-lock metrics (issue 17) against real node processes: what the test
// does to the locks shows in every node's /metrics, counted under bounded
// key prefixes, the same on every node.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/raftlock/raftlock/internal/testcluster"
)

// scrape reads a node's /metrics into series: "name{label=value,...}"
// (labels sorted) -> value. A histogram gives its _count and _sum.
func scrape(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("/metrics: %s %s", resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			series := func(suffix string) string { return name + suffix + "{" + strings.Join(labels, ",") + "}" }
			switch {
			case m.Counter != nil:
				out[series("")] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[series("")] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[series("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[series("_sum")] = m.GetHistogram().GetSampleSum()
			case m.Untyped != nil:
				out[series("")] = m.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}

// perLock keeps the per-lock series of a scrape.
func perLock(all map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range all {
		if strings.HasPrefix(k, "raftlock_lock_") || strings.HasPrefix(k, "raftlock_queue_depth") {
			out[k] = v
		}
	}
	return out
}

func diffSeries(got, want map[string]float64) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			d = append(d, fmt.Sprintf("%s = %v (ok %v), want %v", k, g, ok, v))
		}
	}
	slices.Sort(d)
	return strings.Join(d, "; ")
}

// Grants (at once and handed off), busy answers, releases, expiries, the
// wait of each outcome and the hold times are counted per key prefix, with
// the number of prefix labels capped (a third prefix counts as "other"),
// and only the longest queue is named while two keys have waiters; every
// node, leader or follower, reports the same counts.
func TestLockMetricsFromAppliedEntries(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithArgs("--metrics-max-prefixes", "2", "--metrics-busiest-keys", "1"))
	ctx := t.Context()
	hc := c.HTTPClient()
	leader := c.Leader()
	call := func(method, body string) error {
		_, err := postJSON(ctx, hc, c.URL(leader), method, body)
		return err
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	waitAll := func(what string, cond func(i int, m map[string]float64) bool) {
		t.Helper()
		last := ""
		testcluster.Poll(t, testcluster.DefaultWait, 50*time.Millisecond, what, func() bool {
			for i := range c.Len() {
				m, err := scrape(ctx, hc, c.URL(i))
				if err != nil {
					last = err.Error()
					return false
				}
				if !cond(i, m) {
					last = fmt.Sprintf("node %d: %v", i, perLock(m))
					return false
				}
			}
			return true
		}, &last)
	}
	background := func(body string) chan error {
		ch := make(chan error, 1)
		go func() { ch <- call("Acquire", body) }()
		return ch
	}

	must(call("Acquire", `{"keys":["stock:a"],"ownerId":"a","expire":"60s"}`))
	if err := call("Acquire", `{"keys":["stock:a"],"ownerId":"x","expire":"60s"}`); err == nil || !strings.Contains(err.Error(), "Failed to acquire") {
		t.Fatalf("x's acquire of stock:a held by a: %v, want busy", err)
	}
	must(call("Acquire", `{"keys":["order:1"],"ownerId":"o","expire":"60s"}`))
	p := background(`{"keys":["order:1"],"ownerId":"p","expire":"60s","waitTimeout":"60s","requestId":"metrics-p"}`)
	b := background(`{"keys":["stock:a"],"ownerId":"b","expire":"60s","waitTimeout":"60s"}`)
	queued := func(key string, n int) {
		t.Helper()
		last := ""
		testcluster.Poll(t, testcluster.DefaultWait, 20*time.Millisecond, fmt.Sprintf("%d waiting for %s", n, key), func() bool {
			out, err := postJSON(ctx, hc, c.URL(leader), "GetLock", `{"key":"`+key+`"}`)
			last = out
			return err == nil && strings.Contains(out, fmt.Sprintf(`"waiters":%d`, n))
		}, &last)
	}
	queued("order:1", 1)
	queued("stock:a", 1) // b before c
	cw := background(`{"keys":["stock:a"],"ownerId":"c","expire":"1s","waitTimeout":"60s"}`)
	// Two keys have waiters, and only the longest queue is reported.
	waitAll("stock:a's queue of 2 as the only queue reported", func(_ int, m map[string]float64) bool {
		n := 0
		for k := range m {
			if strings.HasPrefix(k, "raftlock_queue_depth{") {
				n++
			}
		}
		return m[`raftlock_queue_depth{key=stock:a}`] == 2 && n == 1
	})
	must(call("CancelAcquire", `{"requestId":"metrics-p"}`))
	if err := <-p; err == nil {
		t.Fatal("p's cancelled acquire succeeded")
	}
	if err := call("Acquire", `{"keys":["order:1"],"ownerId":"q","expire":"60s","waitTimeout":"0.1s"}`); err == nil || !strings.Contains(err.Error(), "Timed-out") {
		t.Fatalf("q's acquire of order:1 held by o: %v, want a time-out", err)
		t.Fatal("q acquired order:1 held by o")
	}
	must(call("Release", `{"keys":["stock:a"],"ownerId":"a"}`))
	must(<-b)
	must(call("Release", `{"keys":["stock:a"],"ownerId":"b"}`))
	must(<-cw) // c's hold expires after a second
	must(call("Acquire", `{"keys":["zzz:1"],"ownerId":"z","expire":"60s"}`))
	must(call("Release", `{"keys":["zzz:1"],"ownerId":"z"}`))

	want := map[string]float64{
		`raftlock_lock_grants_total{how=acquired,prefix=stock:}`:            1,
		`raftlock_lock_grants_total{how=handed_off,prefix=stock:}`:          2,
		`raftlock_lock_grants_total{how=acquired,prefix=order:}`:            1,
		`raftlock_lock_grants_total{how=acquired,prefix=other}`:             1,
		`raftlock_lock_busy_total{prefix=stock:}`:                           1,
		`raftlock_lock_busy_total{prefix=order:}`:                           0, // q waited instead
		`raftlock_lock_ends_total{how=released,prefix=stock:}`:              2,
		`raftlock_lock_ends_total{how=expired,prefix=stock:}`:               1,
		`raftlock_lock_ends_total{how=released,prefix=other}`:               1,
		`raftlock_lock_hold_seconds_count{prefix=stock:}`:                   3,
		`raftlock_lock_hold_seconds_count{prefix=other}`:                    1,
		`raftlock_lock_wait_seconds_count{outcome=granted,prefix=stock:}`:   2,
		`raftlock_lock_wait_seconds_count{outcome=cancelled,prefix=order:}`: 1,
		`raftlock_lock_wait_seconds_count{outcome=timed_out,prefix=order:}`: 1,
	}
	delete(want, `raftlock_lock_busy_total{prefix=order:}`) // absent: never counted
	waitAll("every node to count what the test did", func(_ int, m map[string]float64) bool {
		return diffSeries(m, want) == ""
	})
	var first map[string]float64
	for i := range c.Len() {
		m, err := scrape(ctx, hc, c.URL(i))
		must(err)
		m = perLock(m)
		for k := range m {
			if strings.Contains(k, "zzz") {
				t.Errorf("node %d: series %s: a prefix past the cap has a label of its own", i, k)
			}
		}
		// c held stock:a for its whole lease of a second: the hold times
		// add up to at least that.
		if s := m[`raftlock_lock_hold_seconds_sum{prefix=stock:}`]; s < 1 {
			t.Errorf("node %d: stock: hold seconds sum %v, want at least 1 (c's lease)", i, s)
		}
		if s := m[`raftlock_lock_wait_seconds_sum{outcome=timed_out,prefix=order:}`]; s < 0.1 {
			t.Errorf("node %d: q's wait %vs, want at least its wait timeout of 0.1s", i, s)
		}
		if first == nil {
			first = m
		} else if d := diffSeries(m, first); d != "" {
			t.Errorf("node %d differs from node 0: %s", i, d)
		}
	}
	if t.Failed() {
		t.Logf("node 0: %v", first)
	}
}

// With --metrics-prefix-depth 0 and --metrics-busiest-keys 0, /metrics
// (which answers anyone) holds no key text: every key counts under
// prefix="", and no queue is named, even while one has a waiter.
func TestLockMetricsWithoutKeyNames(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithArgs("--metrics-prefix-depth", "0", "--metrics-busiest-keys", "0"))
	ctx := t.Context()
	hc := c.HTTPClient()
	c.Leader()
	if _, err := postJSON(ctx, hc, c.URL(0), "Acquire", `{"keys":["secret:k1"],"ownerId":"a","expire":"60s"}`); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := postJSON(ctx, &http.Client{Transport: hc.Transport}, c.URL(0), "Acquire", `{"keys":["secret:k1"],"ownerId":"b","expire":"60s","waitTimeout":"60s"}`)
		got <- err
	}()
	var m map[string]float64
	last := ""
	testcluster.Poll(t, testcluster.DefaultWait, 50*time.Millisecond, "b queued, counted under prefix \"\"", func() bool {
		var err error
		if m, err = scrape(ctx, hc, c.URL(0)); err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprint(perLock(m))
		return m[`raftlock_waiters{}`] == 1 && m[`raftlock_lock_grants_total{how=acquired,prefix=}`] == 1
	}, &last)
	for k := range m {
		if strings.Contains(k, "secret") || strings.HasPrefix(k, "raftlock_queue_depth") {
			t.Errorf("series %s: key text in /metrics", k)
		}
	}
	if _, err := postJSON(ctx, hc, c.URL(0), "Release", `{"keys":["secret:k1"],"ownerId":"a"}`); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

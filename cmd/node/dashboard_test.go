package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/internal/testcluster"
)

// grafanaDashboard is the part of docs/grafana-dashboard.json the test reads.
type grafanaDashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var metricName = regexp.MustCompile(`\braftlock_[a-z_]+`)

// The Grafana dashboard in docs/ is valid JSON, its panels are well formed,
// it has the panels the docs promise, and every metric its queries name is
// one a real node exports (after a little traffic: labelled series appear
// once counted, the queue depth while a key has waiters).
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without a title, uid or panels: %+v", d)
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	var titles []string
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d is zero or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		titles = append(titles, p.Title)
		if p.Type == "" || p.GridPos.W == 0 || p.GridPos.H == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %q: no type, size or queries", p.Title)
		}
		for _, q := range p.Targets {
			names := metricName.FindAllString(q.Expr, -1)
			if q.RefID == "" || len(names) == 0 {
				t.Errorf("panel %q: query %q has no refId or names no raftlock metric", p.Title, q.Expr)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	for _, want := range []string{"raftlock_lock_grants_total", "raftlock_lock_wait_seconds_bucket", "raftlock_lock_hold_seconds_bucket",
		"raftlock_queue_depth", "raftlock_lock_ends_total", "raftlock_lock_busy_total", "raftlock_stage_seconds_bucket"} {
		if !used[want] {
			t.Errorf("no panel queries %s (panels: %q)", want, titles)
		}
	}

	c := testcluster.New(t, 1)
	ctx := t.Context()
	hc := c.HTTPClient()
	c.Leader()
	call := func(method, body string) error {
		_, err := postJSON(ctx, hc, c.URL(0), method, body)
		return err
	}
	if err := call("Acquire", `{"keys":["d:1"],"ownerId":"a","expire":"60s"}`); err != nil {
		t.Fatal(err)
	}
	if call("Acquire", `{"keys":["d:1"],"ownerId":"x","expire":"60s"}`) == nil {
		t.Fatal("x acquired d:1 held by a")
	}
	got := make(chan error, 1)
	go func() { got <- call("Acquire", `{"keys":["d:1"],"ownerId":"b","expire":"60s","waitTimeout":"60s"}`) }()
	var series map[string]float64
	last := ""
	testcluster.Poll(t, testcluster.DefaultWait, 50*time.Millisecond, "b queued", func() bool {
		series, err = scrape(ctx, hc, c.URL(0))
		if err != nil {
			last = err.Error()
			return false
		}
		return series[`raftlock_queue_depth{key=d:1}`] == 1
	}, &last)
	if err := call("Release", `{"keys":["d:1"],"ownerId":"a"}`); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := call("Release", `{"keys":["d:1"],"ownerId":"b"}`); err != nil {
		t.Fatal(err)
	}
	after, err := scrape(ctx, hc, c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, m := range []map[string]float64{series, after} {
		for k := range m {
			name, _, _ := strings.Cut(k, "{")
			exported[name] = true
			for _, suffix := range []string{"_count", "_sum"} { // histograms: _bucket too
				if base, ok := strings.CutSuffix(name, suffix); ok {
					exported[base+"_bucket"] = true
				}
			}
		}
	}
	var missing []string
	for n := range used {
		if !exported[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Fatalf("the dashboard queries metrics a node does not export: %q", missing)
	}
}

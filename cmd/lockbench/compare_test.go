package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --versus sets one driver against another that is not the baseline: the
// ratio of pairs/s and the difference of acquire p50 are taken round by
// round, and a driver it names must be among the runs.
func TestCompareVersus(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "runs.json")
	var all bytes.Buffer
	at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	// Two rounds: js makes 0.8x and 0.9x go's pairs/s, with p50 0.1 and 0.3 ms above.
	for i, r := range []struct {
		driver string
		pairs  float64
		p50    float64
	}{
		{"go", 1000, 1.0}, {"js", 800, 1.1}, {"etcd", 500, 2.0},
		{"go", 1000, 1.0}, {"js", 900, 1.3}, {"etcd", 500, 2.0},
	} {
		res := Result{Name: "w", Driver: r.driver, Target: "t-" + r.driver, Started: at.Add(time.Duration(i) * time.Second),
			PairsPerSec: r.pairs, Acquire: Summary{P50: r.p50, P99: 2 * r.p50}}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		all.WriteByte('\n')
	}
	if err := os.WriteFile(raw, all.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"compare", "--baseline", "etcd", "--drivers", "go etcd js", "--versus", "js=go", raw}, &stdout, &stderr); code != exitOK {
		t.Fatalf("compare: exit %d: %s", code, stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{
		"## js against go",
		"| w | 850 | 1,000 | 0.85 (0.80–0.90) | 1.2 / 1.0 | +0.20 (+0.10–+0.30) | 2.4 / 2.0 | t-js |",
		"## go against etcd",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// Against the baseline itself, --versus replaces the headline.
	stdout.Reset()
	if code := run([]string{"compare", "--baseline", "go", "--versus", "js=go", raw}, &stdout, &stderr); code != exitOK {
		t.Fatalf("compare: exit %d: %s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "## js against go"); n != 1 || !strings.Contains(stdout.String(), "p50 − go ms") {
		t.Errorf("%d tables of js against go, want 1 with the p50 difference:\n%s", n, stdout.String())
	}
	for _, bad := range []string{"js=gamma", "js", "js=js"} {
		stderr.Reset()
		if code := run([]string{"compare", "--baseline", "etcd", "--versus", bad, raw}, &bytes.Buffer{}, &stderr); code != exitUsage {
			t.Errorf("--versus %s: exit %d, want %d: %s", bad, code, exitUsage, stderr.String())
		}
	}
}

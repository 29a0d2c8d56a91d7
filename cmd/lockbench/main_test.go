package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/cluster/clustertest"
	"github.com/raftlock/raftlock/internal/loadgen"
)

// lockbench run against a real 3-node cluster completes pairs with no
// errors, in both key modes, and its --json is the documented Result; the
// report turns results into a table and a PNG. (No timing is asserted.)
func TestRunAndReport(t *testing.T) {
	c := clustertest.New(t, 3)
	c.Leader()
	eps := strings.Join(c.Addrs(), ",")
	dir := t.TempDir()
	raw := filepath.Join(dir, "results.json")
	var all bytes.Buffer
	for _, args := range [][]string{
		{"--callers", "2"},
		{"--callers", "4", "--keys", "1", "--wait", "10s", "--protocol", "connect-proto", "--pids", "self=" + strconv.Itoa(os.Getpid())},
	} {
		var stdout, stderr bytes.Buffer
		argv := append([]string{"run", "--endpoints", eps, "--duration", "1s", "--warmup", "0s", "--json"}, args...)
		if code := run(argv, &stdout, &stderr); code != exitOK {
			t.Fatalf("lockbench %v: exit %d\n%s", argv, code, stderr.String())
		}
		var res Result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("--json output: %v\n%s", err, stdout.String())
		}
		if res.Pairs == 0 || res.Acquire.Count != res.Pairs || res.Release.Count != res.Pairs || len(res.Errors) != 0 {
			t.Fatalf("result: %d pairs, %d acquires, %d releases, errors %v", res.Pairs, res.Acquire.Count, res.Release.Count, res.Errors)
		}
		if res.Acquire.P50 <= 0 || res.Acquire.P50 > res.Acquire.P99 || res.Acquire.P99 > res.Acquire.Max {
			t.Fatalf("acquire percentiles out of order: %+v", res.Acquire)
		}
		if len(res.AcquireCurve) != len(loadgen.CurvePercentiles) || res.Leader == "" {
			t.Fatalf("curve of %d points, leader %q", len(res.AcquireCurve), res.Leader)
		}
		if !strings.Contains(stderr.String(), "acquires/s") {
			t.Errorf("no progress line on stderr: %q", stderr.String())
		}
		all.Write(stdout.Bytes())
	}
	if err := os.WriteFile(raw, all.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	md, img := filepath.Join(dir, "results.md"), filepath.Join(dir, "latency.png")
	var stderr bytes.Buffer
	if code := run([]string{"report", "--out", md, "--plot", img, raw}, &bytes.Buffer{}, &stderr); code != exitOK {
		t.Fatalf("report: exit %d: %s", code, stderr.String())
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 2 callers, own keys |", "| 4 callers, 1 shared key |", "## Machine", "nproc", "latency.png"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
}

// --trace splits every measured acquire into the client-side stages and
// counts its HTTP requests and connections; compare puts two drivers'
// runs of one workload side by side with ratios, refuses a workload that
// lacks a driver, and draws a PNG; report adds the trace tables. (No
// timing is asserted: only that the stages were seen and are consistent.)
func TestTraceAndCompare(t *testing.T) {
	c := clustertest.New(t, 3)
	c.Leader()
	eps := strings.Join(c.Addrs(), ",")
	dir := t.TempDir()
	raw := filepath.Join(dir, "runs.json")
	var all bytes.Buffer
	for _, args := range [][]string{
		{"--driver", "alpha", "--protocol", "grpc"},
		{"--driver", "beta", "--protocol", "connect-proto", "--http1"},
	} {
		var stdout, stderr bytes.Buffer
		argv := append([]string{"run", "--endpoints", eps, "--name", "w", "--callers", "2", "--duration", "1s", "--warmup", "0s", "--json", "--quiet", "--trace"}, args...)
		if code := run(argv, &stdout, &stderr); code != exitOK {
			t.Fatalf("lockbench %v: exit %d\n%s", argv, code, stderr.String())
		}
		var res Result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Driver != args[1] || res.Trace == nil || res.Recipe == "" {
			t.Fatalf("driver %q, trace %v, recipe %q", res.Driver, res.Trace, res.Recipe)
		}
		total, _ := res.Trace.Stage("total")
		server, _ := res.Trace.Stage("server + network (to first byte)")
		if total.Count != res.Pairs || server.Count != res.Pairs || server.P50 <= 0 || server.P50 > total.P50 {
			t.Errorf("%s: %d pairs; total %+v; server + network %+v", res.Driver, res.Pairs, total, server)
		}
		if n := res.Trace.Counts["http requests"]; n < res.Pairs {
			t.Errorf("%s: %d HTTP requests for %d acquires", res.Driver, n, res.Pairs)
		}
		if n := res.Trace.Counts[traceConnsUsed]; n < 1 || n > 3*2 {
			t.Errorf("%s: %d connections used by 2 callers on 3 nodes", res.Driver, n)
		}
		all.Write(stdout.Bytes())
	}
	if err := os.WriteFile(raw, all.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	md, img := filepath.Join(dir, "compare.md"), filepath.Join(dir, "compare.png")
	var stderr bytes.Buffer
	if code := run([]string{"compare", "--baseline", "beta", "--drivers", "alpha beta", "--out", md, "--plot", img, raw}, &bytes.Buffer{}, &stderr); code != exitOK {
		t.Fatalf("compare: exit %d: %s", code, stderr.String())
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## alpha against beta", "| w | alpha |", "| w | beta |", "## The drivers, exactly as run", "## Machine"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("compare report lacks %q:\n%s", want, text)
		}
	}
	if f, err := os.Open(img); err != nil {
		t.Fatal(err)
	} else if _, err := png.Decode(f); err != nil {
		t.Errorf("plot is not a PNG: %v", err)
	}
	stderr.Reset()
	if code := run([]string{"compare", "--baseline", "beta", "--drivers", "alpha beta gamma", raw}, &bytes.Buffer{}, &stderr); code != exitError ||
		!strings.Contains(stderr.String(), `no run of driver "gamma"`) {
		t.Errorf("compare with a missing driver: exit %d: %s", code, stderr.String())
	}
	var report bytes.Buffer
	if code := run([]string{"report", raw}, &report, &stderr); code != exitOK || !strings.Contains(report.String(), "Client-side trace") {
		t.Errorf("report of traced runs: exit %d, no trace table:\n%s", code, report.String())
	}
}

// fill takes every lock it is asked for, in batches, and fill --release
// frees them all again.
func TestFillAndRelease(t *testing.T) {
	c := clustertest.New(t, 3)
	c.Leader()
	eps := strings.Join(c.Addrs(), ",")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"fill", "--endpoints", eps, "--count", "1000", "--batch", "64", "--callers", "3", "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("fill: exit %d: %s", code, stderr.String())
	}
	var fr FillResult
	if err := json.Unmarshal(stdout.Bytes(), &fr); err != nil || fr.Locks != 1000 || fr.Requests != 16 {
		t.Fatalf("fill result %+v (%v)", fr, err)
	}
	stdout.Reset()
	if code := run([]string{"fill", "--endpoints", eps, "--release", "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("fill --release: exit %d: %s", code, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &fr); err != nil || fr.Released != 1000 {
		t.Fatalf("release result %+v (%v)", fr, err)
	}
}

// Mistakes in the command line exit 2 before anything is contacted.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"run", "--callers", "0"},
		{"run", "--wait", "soon"},
		{"run", "--protocol", "carrier-pigeon", "--endpoints", "127.0.0.1:1"},
		{"run", "--pids", "n1"},
		{"fill", "--batch", "65"},
		{"report"},
		{"compare"},
		{"run", "--http1", "--protocol", "grpc", "--endpoints", "127.0.0.1:1"},
	} {
		var stderr bytes.Buffer
		if code := run(args, &bytes.Buffer{}, &stderr); code != exitUsage {
			t.Errorf("lockbench %v: exit %d, want %d (%s)", args, code, exitUsage, stderr.String())
		}
	}
}

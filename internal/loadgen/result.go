package loadgen

import (
	"fmt"
	"os"
	"time"
)

// Result is the outcome of one run: the JSON object a load tool prints
// with --json, one per run, and what the reports read.
type Result struct {
	Name   string `json:"name"`
	Target string `json:"target,omitempty"`
	// Driver names the service and client measured, e.g. "raftlock" or
	// "etcd"; the comparison groups runs by it. Empty in results written
	// before drivers existed: those are raftlock's.
	Driver string `json:"driver,omitempty"`
	// Recipe says in a sentence what one caller does, exactly as run.
	Recipe string `json:"recipe,omitempty"`
	// ServerVersion is the version the service reported, where it does.
	ServerVersion string    `json:"server_version,omitempty"`
	Started       time.Time `json:"started"`
	Endpoints     []string  `json:"endpoints"`
	Protocol      string    `json:"protocol"`
	Callers       int       `json:"callers"`
	// Keys is the number of shared keys; 0: each caller has its own.
	Keys        int     `json:"keys"`
	Expire      string  `json:"expire"`
	Wait        string  `json:"wait"`
	WarmupSec   float64 `json:"warmup_s"`
	DurationSec float64 `json:"duration_s"`
	// ElapsedSec is the measured window as it was.
	ElapsedSec  float64 `json:"elapsed_s"`
	Pairs       uint64  `json:"pairs"`
	PairsPerSec float64 `json:"pairs_per_s"`
	Acquire     Summary `json:"acquire"`
	Release     Summary `json:"release"`
	// Errors counts failed calls by "op:kind"; ErrorSamples keeps the
	// first message of each.
	Errors       map[string]uint64 `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Timeline is the pairs completed in each second of the window.
	Timeline []uint64 `json:"timeline"`
	// AcquireCurve is acquire latency by percentile, for plots.
	AcquireCurve []CurvePoint `json:"acquire_curve"`
	// LoadBefore and LoadAfter are /proc/loadavg (1, 5, 15 minutes)
	// around the run: other work on the machine shows here.
	LoadBefore []float64 `json:"load_before,omitempty"`
	LoadAfter  []float64 `json:"load_after,omitempty"`
	GoMaxProcs int       `json:"gomaxprocs"`
	// Leader is the id of the node that led at the end of the run.
	Leader string `json:"leader,omitempty"`
	// CPU is the CPU time of the named processes and of the load tool in
	// the measured window.
	CPU []ProcCPU `json:"cpu,omitempty"`
	// Trace is the per-stage breakdown of the acquires, when the run
	// traced them.
	Trace *TraceResult `json:"trace,omitempty"`
}

// Summary describes a latency distribution in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// CurvePoint is the latency at one percentile.
type CurvePoint struct {
	Percentile float64 `json:"p"`
	Ms         float64 `json:"ms"`
}

// TraceResult is what the Callers reported of the measured acquires
// (Trace): a latency distribution per stage, in the order of
// Config.Stages, and the sums of Config.Counts. Tools may add counts of
// their own after the run.
type TraceResult struct {
	Stages []StageSummary    `json:"stages"`
	Counts map[string]uint64 `json:"counts,omitempty"`
}

// StageSummary is the latency of one stage of an acquire.
type StageSummary struct {
	Name string `json:"name"`
	Summary
}

// Stage returns the summary of the stage called name, and false if the
// run has none.
func (t *TraceResult) Stage(name string) (Summary, bool) {
	if t == nil {
		return Summary{}, false
	}
	for _, s := range t.Stages {
		if s.Name == name {
			return s.Summary, true
		}
	}
	return Summary{}, false
}

// CurvePercentiles are the points of Result.AcquireCurve: dense towards
// the tail, as an HDR percentile plot draws them.
var CurvePercentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96.25, 97.5, 98.125, 98.75,
	99, 99.375, 99.5, 99.6875, 99.75, 99.8438, 99.9, 99.9219, 99.95, 99.9609, 99.975, 99.9805, 99.99, 99.995, 99.999, 100}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(h *histogram) Summary {
	return Summary{
		Count: h.n, Mean: ms(h.mean()), Min: ms(h.min), P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max),
	}
}

// LoadAvg reads the 1, 5 and 15 minute load averages; nil where there is
// no /proc.
func LoadAvg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var l [3]float64
	if _, err := fmt.Sscan(string(b), &l[0], &l[1], &l[2]); err != nil {
		return nil
	}
	return l[:]
}

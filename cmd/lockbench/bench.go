package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/raftlock/raftlock/client"
)

// benchConfig is what one run does.
type benchConfig struct {
	name     string
	target   string
	callers  int
	keys     int // 0: one key per caller
	duration time.Duration
	warmup   time.Duration
	expire   time.Duration
	wait     time.Duration
	prefix   string
	progress bool
	json     bool
	procs    procSet
}

func runCmd(args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	var bc benchConfig
	fs := flag.NewFlagSet("lockbench run", flag.ContinueOnError)
	cf.register(fs)
	fs.StringVar(&bc.name, "name", "", "name of this workload in the results (default: derived from the flags)")
	fs.StringVar(&bc.target, "target", "", "the target this workload is measured against, copied into the results")
	fs.IntVar(&bc.callers, "callers", 16, "concurrent callers (C)")
	fs.IntVar(&bc.keys, "keys", 0, "shared keys (K); 0: every caller has a key of its own")
	fs.DurationVar(&bc.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&bc.warmup, "warmup", 2*time.Second, "how long to run before measuring")
	fs.DurationVar(&bc.expire, "expire", time.Minute, "time to live of each lock (0: never expires)")
	wait := fs.String("wait", "auto", "wait timeout of each acquire: a duration, or auto (0 with own keys, 5s with shared keys)")
	fs.StringVar(&bc.prefix, "prefix", "", "key prefix (default: lockbench/<random>/)")
	quiet := fs.Bool("quiet", false, "no progress line")
	fs.BoolVar(&bc.json, "json", false, "print the result as JSON on stdout")
	cpuProfile := fs.String("cpuprofile", "", "write lockbench's own CPU profile of the measured run to this file")
	pids := fs.String("pids", "", "report the CPU time of these processes per pair: name=pid,... (Linux /proc; name them by node id to mark the leader)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	var err error
	if bc.procs, err = parsePIDs(*pids); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case bc.callers < 1:
		return usagef("--callers must be at least 1")
	case bc.keys < 0:
		return usagef("--keys must not be negative")
	case bc.duration <= 0:
		return usagef("--duration must be positive")
	case bc.warmup < 0 || bc.expire < 0:
		return usagef("--warmup and --expire must not be negative")
	}
	if *wait == "auto" {
		if bc.keys > 0 {
			bc.wait = 5 * time.Second
		}
	} else {
		d, err := time.ParseDuration(*wait)
		if err != nil || d < 0 {
			return usagef("--wait %q: want a non-negative duration or auto", *wait)
		}
		bc.wait = d
	}
	if bc.prefix == "" {
		bc.prefix = fmt.Sprintf("lockbench/%d/", time.Now().UnixNano())
	}
	if bc.name == "" {
		bc.name = bc.describe()
	}
	bc.progress = !*quiet

	cl, err := cf.newClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := waitReady(context.Background(), cl, 30*time.Second); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res := bench(cl, bc, stderr)
	res.Endpoints, res.Protocol = cf.endpointList(), cf.protocol
	if cf.http1 {
		res.Protocol += " over HTTP/1.1"
	}
	if st, err := cl.Status(context.Background()); err == nil {
		res.Leader = st.LeaderID
		for i := range res.CPU {
			if res.CPU[i].Name == st.LeaderID {
				res.CPU[i].Name += " (leader)"
			}
		}
	}
	if bc.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printResult(stdout, res)
	}
	if res.Pairs == 0 {
		return errors.New("no acquire -> release pair completed")
	}
	return nil
}

// describe names a workload: "16 callers, own keys", "16 callers, 1 shared key".
func (bc benchConfig) describe() string {
	callers := plural(bc.callers, "caller")
	switch {
	case bc.keys == 0 && bc.callers == 1:
		return callers + ", own key"
	case bc.keys == 0:
		return callers + ", own keys"
	}
	return callers + ", " + plural(bc.keys, "shared key")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Result is the outcome of one run, as --json prints it.
type Result struct {
	Name      string    `json:"name"`
	Target    string    `json:"target,omitempty"`
	Started   time.Time `json:"started"`
	Endpoints []string  `json:"endpoints"`
	Protocol  string    `json:"protocol"`
	Callers   int       `json:"callers"`
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
	// CPU is the CPU time of the --pids processes and of lockbench in
	// the measured window.
	CPU []ProcCPU `json:"cpu,omitempty"`
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

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(h *histogram) Summary {
	return Summary{
		Count: h.n, Mean: ms(h.mean()), Min: ms(h.min), P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max),
	}
}

// curvePercentiles are the points of AcquireCurve: dense towards the tail,
// as an HDR percentile plot draws them.
var curvePercentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96.25, 97.5, 98.125, 98.75,
	99, 99.375, 99.5, 99.6875, 99.75, 99.8438, 99.9, 99.9219, 99.95, 99.9609, 99.975, 99.9805, 99.99, 99.995, 99.999, 100}

// phases of a run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// worker is one caller's loop and its records. mu guards the histograms
// and errors against the progress line, which reads them once a second.
type worker struct {
	mu       sync.Mutex
	acquire  histogram // measured window
	release  histogram
	interval histogram // acquires since the last progress line
	pairs    uint64    // in the measured window
	errs     map[string]uint64
	samples  map[string]string
}

func (w *worker) fail(phase int32, op string, err error) {
	kind := op + ":" + errorKind(err)
	w.mu.Lock()
	defer w.mu.Unlock()
	if phase != phaseMeasure {
		return
	}
	w.errs[kind]++
	if _, ok := w.samples[kind]; !ok {
		w.samples[kind] = err.Error()
	}
}

// errorKind names an error for the counts: the client's sentinel errors
// first, then the Connect code.
func errorKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{client.ErrLockHeld, "lock_held"}, {client.ErrWaitTimeout, "wait_timeout"}, {client.ErrNotHeld, "not_held"},
		{client.ErrNoLeader, "no_leader"}, {client.ErrLimit, "limit"}, {client.ErrUnauthenticated, "unauthenticated"},
		{client.ErrPermissionDenied, "permission_denied"}, {client.ErrInvalidArgument, "invalid_argument"},
		{context.DeadlineExceeded, "timeout"}, {context.Canceled, "canceled"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return strings.ReplaceAll(connect.CodeOf(err).String(), " ", "_")
}

// bench runs the workload and returns its result.
func bench(cl *client.Client, bc benchConfig, progress io.Writer) *Result {
	res := &Result{
		Name: bc.name, Target: bc.target, Started: time.Now().UTC().Truncate(time.Second), Callers: bc.callers, Keys: bc.keys,
		Expire: bc.expire.String(), Wait: bc.wait.String(), WarmupSec: bc.warmup.Seconds(), DurationSec: bc.duration.Seconds(),
		LoadBefore: loadAvg(), GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	var phase atomic.Int32
	var done atomic.Uint64 // pairs completed in the window, for the timeline
	workers := make([]*worker, bc.callers)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{errs: map[string]uint64{}, samples: map[string]string{}}
		workers[i] = w
		key := fmt.Sprintf("%sw%d", bc.prefix, i)
		if bc.keys > 0 {
			key = fmt.Sprintf("%sk%d", bc.prefix, i%bc.keys)
		}
		owner := fmt.Sprintf("lockbench-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(cl, bc, w, key, owner, &phase, &done)
		}()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	measureAt := start.Add(bc.warmup)
	if bc.warmup == 0 {
		phase.Store(phaseMeasure)
	}
	var measureStart time.Time
	var cpuBefore []float64
	if bc.warmup == 0 {
		measureStart = start
		cpuBefore = bc.procs.cpuTimes()
	}
	var last uint64
	for {
		now := <-tick.C
		if phase.Load() == phaseWarmup && !now.Before(measureAt) {
			for _, w := range workers { // the warm-up's intervals are not part of the window
				w.mu.Lock()
				w.interval.reset()
				w.mu.Unlock()
			}
			measureStart = time.Now()
			cpuBefore = bc.procs.cpuTimes()
			phase.Store(phaseMeasure)
			last = 0
			if bc.progress {
				fmt.Fprintf(progress, "lockbench: %s: warm-up done, measuring for %s\n", bc.name, bc.duration)
			}
			continue
		}
		var iv histogram
		var errs uint64
		for _, w := range workers {
			w.mu.Lock()
			iv.merge(&w.interval)
			w.interval.reset()
			for _, n := range w.errs {
				errs += n
			}
			w.mu.Unlock()
		}
		if phase.Load() == phaseMeasure {
			cur := done.Load()
			res.Timeline = append(res.Timeline, cur-last)
			last = cur
		}
		if bc.progress {
			label := "warm-up"
			if phase.Load() == phaseMeasure {
				label = fmt.Sprintf("%3.0fs", now.Sub(measureStart).Seconds())
			}
			fmt.Fprintf(progress, "lockbench: %s %7s  %7.0f acquires/s  acquire p50 %6.2f ms  p99 %7.2f ms  max %7.2f ms  errors %d\n",
				bc.name, label, float64(iv.n)/time.Second.Seconds(), ms(iv.quantile(0.5)), ms(iv.quantile(0.99)), ms(iv.max), errs)
		}
		if phase.Load() == phaseMeasure && now.Sub(measureStart) >= bc.duration-10*time.Millisecond {
			break
		}
	}
	phase.Store(phaseStop)
	elapsed := time.Since(measureStart)
	cpuAfter := bc.procs.cpuTimes()
	wg.Wait()

	var acq, rel histogram
	res.Errors, res.ErrorSamples = map[string]uint64{}, map[string]string{}
	for _, w := range workers {
		acq.merge(&w.acquire)
		rel.merge(&w.release)
		res.Pairs += w.pairs
		for k, n := range w.errs {
			res.Errors[k] += n
			if _, ok := res.ErrorSamples[k]; !ok {
				res.ErrorSamples[k] = w.samples[k]
			}
		}
	}
	res.ElapsedSec = elapsed.Seconds()
	res.PairsPerSec = float64(res.Pairs) / elapsed.Seconds()
	res.Acquire, res.Release = summarize(&acq), summarize(&rel)
	for _, p := range curvePercentiles {
		res.AcquireCurve = append(res.AcquireCurve, CurvePoint{Percentile: p, Ms: ms(acq.quantile(p / 100))})
	}
	res.LoadAfter = loadAvg()
	res.CPU = bc.procs.cpuReport(cpuBefore, cpuAfter, res.Pairs)
	return res
}

// loop is one caller: acquire -> release until the run stops. A pair
// counts when its release completes inside the measured window.
func loop(cl *client.Client, bc benchConfig, w *worker, key, owner string, phase *atomic.Int32, done *atomic.Uint64) {
	keys := []string{key}
	opts := []client.LockOption{client.WithOwner(owner), client.WithExpire(bc.expire), client.WithWait(bc.wait)}
	// Bounds each call well past the wait, so a lost cluster shows as
	// errors instead of a hang.
	callTimeout := bc.wait + 30*time.Second
	for phase.Load() != phaseStop {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		t0 := time.Now()
		l, err := cl.Acquire(ctx, keys, opts...)
		t1 := time.Now()
		if err != nil {
			cancel()
			w.fail(phase.Load(), "acquire", err)
			if !errors.Is(err, client.ErrLockHeld) && !errors.Is(err, client.ErrWaitTimeout) {
				time.Sleep(10 * time.Millisecond) // the cluster is in trouble: do not spin
			}
			continue
		}
		w.mu.Lock()
		w.interval.record(t1.Sub(t0))
		w.mu.Unlock()
		err = l.Release(ctx)
		t2 := time.Now()
		cancel()
		ph := phase.Load()
		if err != nil {
			w.fail(ph, "release", err)
			continue
		}
		if ph == phaseMeasure {
			w.mu.Lock()
			w.acquire.record(t1.Sub(t0))
			w.release.record(t2.Sub(t1))
			w.pairs++
			w.mu.Unlock()
			done.Add(1)
		}
	}
}

// loadAvg reads the 1, 5 and 15 minute load averages; nil where there is
// no /proc.
func loadAvg() []float64 {
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

func printResult(w io.Writer, r *Result) {
	mode := "own keys"
	if r.Keys > 0 {
		mode = plural(r.Keys, "shared key") + ", wait " + r.Wait
	}
	fmt.Fprintf(w, "workload   %s (%d callers, %s, %s, expire %s)\n", r.Name, r.Callers, mode, r.Protocol, r.Expire)
	fmt.Fprintf(w, "measured   %.2fs after %.0fs warm-up; load before %v after %v\n", r.ElapsedSec, r.WarmupSec, r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(w, "pairs/s    %.0f (%d acquire -> release pairs)\n", r.PairsPerSec, r.Pairs)
	for _, s := range []struct {
		name string
		s    Summary
	}{{"acquire", r.Acquire}, {"release", r.Release}} {
		fmt.Fprintf(w, "%-10s p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  (mean %.3f ms)\n",
			s.name, s.s.P50, s.s.P90, s.s.P99, s.s.P999, s.s.Max, s.s.Mean)
	}
	if len(r.CPU) > 0 {
		fmt.Fprintf(w, "cpu/pair   %s\n", fmtCPU(r.CPU))
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors     none")
		return
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "errors     %s %d (first: %s)\n", k, r.Errors[k], r.ErrorSamples[k])
	}
}

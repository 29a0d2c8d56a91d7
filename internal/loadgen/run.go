package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of this package.
var (
	// ErrInvalidConfig is a Config that Validate refuses; the message
	// names the field.
	ErrInvalidConfig = errors.New("invalid load config")
	// ErrInvalidPIDs is a process list ParsePIDs cannot read.
	ErrInvalidPIDs = errors.New("invalid process list")
)

// Config is what one run does. Durations are wall-clock time.
type Config struct {
	// Name names the workload in the results.
	Name string
	// Target is copied into the results.
	Target string
	// Callers is the number of concurrent callers, at least 1.
	Callers int
	// Keys is the number of keys the callers share (caller i takes key
	// i mod Keys); 0: every caller has a key of its own.
	Keys int
	// Prefix starts every key; the tools make it unique per run.
	Prefix string
	// Warmup is run before the window, unmeasured; 0: none.
	Warmup time.Duration
	// Duration is the measured window, positive.
	Duration time.Duration
	// Wait is the wait timeout of each acquire (the driver applies it);
	// each call is bounded by Wait + 30 s, so a lost service shows as
	// errors instead of a hang.
	Wait time.Duration
	// Expire is the time to live of each lock, as the driver applies it;
	// it is copied into the results.
	Expire time.Duration
	// Progress gets a line per second; nil: none.
	Progress io.Writer
	// Procs are processes whose CPU time in the window is reported.
	Procs ProcSet
	// ClientName names the load tool's own process in the CPU figures.
	ClientName string
	// Stages and Counts name what a Caller reports of each acquire in a
	// Trace; nil Stages: the run does not trace.
	Stages []string
	Counts []string
}

// DefaultConfig is 16 callers with keys of their own for 10 s after 2 s
// of warm-up, locks living a minute.
func DefaultConfig() Config {
	return Config{
		Callers: 16, Duration: 10 * time.Second, Warmup: 2 * time.Second, Expire: time.Minute,
		Prefix: "lockbench/", ClientName: "lockbench",
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Callers < 1:
		return fmt.Errorf("%w: callers must be at least 1", ErrInvalidConfig)
	case c.Keys < 0:
		return fmt.Errorf("%w: keys must not be negative", ErrInvalidConfig)
	case c.Duration <= 0:
		return fmt.Errorf("%w: duration must be positive", ErrInvalidConfig)
	case c.Warmup < 0 || c.Expire < 0 || c.Wait < 0:
		return fmt.Errorf("%w: warmup, expire and wait must not be negative", ErrInvalidConfig)
	case c.Stages == nil && c.Counts != nil:
		return fmt.Errorf("%w: counts without stages", ErrInvalidConfig)
	}
	return nil
}

// Key returns the key of caller i: its own, or its share of Keys.
func (c Config) Key(i int) string {
	if c.Keys > 0 {
		return fmt.Sprintf("%sk%d", c.Prefix, i%c.Keys)
	}
	return fmt.Sprintf("%sw%d", c.Prefix, i)
}

// Caller is one caller's side of the loop; it holds at most one lock at
// a time. A Caller that also has Close() error is closed after the run.
type Caller interface {
	// Acquire takes the caller's key, waiting up to Config.Wait. When the
	// run traces, tr is not nil: Acquire may set tr.Stages[i] (-1 means
	// not seen) and add to tr.Counts[i], indexed like Config.Stages and
	// Config.Counts.
	Acquire(ctx context.Context, tr *Trace) error
	// Release frees the lock the last successful Acquire took.
	Release(ctx context.Context) error
}

// Trace is what a Caller reports of one Acquire.
type Trace struct {
	Stages []time.Duration
	Counts []uint64
}

func (t *Trace) reset() {
	for i := range t.Stages {
		t.Stages[i] = -1
	}
	clear(t.Counts)
}

// Driver connects the loop to one lock service.
type Driver struct {
	// Name is copied into Result.Driver.
	Name string
	// NewCaller makes caller i (from 0) for key; Run calls it for every
	// caller before it starts the clock.
	NewCaller func(ctx context.Context, i int, key string) (Caller, error)
	// ErrorKind names an error for the counts, e.g. "lock_held".
	ErrorKind func(error) string
	// Refused reports whether err is the service saying no (the key was
	// busy, the wait timed out) rather than trouble.
	Refused func(error) bool
}

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
	stages   []histogram
	counts   []uint64
}

func (w *worker) fail(phase int32, kind string, err error) {
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

// Run makes the callers, runs the loop (see the package comment) and
// returns its result. It fails only when the config is invalid or a
// caller cannot be made; a run in which no pair completed is a result
// with Pairs 0.
func Run(ctx context.Context, cfg Config, d Driver) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.NewCaller == nil {
		return nil, fmt.Errorf("%w: the driver has no NewCaller", ErrInvalidConfig)
	}
	if d.ErrorKind == nil {
		d.ErrorKind = func(error) string { return "error" }
	}
	if d.Refused == nil {
		d.Refused = func(error) bool { return false }
	}
	callers := make([]Caller, cfg.Callers)
	defer func() {
		for _, c := range callers {
			if cl, ok := c.(interface{ Close() error }); ok {
				_ = cl.Close()
			}
		}
	}()
	for i := range callers {
		c, err := d.NewCaller(ctx, i, cfg.Key(i))
		if err != nil {
			return nil, fmt.Errorf("caller %d: %w", i, err)
		}
		callers[i] = c
	}
	res := &Result{
		Name: cfg.Name, Target: cfg.Target, Driver: d.Name, Started: time.Now().UTC().Truncate(time.Second),
		Callers: cfg.Callers, Keys: cfg.Keys, Expire: cfg.Expire.String(), Wait: cfg.Wait.String(),
		WarmupSec: cfg.Warmup.Seconds(), DurationSec: cfg.Duration.Seconds(), LoadBefore: LoadAvg(),
		GoMaxProcs: runtime.GOMAXPROCS(0),
	}
	var phase atomic.Int32
	var done atomic.Uint64 // pairs completed in the window, for the timeline
	workers := make([]*worker, cfg.Callers)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{errs: map[string]uint64{}, samples: map[string]string{}}
		if cfg.Stages != nil {
			w.stages, w.counts = make([]histogram, len(cfg.Stages)), make([]uint64, len(cfg.Counts))
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx, cfg, d, callers[i], w, &phase, &done)
		}()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	measureAt := start.Add(cfg.Warmup)
	var measureStart time.Time
	var cpuBefore []float64
	if cfg.Warmup == 0 {
		phase.Store(phaseMeasure)
		measureStart = start
		cpuBefore = cfg.Procs.cpuTimes()
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
			cpuBefore = cfg.Procs.cpuTimes()
			phase.Store(phaseMeasure)
			last = 0
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "%s: %s: warm-up done, measuring for %s\n", cfg.ClientName, cfg.Name, cfg.Duration)
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
		if cfg.Progress != nil {
			label := "warm-up"
			if phase.Load() == phaseMeasure {
				label = fmt.Sprintf("%3.0fs", now.Sub(measureStart).Seconds())
			}
			fmt.Fprintf(cfg.Progress, "%s: %s %7s  %7.0f acquires/s  acquire p50 %6.2f ms  p99 %7.2f ms  max %7.2f ms  errors %d\n",
				cfg.ClientName, cfg.Name, label, float64(iv.n)/time.Second.Seconds(), ms(iv.quantile(0.5)), ms(iv.quantile(0.99)), ms(iv.max), errs)
		}
		if phase.Load() == phaseMeasure && now.Sub(measureStart) >= cfg.Duration-10*time.Millisecond {
			break
		}
	}
	phase.Store(phaseStop)
	elapsed := time.Since(measureStart)
	cpuAfter := cfg.Procs.cpuTimes()
	wg.Wait()

	var acq, rel histogram
	stages := make([]histogram, len(cfg.Stages))
	counts := make([]uint64, len(cfg.Counts))
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
		for i := range w.stages {
			stages[i].merge(&w.stages[i])
		}
		for i, n := range w.counts {
			counts[i] += n
		}
	}
	res.ElapsedSec = elapsed.Seconds()
	res.PairsPerSec = float64(res.Pairs) / elapsed.Seconds()
	res.Acquire, res.Release = summarize(&acq), summarize(&rel)
	for _, p := range CurvePercentiles {
		res.AcquireCurve = append(res.AcquireCurve, CurvePoint{Percentile: p, Ms: ms(acq.quantile(p / 100))})
	}
	if cfg.Stages != nil {
		res.Trace = &TraceResult{Counts: map[string]uint64{}}
		for i, name := range cfg.Stages {
			res.Trace.Stages = append(res.Trace.Stages, StageSummary{Name: name, Summary: summarize(&stages[i])})
		}
		for i, name := range cfg.Counts {
			res.Trace.Counts[name] = counts[i]
		}
	}
	res.LoadAfter = LoadAvg()
	res.CPU = cfg.Procs.cpuReport(cfg.ClientName, cpuBefore, cpuAfter, res.Pairs)
	return res, nil
}

// loop is one caller: acquire -> release until the run stops. A pair
// counts when its release completes inside the measured window.
func loop(ctx context.Context, cfg Config, d Driver, c Caller, w *worker, phase *atomic.Int32, done *atomic.Uint64) {
	var tr *Trace
	if cfg.Stages != nil {
		tr = &Trace{Stages: make([]time.Duration, len(cfg.Stages)), Counts: make([]uint64, len(cfg.Counts))}
	}
	callTimeout := cfg.Wait + 30*time.Second
	for phase.Load() != phaseStop && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		if tr != nil {
			tr.reset()
		}
		t0 := time.Now()
		err := c.Acquire(cctx, tr)
		t1 := time.Now()
		if err != nil {
			cancel()
			w.fail(phase.Load(), "acquire:"+d.ErrorKind(err), err)
			if !d.Refused(err) {
				time.Sleep(10 * time.Millisecond) // the service is in trouble: do not spin
			}
			continue
		}
		w.mu.Lock()
		w.interval.record(t1.Sub(t0))
		w.mu.Unlock()
		err = c.Release(cctx)
		t2 := time.Now()
		cancel()
		ph := phase.Load()
		if err != nil {
			w.fail(ph, "release:"+d.ErrorKind(err), err)
			continue
		}
		if ph == phaseMeasure {
			w.mu.Lock()
			w.acquire.record(t1.Sub(t0))
			w.release.record(t2.Sub(t1))
			w.pairs++
			if tr != nil {
				for i, s := range tr.Stages {
					if s >= 0 {
						w.stages[i].record(s)
					}
				}
				for i, n := range tr.Counts {
					w.counts[i] += n
				}
			}
			w.mu.Unlock()
			done.Add(1)
		}
	}
}

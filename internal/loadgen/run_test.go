package loadgen

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memLocks is a lock table in memory: a driver for testing the loop
// itself. Acquire waits for a busy key until the context ends; it records
// whether two callers ever held one key at once.
type memLocks struct {
	mu      sync.Mutex
	held    map[string]bool
	freed   *sync.Cond
	overlap atomic.Bool
	failAt  atomic.Int64 // every failAt-th acquire fails with errFlaky (0: never)
	n       atomic.Int64
}

var errFlaky = errors.New("flaky")

type memCaller struct {
	m   *memLocks
	key string
}

func (c *memCaller) Acquire(ctx context.Context, tr *Trace) error {
	if f := c.m.failAt.Load(); f > 0 && c.m.n.Add(1)%f == 0 {
		return errFlaky
	}
	stop := context.AfterFunc(ctx, func() { c.m.mu.Lock(); c.m.freed.Broadcast(); c.m.mu.Unlock() })
	defer stop()
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for c.m.held[c.key] {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.m.freed.Wait()
	}
	c.m.held[c.key] = true
	if tr != nil {
		tr.Stages[0] = 3 * time.Microsecond
		tr.Counts[0] += 2
	}
	return nil
}

func (c *memCaller) Release(context.Context) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if !c.m.held[c.key] {
		c.m.overlap.Store(true)
	}
	delete(c.m.held, c.key)
	c.m.freed.Broadcast()
	return nil
}

func newMemDriver() (*memLocks, Driver) {
	m := &memLocks{held: map[string]bool{}}
	m.freed = sync.NewCond(&m.mu)
	return m, Driver{
		Name:      "memory",
		NewCaller: func(_ context.Context, _ int, key string) (Caller, error) { return &memCaller{m: m, key: key}, nil },
		ErrorKind: func(err error) string {
			if errors.Is(err, errFlaky) {
				return "flaky"
			}
			return "other"
		},
	}
}

// Run counts every pair of the window once, in the histograms, the
// timeline and the trace; errors are counted by kind and do not stop the
// loop; shared keys are taken one caller at a time; the CPU figures name
// the processes asked for and the tool itself. (No timing is asserted.)
func TestRunCountsPairsErrorsAndTrace(t *testing.T) {
	m, d := newMemDriver()
	m.failAt.Store(7)
	cfg := DefaultConfig()
	cfg.Name, cfg.Callers, cfg.Keys, cfg.Wait = "mem", 4, 2, time.Second
	cfg.Duration, cfg.Warmup = 1*time.Second, 0
	cfg.Stages, cfg.Counts = []string{"inside"}, []string{"requests"}
	procs, err := ParsePIDs("me=" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Procs = procs
	res, err := Run(context.Background(), cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	var timeline uint64
	for _, n := range res.Timeline {
		timeline += n
	}
	switch {
	case res.Pairs == 0 || res.Acquire.Count != res.Pairs || res.Release.Count != res.Pairs:
		t.Fatalf("%d pairs, %d acquires, %d releases", res.Pairs, res.Acquire.Count, res.Release.Count)
	case timeline > res.Pairs:
		t.Errorf("timeline counts %d pairs, the window %d", timeline, res.Pairs)
	case res.Errors["acquire:flaky"] == 0 || len(res.Errors) != 1:
		t.Errorf("errors %v, want only acquire:flaky", res.Errors)
	case res.Driver != "memory" || res.Keys != 2 || len(res.AcquireCurve) != len(CurvePercentiles):
		t.Errorf("result %+v", res)
	case m.overlap.Load():
		t.Error("a shared key was released by a caller that did not hold it")
	}
	st, ok := res.Trace.Stage("inside")
	if !ok || st.Count != res.Pairs || st.P50 != ms(3*time.Microsecond) {
		t.Errorf("stage %+v (found %v), want %d samples of 3 µs", st, ok, res.Pairs)
	}
	if got := res.Trace.Counts["requests"]; got != 2*res.Pairs {
		t.Errorf("requests count %d, want %d", got, 2*res.Pairs)
	}
	if len(res.CPU) != 2 || res.CPU[0].Name != "me" || !res.CPU[1].Client || res.CPU[1].Name != "lockbench" {
		t.Errorf("cpu %+v", res.CPU)
	}
}

// Bad configs are refused with the field named, before any caller is made.
func TestRunRefusesBadConfig(t *testing.T) {
	_, d := newMemDriver()
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Callers = 0 },
		func(c *Config) { c.Keys = -1 },
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.Wait = -time.Second },
		func(c *Config) { c.Counts = []string{"x"} },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if _, err := Run(context.Background(), cfg, d); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("config %+v: error %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if _, err := ParsePIDs("n1"); !errors.Is(err, ErrInvalidPIDs) {
		t.Errorf("ParsePIDs(n1): %v", err)
	}
}

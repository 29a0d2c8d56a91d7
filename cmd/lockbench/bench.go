package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/internal/loadgen"
)

// The result types are loadgen's: lockbench's --json and the reports read
// the same records as every other driver's.
type (
	Result     = loadgen.Result
	Summary    = loadgen.Summary
	CurvePoint = loadgen.CurvePoint
	ProcCPU    = loadgen.ProcCPU
)

func runCmd(args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	cfg := loadgen.DefaultConfig()
	fs := flag.NewFlagSet("lockbench run", flag.ContinueOnError)
	cf.register(fs)
	fs.StringVar(&cfg.Name, "name", "", "name of this workload in the results (default: derived from the flags)")
	fs.StringVar(&cfg.Target, "target", "", "the target this workload is measured against, copied into the results")
	driver := fs.String("driver", "raftlock", "name of this service and client in the results (make compare groups runs by it)")
	fs.IntVar(&cfg.Callers, "callers", cfg.Callers, "concurrent callers (C)")
	fs.IntVar(&cfg.Keys, "keys", 0, "shared keys (K); 0: every caller has a key of its own")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to measure")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "how long to run before measuring")
	fs.DurationVar(&cfg.Expire, "expire", cfg.Expire, "time to live of each lock (0: never expires)")
	wait := fs.String("wait", "auto", "wait timeout of each acquire: a duration, or auto (0 with own keys, 5s with shared keys)")
	prefix := fs.String("prefix", "", "key prefix (default: lockbench/<random>/)")
	quiet := fs.Bool("quiet", false, "no progress line")
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout")
	trace := fs.Bool("trace", false, "time the client-side stages of every acquire (httptrace) and count connections; see trace.go")
	cpuProfile := fs.String("cpuprofile", "", "write lockbench's own CPU profile of the measured run to this file")
	pids := fs.String("pids", "", "report the CPU time of these processes per pair: name=pid,... (Linux /proc; name them by node id to mark the leader)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	var err error
	if cfg.Procs, err = loadgen.ParsePIDs(*pids); err != nil {
		return usagef("--pids: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *wait == "auto" {
		if cfg.Keys > 0 {
			cfg.Wait = 5 * time.Second
		}
	} else {
		d, err := time.ParseDuration(*wait)
		if err != nil || d < 0 {
			return usagef("--wait %q: want a non-negative duration or auto", *wait)
		}
		cfg.Wait = d
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	cfg.Prefix = *prefix
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("lockbench/%d/", time.Now().UnixNano())
	}
	if cfg.Name == "" {
		cfg.Name = describe(cfg.Callers, cfg.Keys)
	}
	if !*quiet {
		cfg.Progress = stderr
	}

	var tr *tracer
	if *trace {
		tr = newTracer()
		cfg.Stages, cfg.Counts = traceStages, traceCounts
	}
	cl, err := cf.newClient(tr)
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
	d := raftlockDriver(cl, cfg, *driver, tr)
	res, err := loadgen.Run(context.Background(), cfg, d)
	if err != nil {
		return err
	}
	res.Endpoints, res.Protocol = cf.endpointList(), cf.protocolName()
	res.Recipe = recipe(cf, cfg)
	if tr != nil {
		res.Trace.Counts[traceConnsUsed] = tr.connections()
	}
	if st, err := cl.Status(context.Background()); err == nil {
		res.Leader = st.LeaderID
		for i := range res.CPU {
			if res.CPU[i].Name == st.LeaderID {
				res.CPU[i].Name += " (leader)"
			}
		}
	}
	if *asJSON {
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

// raftlockCaller is one caller of the loop through the Go client: Acquire
// with its own owner id, then Lock.Release (which names the fencing token).
type raftlockCaller struct {
	cl     *client.Client
	keys   []string
	opts   []client.LockOption
	tracer *tracer // nil: no trace
	held   *client.Lock
}

func raftlockDriver(cl *client.Client, cfg loadgen.Config, name string, tr *tracer) loadgen.Driver {
	return loadgen.Driver{
		Name: name,
		NewCaller: func(_ context.Context, i int, key string) (loadgen.Caller, error) {
			return &raftlockCaller{cl: cl, keys: []string{key}, tracer: tr, opts: []client.LockOption{
				client.WithOwner(fmt.Sprintf("lockbench-%d", i)), client.WithExpire(cfg.Expire), client.WithWait(cfg.Wait),
			}}, nil
		},
		ErrorKind: errorKind,
		Refused: func(err error) bool {
			return errors.Is(err, client.ErrLockHeld) || errors.Is(err, client.ErrWaitTimeout)
		},
	}
}

func (c *raftlockCaller) Acquire(ctx context.Context, tr *loadgen.Trace) error {
	if tr == nil || c.tracer == nil {
		l, err := c.cl.Acquire(ctx, c.keys, c.opts...)
		c.held = l
		return err
	}
	ctx, call := c.tracer.start(ctx)
	l, err := c.cl.Acquire(ctx, c.keys, c.opts...)
	call.finish(tr)
	c.held = l
	return err
}

func (c *raftlockCaller) Release(ctx context.Context) error { return c.held.Release(ctx) }

// recipe says what one caller does, for the reports.
func recipe(cf clientFlags, cfg loadgen.Config) string {
	wait := "wait 0 (fail at once if busy)"
	if cfg.Wait > 0 {
		wait = "wait up to " + cfg.Wait.String()
	}
	return fmt.Sprintf("raftlock Go client (package client), %s, one client shared by all callers (endpoints: all nodes; "+
		"it finds the leader from the first answer); per pair: Acquire([key], WithOwner(\"lockbench-<i>\"), WithExpire(%s), %s), "+
		"then Lock.Release (names the fencing token)", cf.protocolName(), cfg.Expire, wait)
}

// describe names a workload: "16 callers, own keys", "16 callers, 1 shared key".
func describe(callers, keys int) string {
	c := plural(callers, "caller")
	switch {
	case keys == 0 && callers == 1:
		return c + ", own key"
	case keys == 0:
		return c + ", own keys"
	}
	return c + ", " + plural(keys, "shared key")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
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
func fmtCPU(cs []ProcCPU) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %.0f µs", c.Name, c.UsPerPair)
	}
	return strings.Join(parts, ", ")
}

// Command etcdbench is the etcd side of `make compare`: the same acquire ->
// release loop as lockbench run (package internal/loadgen drives both and
// measures both the same way), through etcd's own lock recipe.
//
//	etcdbench [flags]     C callers loop Mutex.Lock -> Mutex.Unlock; prints pairs/s and latency (--json: one Result)
//
// The recipe, exactly as run: one clientv3.Client for the process, shared
// by every caller, given every --endpoints (the client spreads calls over
// them round robin; members forward writes to their leader). Before the
// clock starts, each caller makes one concurrency.NewSession(client,
// concurrency.WithTTL(--ttl)): a lease of --ttl seconds that the session
// keeps alive (a keep-alive about every ttl/3 on the client's shared
// keep-alive stream) for the whole run. Each pair then is
// m := concurrency.NewMutex(session, key); m.Lock(ctx) with ctx bounded by
// --wait (or m.TryLock(ctx) when the wait is 0, which fails at once with
// concurrency.ErrLocked if the key is busy); m.Unlock(ctx). Uncontended,
// Lock is one Txn (put the caller's key under the lease, read the owner)
// and Unlock one Delete: two writes per pair, like raftlock's Acquire and
// Release. Contended, Lock waits for the deletion of the keys created
// before its own (Get and Watch) and reads its key once more.
//
// This is a module of its own (bench/etcd/go.mod) so that etcd's client
// stays out of raftlock's go.mod.
//
// Exit status: 0 on success, 1 when the run failed (no pair completed, or
// etcd could not be reached), 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"

	"github.com/raftlock/raftlock/internal/loadgen"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// errWaitTimeout is a Lock whose wait (--wait) ran out.
var errWaitTimeout = errors.New("wait timed out")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

func run(args []string, stdout, stderr io.Writer) int {
	err := runCmd(args, stdout, stderr)
	var ue *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "etcdbench: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "etcdbench: %v\n", err)
		return exitError
	}
	return exitOK
}

func runCmd(args []string, stdout, stderr io.Writer) error {
	cfg := loadgen.DefaultConfig()
	cfg.ClientName = "etcdbench"
	fs := flag.NewFlagSet("etcdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated host:port (or http://host:port) of etcd members")
	fs.StringVar(&cfg.Name, "name", "", "name of this workload in the results (default: derived from the flags)")
	fs.StringVar(&cfg.Target, "target", "", "copied into the results")
	driver := fs.String("driver", "etcd", "name of this service and client in the results")
	fs.IntVar(&cfg.Callers, "callers", cfg.Callers, "concurrent callers (C), one session each")
	fs.IntVar(&cfg.Keys, "keys", 0, "shared keys (K); 0: every caller has a key of its own")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to measure")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "how long to run before measuring")
	ttl := fs.Int("ttl", 60, "TTL of each caller's session (its lease), in seconds")
	wait := fs.String("wait", "auto", "bound on each Lock: a duration (0: TryLock), or auto (0 with own keys, 5s with shared keys)")
	prefix := fs.String("prefix", "", "key prefix (default: /lockbench/<random>/)")
	quiet := fs.Bool("quiet", false, "no progress line")
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout")
	pids := fs.String("pids", "", "report the CPU time of these processes per pair: name=pid,... (name them by member name to mark the leader)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.Procs, err = loadgen.ParsePIDs(*pids); err != nil {
		return usagef("--pids: %v", err)
	}
	if *ttl < 1 {
		return usagef("--ttl must be at least 1 (seconds)")
	}
	cfg.Expire = time.Duration(*ttl) * time.Second
	if *wait == "auto" {
		if cfg.Keys > 0 {
			cfg.Wait = 5 * time.Second
		}
	} else if cfg.Wait, err = time.ParseDuration(*wait); err != nil || cfg.Wait < 0 {
		return usagef("--wait %q: want a non-negative duration or auto", *wait)
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	cfg.Prefix = *prefix
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("/lockbench/%d/", time.Now().UnixNano())
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("%d callers", cfg.Callers)
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	var eps []string
	for _, e := range strings.Split(*endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return usagef("--endpoints: no endpoint given")
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	version, err := serverVersion(cli, eps)
	if err != nil {
		return err
	}
	d := loadgen.Driver{
		Name: *driver,
		NewCaller: func(ctx context.Context, _ int, key string) (loadgen.Caller, error) {
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(*ttl), concurrency.WithContext(ctx))
			if err != nil {
				return nil, fmt.Errorf("session: %w", err)
			}
			return &caller{s: s, key: key, wait: cfg.Wait}, nil
		},
		ErrorKind: errorKind,
		Refused: func(err error) bool {
			return errors.Is(err, concurrency.ErrLocked) || errors.Is(err, errWaitTimeout)
		},
	}
	res, err := loadgen.Run(context.Background(), cfg, d)
	if err != nil {
		return err
	}
	res.Endpoints, res.Protocol, res.ServerVersion = eps, "gRPC (etcd clientv3)", version
	res.Recipe = recipe(cfg, *ttl, eps)
	markLeader(cli, eps, res)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "workload   %s (%d callers, etcd %s)\npairs/s    %.0f (%d pairs)\nacquire    p50 %.3f ms  p99 %.3f ms  max %.3f ms\nrelease    p50 %.3f ms  p99 %.3f ms\nerrors     %v\n",
			res.Name, res.Callers, res.ServerVersion, res.PairsPerSec, res.Pairs, res.Acquire.P50, res.Acquire.P99, res.Acquire.Max,
			res.Release.P50, res.Release.P99, res.Errors)
	}
	if res.Pairs == 0 {
		return errors.New("no lock -> unlock pair completed")
	}
	return nil
}

// caller is one caller: its session, and the mutex of the pair under way.
type caller struct {
	s    *concurrency.Session
	key  string
	wait time.Duration
	m    *concurrency.Mutex
}

func (c *caller) Acquire(ctx context.Context, _ *loadgen.Trace) error {
	c.m = concurrency.NewMutex(c.s, c.key)
	if c.wait == 0 {
		return c.m.TryLock(ctx)
	}
	lctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	err := c.m.Lock(lctx)
	if err != nil && errors.Is(lctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%w: %w", errWaitTimeout, err)
	}
	return err
}

func (c *caller) Release(ctx context.Context) error { return c.m.Unlock(ctx) }

// Close ends the session (revokes its lease).
func (c *caller) Close() error { return c.s.Close() }

// errorKind names an error for the counts: the recipe's own errors, then
// the gRPC code.
func errorKind(err error) string {
	switch {
	case errors.Is(err, concurrency.ErrLocked):
		return "lock_held"
	case errors.Is(err, errWaitTimeout):
		return "wait_timeout"
	case errors.Is(err, concurrency.ErrSessionExpired):
		return "session_expired"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	if s, ok := status.FromError(err); ok {
		return strings.ReplaceAll(strings.ToLower(s.Code().String()), " ", "_")
	}
	return "other"
}

// serverVersion asks every endpoint for its status: each must answer (the
// cluster is up) and name one version.
func serverVersion(cli *clientv3.Client, eps []string) (string, error) {
	var versions []string
	for _, ep := range eps {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err != nil {
			return "", fmt.Errorf("status of %s: %w", ep, err)
		}
		if len(versions) == 0 || versions[len(versions)-1] != st.Version {
			versions = append(versions, st.Version)
		}
	}
	return strings.Join(versions, ", "), nil
}

// markLeader marks the leader's CPU figure, matching process names to
// member names.
func markLeader(cli *clientv3.Client, eps []string, res *loadgen.Result) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, eps[0])
	if err != nil {
		return
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return
	}
	for _, m := range ml.Members {
		if m.ID != st.Leader {
			continue
		}
		res.Leader = m.Name
		for i := range res.CPU {
			if res.CPU[i].Name == m.Name {
				res.CPU[i].Name += " (leader)"
			}
		}
	}
}

// recipe says what one caller does, for the reports.
func recipe(cfg loadgen.Config, ttl int, eps []string) string {
	lock := "m.TryLock(ctx) (fails at once if busy)"
	if cfg.Wait > 0 {
		lock = fmt.Sprintf("m.Lock(ctx) with ctx bounded by %s", cfg.Wait)
	}
	spread := fmt.Sprintf("endpoints: %d members, calls spread over them round robin", len(eps))
	if len(eps) == 1 {
		spread = "endpoint: " + eps[0] + " only"
	}
	return fmt.Sprintf("etcd clientv3 %s (go.etcd.io/etcd/client/v3/concurrency), one clientv3.Client shared by all callers "+
		"(%s); per caller one concurrency.NewSession(client, concurrency.WithTTL(%d)) made "+
		"before the run and kept alive by the session for the whole run (a keep-alive about every TTL/3); per pair: m := concurrency.NewMutex(session, key); %s; m.Unlock(ctx)",
		clientVersion(), spread, ttl, lock)
}

// clientVersion is the version of etcd's client module in this binary.
func clientVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "go.etcd.io/etcd/client/v3" {
				return m.Version
			}
		}
	}
	return "(unknown version)"
}

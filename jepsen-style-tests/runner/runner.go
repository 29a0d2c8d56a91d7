// Package runner runs one fault-injection run: it starts (or reaches) a
// cluster, runs the workload, injects faults on a schedule drawn from a
// seed, heals, checks recovery and convergence, resolves unknown outcomes
// from the replicas' journals, runs every checker and writes a results
// directory that explains the run and how to replay it.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/internal/testcluster"
	"github.com/raftlock/raftlock/jepsen-style-tests/checker"
	"github.com/raftlock/raftlock/jepsen-style-tests/history"
	"github.com/raftlock/raftlock/jepsen-style-tests/nemesis"
	"github.com/raftlock/raftlock/jepsen-style-tests/workload"
)

// Backend is the cluster a run attacks: real processes on loopback, or
// Docker containers.
type Backend interface {
	nemesis.Cluster
	// Name says which backend it is ("processes", "docker").
	Name() string
	// Endpoints are the client-facing addresses.
	Endpoints() []string
	// FaultAddrs are the per-node addresses network faults aim at.
	FaultAddrs() []string
	// Network returns the network fault injector, or an error saying why
	// there is none.
	Network(ctx context.Context) (nemesis.Network, error)
	// CanControlClocks reports whether nodes accept clock faults.
	CanControlClocks() bool
	// ClientAddrs are local addresses clients may bind to, so network
	// faults can cut them off (nil: clients cannot be cut off).
	ClientAddrs() []string
	// Hosts maps advertised node addresses to addresses clients can dial
	// (nil: the same).
	Hosts() map[string]string
	// States returns each node's /debug/state (id → state).
	States(ctx context.Context) (map[string]State, error)
	// Journals returns each node's journal (id → entries).
	Journals() (map[string][]history.Entry, error)
	// Logs lists the node log files to keep in the results.
	Logs() []string
	// Close stops the cluster.
	Close()
}

// State is a node's applied index and state hash.
type State = testcluster.State

// Options shape a run.
type Options struct {
	// Duration is how long faults are injected (the workload runs a little
	// longer: warm-up and final recovery).
	Duration time.Duration
	// Seed draws the schedule and the clients' choices.
	Seed uint64
	// Nemeses are the faults to use, in the order a "cycle" schedule
	// visits them.
	Nemeses []nemesis.Nemesis
	// Cycle visits the nemeses in order (every one at least once if the
	// duration allows); otherwise they are drawn at random from the seed.
	Cycle bool
	// FaultMin and FaultMax bound how long a fault lasts.
	FaultMin, FaultMax time.Duration
	// Quiet is the fault-free time after each heal.
	Quiet time.Duration
	// Workload configures the clients (endpoints are filled in).
	Workload workload.Config
	// RecoveryLimit is how long the cluster may take, after the final heal,
	// to have a leader and every key acquirable.
	RecoveryLimit time.Duration
	// OutDir receives the results.
	OutDir string
	// Replay is the command line that repeats this run (for the summary).
	Replay string
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// Report is the outcome of a run.
type Report struct {
	OK        bool
	Results   []checker.Result
	Ops       []history.Op
	Timeline  history.Timeline
	Skipped   map[string]string // nemesis → why it could not run
	Recovery  time.Duration
	Summary   string
	OutDir    string
	Unknown   int // operations whose outcome stayed unknown
	Resolved  int
	Converged bool
}

// Run performs one run against backend.
func Run(ctx context.Context, b Backend, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	rep := &Report{Skipped: map[string]string{}, OutDir: o.OutDir}

	// Which nemeses can run here.
	net, netErr := b.Network(ctx)
	var usable []nemesis.Nemesis
	for _, n := range o.Nemeses {
		switch {
		case (n.Needs == "network" || n.Needs == "shaping") && netErr != nil:
			rep.Skipped[n.Name] = netErr.Error()
		case n.Needs == "shaping" && !canShape(ctx, net):
			rep.Skipped[n.Name] = shapeError(ctx, net)
		case n.Needs == "clock" && !b.CanControlClocks():
			rep.Skipped[n.Name] = "the nodes do not accept clock control (--unsafe-clock-control)"
		case n.Name == "clients-cut" && len(b.ClientAddrs()) == 0:
			rep.Skipped[n.Name] = "clients have no addresses of their own on this backend"
		default:
			usable = append(usable, n)
		}
	}
	for name, why := range rep.Skipped {
		o.Log("nemesis %s cannot run here: %s", name, why)
	}
	env := &nemesis.Env{Cluster: b, Net: net, NodeAddrs: b.FaultAddrs(), ClientAddrs: b.ClientAddrs(), Rand: rng}

	start := time.Now()
	rec := workload.NewRecorder(start)
	wcfg := o.Workload
	wcfg.Endpoints, wcfg.ClientAddrs, wcfg.Hosts, wcfg.Seed = b.Endpoints(), b.ClientAddrs(), b.Hosts(), o.Seed
	wl := workload.New(wcfg, rec)
	cycle := 0
	keysFor := func(c int) []string {
		// Three plain keys, a semaphore of limit 2 and a read-write key
		// (workload.HasModes).
		return []string{fmt.Sprintf("k%03d-a", c), fmt.Sprintf("k%03d-b", c), fmt.Sprintf("k%03d-c", c),
			fmt.Sprintf("k%03d%s", c, workload.SemaphoreSuffix), fmt.Sprintf("k%03d%s", c, workload.ReadWriteSuffix)}
	}
	allKeys := keysFor(0)
	wl.SetKeys(allKeys)
	if _, err := waitLeader(ctx, b, 30*time.Second); err != nil {
		return nil, fmt.Errorf("no leader before the run: %w", err)
	}
	if err := wl.Start(ctx); err != nil {
		return nil, err
	}
	defer wl.Stop()

	// The schedule.
	pause := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := pause(o.Quiet); err != nil {
		return nil, err
	}
	end := time.Now().Add(o.Duration)
	failures := 0
	for i := 0; time.Now().Before(end) && len(usable) > 0; i++ {
		n := usable[rng.IntN(len(usable))]
		if o.Cycle {
			n = usable[i%len(usable)]
		}
		cycle++
		keys := keysFor(cycle)
		allKeys = append(allKeys, keys...)
		wl.SetKeys(keys)
		f := history.Fault{Name: n.Name, Start: rec.Now()}
		desc, heal, err := n.Start(ctx, env)
		if err != nil {
			o.Log("%s: could not start: %v", n.Name, err)
			f.Detail, f.End = "failed to start: "+err.Error(), rec.Now()
			rep.Timeline = append(rep.Timeline, f)
			if heal != nil {
				_ = heal(context.WithoutCancel(ctx))
			}
			if err := pause(o.Quiet); err != nil {
				return nil, err
			}
			// In a cycle every nemesis must run: try the same one again
			// (twice at most) after the quiet time.
			if o.Cycle && failures < 2 {
				failures++
				i--
			}
			continue
		}
		failures = 0
		f.Detail = desc
		hold := o.FaultMin + time.Duration(rng.Int64N(int64(o.FaultMax-o.FaultMin)+1))
		o.Log("%6.1fs %-28s %s (for %s)", time.Since(start).Seconds(), n.Name, desc, hold.Round(time.Millisecond))
		perr := pause(hold)
		if err := heal(context.WithoutCancel(ctx)); err != nil {
			o.Log("%s: heal: %v", n.Name, err)
			f.Detail += "; heal failed: " + err.Error()
		}
		f.End = rec.Now()
		rep.Timeline = append(rep.Timeline, f)
		if perr != nil {
			return nil, perr
		}
		if err := pause(o.Quiet); err != nil {
			return nil, err
		}
	}

	// Final heal: every node up, no network fault, true clocks.
	healAll(ctx, b, net, o.Log)
	healed := time.Now()
	leaderAfter, err := waitLeader(ctx, b, o.RecoveryLimit)
	if err != nil {
		o.Log("no leader after the final heal: %v", err)
		leaderAfter = o.RecoveryLimit + time.Nanosecond
	}
	keysAfter := acquireEvery(ctx, b, o, allKeys)
	rep.Recovery = time.Since(healed)
	o.Log("after the final heal: leader in %s, every key acquirable in %s", leaderAfter.Round(time.Millisecond), keysAfter.Round(time.Millisecond))
	wl.Stop()
	given, finalHolders := abandonedAtTheEnd(ctx, b, o, wl.Abandoned(), rep.Timeline)

	// Convergence of the replicas' state.
	// A node restarted late may wait out Raft's replication back-off before
	// it catches up, hence the generous limit.
	converged, convNote := waitConverged(ctx, b, 60*time.Second)
	rep.Converged = converged

	journals, jerr := b.Journals()
	b.Close()
	if jerr != nil {
		return nil, fmt.Errorf("journals: %w", jerr)
	}
	ops := rec.Ops()
	rep.Resolved, rep.Unknown = resolve(ops, journals)
	rep.Ops = ops

	lin := checker.LinearizableWith(checker.PlainOps(ops), o.OutDir, checker.LinearizableOptions{
		Timeout: time.Minute, Timeline: rep.Timeline, MaxClockDrift: nemesis.MaxClockSkew})
	results := []checker.Result{
		checker.WellFormed(ops),
		lin,
		checker.MutualExclusion(checker.PlainOps(ops)),
		checker.Fencing(ops, journals),
		checker.Modes(ops),
		checker.Durable(ops, journals),
		convergedResult(checker.Converged(journals), converged, convNote),
		checker.Recovery(leaderAfter, keysAfter, o.RecoveryLimit),
		checker.Abandoned(given, finalHolders),
	}
	rep.Results = results
	rep.OK = true
	for _, r := range results {
		rep.OK = rep.OK && r.OK
	}
	rep.Summary = summary(rep, o, b, start)
	if err := writeResults(rep, o); err != nil {
		return rep, err
	}
	return rep, nil
}

func canShape(ctx context.Context, n nemesis.Network) bool { return shapeError(ctx, n) == "" }

func shapeError(ctx context.Context, n nemesis.Network) string {
	if s, ok := n.(interface{ CanShape(context.Context) error }); ok {
		if err := s.CanShape(ctx); err != nil {
			return err.Error()
		}
		return ""
	}
	return "this network cannot shape links"
}

func waitLeader(ctx context.Context, b Backend, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if _, err := b.Leader(ctx); err == nil {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func healAll(ctx context.Context, b Backend, net nemesis.Network, logf func(string, ...any)) {
	ctx = context.WithoutCancel(ctx)
	if net != nil {
		if err := net.Heal(ctx); err != nil {
			logf("final heal: network: %v", err)
		}
	}
	for i := range b.Size() {
		if !b.Running(i) {
			if err := b.Restart(i); err != nil {
				logf("final heal: restart n%d: %v", i+1, err)
			}
			continue
		}
		_ = b.Resume(i)
		if b.CanControlClocks() {
			_ = b.SetClock(ctx, i, 0, 1)
		}
	}
}

// acquireEvery acquires and releases every key used in the run with a
// fresh client, waiting out leases left by clients that lost track of
// them, and returns how long it took (or more than the limit).
func acquireEvery(ctx context.Context, b Backend, o Options, keys []string) time.Duration {
	start := time.Now()
	limit := o.RecoveryLimit
	dial := workload.Dialer("", b.Hosts())
	hc := workload.HTTPClient(dial)
	if o.Workload.HTTPClient != nil {
		hc = o.Workload.HTTPClient(dial)
	}
	cl, err := client.New(b.Endpoints(), append([]client.Option{client.WithHTTPClient(hc)}, o.Workload.Options...)...)
	if err != nil {
		return limit + time.Nanosecond
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for _, k := range keys {
		opts := append([]client.LockOption{client.WithOwner("recovery-check"), client.WithExpire(time.Minute),
			client.WithWait(time.Until(start.Add(limit)))}, workload.RecoveryOptions(k)...)
		lk, err := cl.Acquire(ctx, []string{k}, opts...)
		if err != nil {
			o.Log("recovery: %s not acquirable: %v", k, err)
			return limit + time.Nanosecond
		}
		if err := lk.Release(ctx); err != nil {
			o.Log("recovery: release %s: %v", k, err)
			return limit + time.Nanosecond
		}
	}
	return time.Since(start)
}

// abandonedAtTheEnd reads who holds each key the abandoning clients used,
// once the faults have healed: it waits until no key is held by an owner
// that gave up, or RecoveryLimit passes (abandons a partition kept from the
// leader land once it heals), and returns what it read last.
func abandonedAtTheEnd(ctx context.Context, b Backend, o Options, list []workload.Abandoned, timeline []history.Fault) ([]checker.Given, map[string]string) {
	given := make([]checker.Given, len(list))
	gone := map[string]bool{}
	final := map[string]string{}
	for i, a := range list {
		given[i] = checker.Given{Key: a.Key, Owner: a.Owner, How: a.How, Fault: faultOn(timeline, a)}
		gone[a.Owner] = true
		final[a.Key] = ""
	}
	if len(list) == 0 {
		return given, final
	}
	dial := workload.Dialer("", b.Hosts())
	hc := workload.HTTPClient(dial)
	if o.Workload.HTTPClient != nil {
		hc = o.Workload.HTTPClient(dial)
	}
	cl, err := client.New(b.Endpoints(), append([]client.Option{client.WithHTTPClient(hc)}, o.Workload.Options...)...)
	if err != nil {
		return given, map[string]string{}
	}
	defer cl.Close()
	deadline := time.Now().Add(o.RecoveryLimit)
	for {
		held := 0
		for k := range final {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			l, err := cl.Get(rctx, k)
			cancel()
			switch {
			case err != nil:
				o.Log("abandoned: reading %s: %v", k, err)
			case l == nil:
				final[k] = ""
			default:
				final[k] = l.Owner
				if gone[l.Owner] {
					held++
				}
			}
		}
		if held == 0 || time.Now().After(deadline) {
			o.Log("abandoned: %d acquires given up on %d keys; %d keys held by a caller that gave up", len(list), len(final), held)
			return given, final
		}
		select {
		case <-ctx.Done():
			return given, final
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// abandonWaitLimit is how long an abandoned acquire could wait (its
// wait_timeout in the workload).
const abandonWaitLimit = 30 * time.Second

// faultOn says whether a fault kept the cluster from telling that the
// caller of a was gone (checker.Given.Fault), while its waiter could live
// (from the call to its wait timeout; the abandon lands within
// milliseconds unless the node cannot reach a leader, and no partition of
// the suite lasts that long): a kill or a pause of the node that took the
// call, or a cut of the client's own address off the nodes.
func faultOn(timeline []history.Fault, a workload.Abandoned) string {
	node := fmt.Sprintf("n%d", a.Node+1)
	end := max(a.Until, a.At) + int64(abandonWaitLimit)
	for _, f := range timeline {
		names := func() bool {
			return strings.Contains(f.Detail, "every") || slices.Contains(strings.Fields(f.Detail), node)
		}
		switch {
		case f.Until() < a.At || f.Start > end:
		case strings.HasPrefix(f.Name, "kill") && names(): // down while the waiter lived: its forward may be retried after the caller left
			return "killed"
		case strings.HasPrefix(f.Name, "pause") && names():
			return "paused"
		case f.Name == "clients-cut" && a.From != "" && slices.Contains(strings.Split(strings.Fields(f.Detail + " x x")[2], ","), a.From):
			return "cut off"
		}
	}
	return ""
}

// waitConverged waits until every node of the backend reports the same
// applied index (ticks keep coming, so it samples again), then compares
// their state hashes (testcluster.WaitSame).
func waitConverged(ctx context.Context, b Backend, limit time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	summary, err := testcluster.WaitSame(ctx, func(ctx context.Context) (map[string]State, error) {
		states, err := b.States(ctx)
		if err == nil && len(states) != b.Size() {
			err = fmt.Errorf("%d of %d nodes answered", len(states), b.Size())
		}
		return states, err
	})
	if err != nil {
		return false, fmt.Sprintf("within %s: %v", limit, err)
	}
	return true, summary
}

func convergedResult(r checker.Result, hashesAgree bool, note string) checker.Result {
	r.Problems = append(r.Problems, note)
	if !hashesAgree {
		r.OK = false
	}
	return r
}

func summary(rep *Report, o Options, b Backend, start time.Time) string {
	var s strings.Builder
	fmt.Fprintf(&s, "raftlock fault run on %s nodes (%s backend), seed %d, %s of faults\n\n", fmt.Sprint(b.Size()), b.Name(), o.Seed, o.Duration)
	counts := map[string]map[history.Outcome]int{}
	for _, op := range rep.Ops {
		if counts[string(op.Kind)] == nil {
			counts[string(op.Kind)] = map[history.Outcome]int{}
		}
		out := op.Outcome
		if op.Resolved {
			out = "resolved-" + op.Outcome
		}
		counts[string(op.Kind)][out]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(&s, "%-8s %7s %7s %9s %12s %12s\n", "op", "ok", "fail", "unknown", "resolved-ok", "resolved-fail")
	for _, k := range kinds {
		c := counts[k]
		fmt.Fprintf(&s, "%-8s %7d %7d %9d %12d %12d\n", k, c[history.OutcomeOK], c[history.OutcomeFail], c[history.OutcomeUnknown],
			c["resolved-ok"], c["resolved-fail"])
	}
	fmt.Fprintf(&s, "\n%d operations, %d outcomes resolved from the replicas' logs, %d left unknown\n\n", len(rep.Ops), rep.Resolved, rep.Unknown)

	fmt.Fprintf(&s, "faults (availability = acquires answered ok or busy/timed out, of all acquires started during the fault):\n")
	for _, f := range rep.Timeline {
		total, answered := 0, 0
		for _, op := range rep.Ops {
			if op.Kind != history.KindAcquire || op.Invoke < f.Start || op.Invoke > f.Until() {
				continue
			}
			total++
			if !op.Resolved && op.Outcome != history.OutcomeUnknown {
				answered++
			}
		}
		avail := "n/a"
		if total > 0 {
			avail = fmt.Sprintf("%3.0f%% of %d", 100*float64(answered)/float64(total), total)
		}
		fmt.Fprintf(&s, "  %-28s %8.1fs-%7.1fs  %-14s %s\n", f.Name, float64(f.Start)/1e9, float64(f.Until())/1e9, avail, f.Detail)
	}
	if len(rep.Skipped) > 0 {
		names := make([]string, 0, len(rep.Skipped))
		for n := range rep.Skipped {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintf(&s, "\nnemeses that could not run here:\n")
		for _, n := range names {
			fmt.Fprintf(&s, "  %-28s %s\n", n, rep.Skipped[n])
		}
	}
	fmt.Fprintf(&s, "\ntime to recover after the final heal: %s\n\n", rep.Recovery.Round(time.Millisecond))
	s.WriteString(checker.Summary(rep.Results))
	verdict := "OK: every invariant held"
	if !rep.OK {
		verdict = "VIOLATIONS FOUND"
	}
	fmt.Fprintf(&s, "\n%s. Results in %s\nreplay: %s\n", verdict, o.OutDir, o.Replay)
	return s.String()
}

func writeResults(rep *Report, o Options) error {
	var errs []error
	errs = append(errs, history.SaveOps(filepath.Join(o.OutDir, "history.jsonl"), rep.Ops))
	errs = append(errs, history.SaveTimeline(filepath.Join(o.OutDir, "timeline.json"), rep.Timeline))
	b, _ := json.MarshalIndent(rep.Results, "", "  ")
	errs = append(errs, os.WriteFile(filepath.Join(o.OutDir, "results.json"), b, 0o644))
	errs = append(errs, os.WriteFile(filepath.Join(o.OutDir, "summary.txt"), []byte(rep.Summary), 0o644))
	return errors.Join(errs...)
}

//go:build chaos

// The fault-injection suite. It builds the node binary, starts a cluster of
// real processes (or reaches the compose cluster), and attacks it while the
// workload runs. Run it with make chaos, or:
//
//	go test -tags chaos -run TestChaos -v -timeout 60m ./jepsen-style-tests/
//
// Environment: CHAOS_DURATION (default 10m), CHAOS_SEED (default: from the
// clock, printed), CHAOS_NEMESES (comma-separated, default all),
// CHAOS_PROFILE (full: random schedule; ci: every nemesis in turn),
// CHAOS_NODES (3 or 5), CHAOS_NODE_ARGS (extra flags for every node, e.g.
// "--log-store bolt"), CHAOS_OUT (results directory), CHAOS_TLS (1: the
// default, the nodes speak TLS only and the clients present certificates;
// 0: plain text).
package chaos_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/certs"
	"github.com/raftlock/raftlock/internal/testcluster"
	"github.com/raftlock/raftlock/jepsen-style-tests/nemesis"
	"github.com/raftlock/raftlock/jepsen-style-tests/runner"
	"github.com/raftlock/raftlock/jepsen-style-tests/workload"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// settings reads the run's settings from the environment.
func settings(t *testing.T) (time.Duration, uint64, string, string, int) {
	t.Helper()
	profile := env("CHAOS_PROFILE", "full")
	defDur := "10m"
	if profile == "ci" {
		defDur = "5m"
	}
	dur, err := time.ParseDuration(env("CHAOS_DURATION", defDur))
	if err != nil {
		t.Fatalf("CHAOS_DURATION: %v", err)
	}
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
	}
	nodes, err := strconv.Atoi(env("CHAOS_NODES", "3"))
	if err != nil || (nodes != 3 && nodes != 5) {
		t.Fatalf("CHAOS_NODES must be 3 or 5")
	}
	return dur, seed, profile, env("CHAOS_NEMESES", "all"), nodes
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

func outDir(t *testing.T, name string, seed uint64) string {
	t.Helper()
	if d := os.Getenv("CHAOS_OUT"); d != "" {
		return d
	}
	return filepath.Join(moduleRoot(t), "results", fmt.Sprintf("%s-%s-seed%d", name, time.Now().Format("20060102-150405"), seed))
}

func standardOptions(dur time.Duration, seed uint64, profile string, nems []nemesis.Nemesis, out, replay string, logf func(string, ...any)) runner.Options {
	return runner.Options{
		Duration: dur, Seed: seed, Nemeses: nems, Cycle: profile == "ci",
		FaultMin: 4 * time.Second, FaultMax: 8 * time.Second, Quiet: 3 * time.Second,
		Workload:      workload.Config{Clients: 10, Expire: 3 * time.Second, Wait: time.Second},
		RecoveryLimit: 30 * time.Second, OutDir: out, Replay: replay, Log: logf,
	}
}

// TestChaos runs the suite against real node processes and fails if any
// invariant of DESIGN.md section 8 is violated.
func TestChaos(t *testing.T) {
	dur, seed, profile, names, nodes := settings(t)
	nems, err := nemesis.Select(names)
	if err != nil {
		t.Fatal(err)
	}
	out := outDir(t, "chaos", seed)
	extra := strings.Fields(os.Getenv("CHAOS_NODE_ARGS"))
	replay := fmt.Sprintf("CHAOS_PROFILE=%s CHAOS_DURATION=%s CHAOS_SEED=%d CHAOS_NEMESES=%s CHAOS_NODES=%d make chaos",
		profile, dur, seed, names, nodes)
	if len(extra) > 0 {
		replay = fmt.Sprintf("CHAOS_NODE_ARGS=%q %s", strings.Join(extra, " "), replay)
	}
	t.Logf("results in %s; replay with: %s", out, replay)
	rep := run(t, out, nodes, extra, standardOptions(dur, seed, profile, nems, out, replay, t.Logf))
	t.Log("\n" + rep.Summary)
	if profile == "ci" && len(rep.Skipped) == 0 {
		ran := map[string]bool{}
		for _, f := range rep.Timeline {
			ran[f.Name] = ran[f.Name] || !strings.HasPrefix(f.Detail, "failed to start")
		}
		for _, n := range nems {
			if !ran[n.Name] {
				t.Errorf("the ci profile did not run nemesis %s (duration too short?)", n.Name)
			}
		}
	}
	if !rep.OK {
		t.Fatalf("invariants violated; see %s", out)
	}
}

// TestSuiteCatchesBrokenBuild runs short fault runs against deliberately
// broken nodes and requires the suite to report them: a suite that passes
// a broken build proves nothing.
//   - --unsafe-bug fencing: every Acquire answers fencing token 1;
//   - --unsafe-bug wallclock: the leader measures elapsed cluster time on
//     the wall clock, so a wall-clock jump expires leases early.
func TestSuiteCatchesBrokenBuild(t *testing.T) {
	for _, tc := range []struct {
		bug, nemeses string
		catchers     []string // at least one of these checkers must fail
	}{
		{"fencing", "kill-leader,pause-follower", []string{"fencing"}},
		{"wallclock", "clock-jump", []string{"mutual-exclusion", "linearizable"}},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			seed := uint64(1)
			nems, err := nemesis.Select(tc.nemeses)
			if err != nil {
				t.Fatal(err)
			}
			out := outDir(t, "broken-"+tc.bug, seed)
			opts := standardOptions(20*time.Second, seed, "ci", nems, out,
				"go test -tags chaos -run TestSuiteCatchesBrokenBuild/"+tc.bug+" ./jepsen-style-tests/", t.Logf)
			rep := run(t, out, 3, []string{"--unsafe-bug", tc.bug}, opts)
			t.Log("\n" + rep.Summary)
			if rep.OK {
				t.Fatalf("the suite passed a node broken with --unsafe-bug %s", tc.bug)
			}
			caught := false
			for _, r := range rep.Results {
				for _, c := range tc.catchers {
					caught = caught || (r.Name == c && !r.OK)
				}
			}
			if !caught {
				t.Fatalf("none of %v caught --unsafe-bug %s", tc.catchers, tc.bug)
			}
		})
	}
}

func run(t *testing.T, out string, nodes int, extra []string, opts runner.Options) *runner.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opts.Duration+10*time.Minute)
	defer cancel()
	bin, err := testcluster.Build(ctx, moduleRoot(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pcfg := runner.ProcessConfig{Binary: bin, Nodes: nodes, Dir: filepath.Join(out, "nodes"), ExtraArgs: extra}
	if env("CHAOS_TLS", "1") == "1" {
		pcfg.TLSDir = filepath.Join(out, "certs")
		hosts := []string{"localhost"}
		for i := range nodes {
			hosts = append(hosts, fmt.Sprintf("127.0.0.%d", 11+i))
		}
		if err := certs.DevSet(pcfg.TLSDir, hosts, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		tc, err := testcluster.ClientTLS(pcfg.TLSDir)
		if err != nil {
			t.Fatal(err)
		}
		opts.Workload.HTTPClient = workload.TLSHTTPClient(tc)
		opts.Workload.Options = append(opts.Workload.Options, client.WithTLS(tc))
		t.Logf("TLS on: certificates in %s", pcfg.TLSDir)
	}
	b, err := runner.NewProcesses(pcfg, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, err := runner.Run(ctx, b, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

// TestChaosDocker runs the suite against the compose cluster of
// docker/compose.yaml (built and started under a project name of its
// own), with faults done the container way. It fails, saying why, when
// Docker is missing.
//
//	CHAOS_DURATION=2m make chaos-docker
func TestChaosDocker(t *testing.T) {
	dur, seed, profile, names, _ := settings(t)
	if os.Getenv("CHAOS_NEMESES") == "" {
		names = "kill-leader,pause-leader,partition-isolate-leader,partition-majority-minority,partition-one-way,kill-one,pause-follower,clock-jump"
	}
	nems, err := nemesis.Select(names)
	if err != nil {
		t.Fatal(err)
	}
	out := outDir(t, "chaos-docker", seed)
	replay := fmt.Sprintf("CHAOS_PROFILE=%s CHAOS_DURATION=%s CHAOS_SEED=%d CHAOS_NEMESES=%s make chaos-docker", profile, dur, seed, names)
	ctx, cancel := context.WithTimeout(context.Background(), dur+15*time.Minute)
	defer cancel()
	b, err := runner.NewDocker(ctx, runner.DockerConfig{ModuleRoot: moduleRoot(t), OutDir: out, Image: fmt.Sprintf("raftlock:chaos-%d", seed)})
	if err != nil {
		t.Fatalf("docker backend: %v", err)
	}
	defer b.Close()
	opts := standardOptions(dur, seed, profile, nems, out, replay, t.Logf)
	rep, err := runner.Run(ctx, b, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Log("\n" + rep.Summary)
	if !rep.OK {
		t.Fatalf("invariants violated; see %s", out)
	}
}

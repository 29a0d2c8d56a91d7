package main

// Rolling upgrades (issue 20): a cluster of the previous release's nodes is
// replaced one node at a time by this build, under load, on the same data
// directories.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlock/raftlock/internal/testcluster"
)

// previousRelease is the last commit before cluster versions existed: its
// nodes advertise nothing, which counts as version 1.
const previousRelease = "cf901c4"

// buildAt builds the node binary of commit rev of this repository (a git
// worktree) and returns its path. It fails the test when the commit is not
// in the clone: CI runs on a full clone of main. A revision is built once
// per test binary (TestMain removes the builds).
func buildAt(t *testing.T, rev string) string {
	t.Helper()
	oldBuilds.mu.Lock()
	defer oldBuilds.mu.Unlock()
	if bin, ok := oldBuilds.bins[rev]; ok {
		return bin
	}
	root, err := testcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if oldBuilds.dir == "" {
		if oldBuilds.dir, err = os.MkdirTemp("", "raftlock-old-builds-"); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(oldBuilds.dir, rev)
	tree := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", tree, rev).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add %s (the clone must have main's history): %v\n%s", rev, err, out)
	}
	defer func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", tree).Run() }()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := testcluster.Build(ctx, tree, dir)
	if err != nil {
		t.Fatalf("build %s: %v", rev, err)
	}
	oldBuilds.bins[rev] = bin
	return bin
}

// oldBuilds are the binaries buildAt made, by revision.
var oldBuilds = struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}{bins: map[string]string{}}

// step is one line of the upgrade's timeline, printed at the end.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	lines []string
}

func (tl *timeline) add(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, fmt.Sprintf("%6.1fs  ", time.Since(tl.start).Seconds())+fmt.Sprintf(format, args...))
}

// A real mixed-version cluster: three nodes of the previous release with a
// workload running are replaced one by one by this build (same data
// directories). After each step: no node crashed, no acknowledged lock is
// lost, a request that needs version 2 (a shared acquire) is refused with a
// message naming the members behind, and the cluster version moves to 2,
// and shared acquires work, only once the last node is new.
func TestRollingUpgradeFromThePreviousRelease(t *testing.T) {
	old := buildAt(t, previousRelease)
	tl := &timeline{start: time.Now()}
	defer func() { t.Logf("timeline:\n%s", strings.Join(tl.lines, "\n")) }()
	pc := newPCluster(t, "", false, testcluster.WithBinary(old))
	tl.add("3 nodes of %s running; leader %s", previousRelease, pc.c.ID(pc.waitLeader()))

	// Locks that must survive every step, with their tokens.
	held := map[string]string{}
	for k := range 20 {
		key := fmt.Sprintf("keep-%d", k)
		r := pc.post(pc.waitLeader(), "raftlock.v1.LockService/Acquire", fmt.Sprintf(`{"keys":[%q],"ownerId":"keeper","requestId":"keep-%d"}`, key, k))
		if r.status != 200 {
			t.Fatalf("acquire %s: %d %s", key, r.status, r.raw)
		}
		held[key], _ = r.body["fencingToken"].(string)
	}
	// A workload that runs throughout: acquire and release pairs through
	// every node; errors while a node restarts are allowed, lost answers
	// are not (checked through the held locks and the pairs' own outcomes).
	stop := make(chan struct{})
	var pairs, failures atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				key, rid := fmt.Sprintf("load-%d", w), fmt.Sprintf("load-%d-%d", w, k)
				r := pc.tryPost((w+k)%3, "raftlock.v1.LockService/Acquire", fmt.Sprintf(`{"keys":[%q],"ownerId":"w%d","expire":"10s","waitTimeout":"2s","requestId":%q}`, key, w, rid))
				if r.err != nil || r.status != 200 {
					failures.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				r = pc.tryPost((w+k+1)%3, "raftlock.v1.LockService/Release", fmt.Sprintf(`{"keys":[%q],"ownerId":"w%d","requestId":%q}`, key, w, rid+"-r"))
				if r.err != nil || r.status != 200 {
					failures.Add(1)
					continue
				}
				pairs.Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	shared := func(i int) reply {
		return pc.post(i, "raftlock.v1.LockService/Acquire", `{"keys":["report"],"ownerId":"reader","mode":"LOCK_MODE_SHARED","expire":"5s"}`)
	}
	checkHeld := func(when string) {
		t.Helper()
		for key, tok := range held {
			l := pc.lock(pc.waitLeader(), key)
			if l == nil || l["ownerId"] != "keeper" || l["fencingToken"] != tok {
				t.Fatalf("%s: %s is %v, want held by keeper with token %s", when, key, l, tok)
			}
		}
	}
	status := func(i int) (version float64, role string) {
		r := pc.post(i, "raftlock.v1.ClusterService/Status", "{}")
		version, _ = r.body["clusterVersion"].(float64)
		role, _ = r.body["role"].(string)
		return
	}
	for i := range 3 {
		if err := pc.c.Stop(i); err != nil {
			t.Fatalf("stop %s (old): %v", pc.c.ID(i), err)
		}
		pc.c.SetNode(i, testcluster.NodeOptions{Binary: testcluster.Binary(t)})
		if err := pc.c.Restart(i); err != nil {
			t.Fatal(err)
		}
		leader := pc.waitLeader()
		testcluster.WaitFor(t, 30*time.Second, "every node ready", func() bool {
			for j := range 3 {
				if r := pc.tryPost(j, "raftlock.v1.ClusterService/Status", "{}"); r.err != nil || r.body["ready"] != true {
					return false
				}
			}
			return true
		})
		tl.add("%s replaced by this build; leader %s; %d pairs so far, %d failed calls", pc.c.ID(i), pc.c.ID(leader), pairs.Load(), failures.Load())
		for j := range 3 {
			if !pc.c.Running(j) {
				t.Fatalf("after replacing %s, %s is not running:\n%s", pc.c.ID(i), pc.c.ID(j), pc.c.Log(j, 4096))
			}
		}
		checkHeld(fmt.Sprintf("after replacing %s", pc.c.ID(i)))
		if i < 2 {
			new := i // the node just replaced runs this build and can refuse clearly
			r := shared(new)
			if r.code() != "failed_precondition" || !strings.Contains(r.raw, "cluster version 2") || !strings.Contains(r.raw, "behind") {
				t.Fatalf("a shared acquire on %s with old nodes left: %d %s, want failed_precondition naming the version and the members behind", pc.c.ID(new), r.status, r.raw)
			}
			tl.add("shared acquire on %s refused: %s", pc.c.ID(new), r.body["message"])
			if v, _ := status(new); v != 1 {
				t.Fatalf("cluster version %v with old nodes left, want 1", v)
			}
		}
	}
	testcluster.WaitFor(t, 30*time.Second, "the cluster version to move to 2", func() bool {
		for j := range 3 {
			if v, _ := status(j); v != 2 {
				return false
			}
		}
		return true
	})
	tl.add("cluster version 2 on every node")
	if r := shared(pc.waitLeader()); r.status != 200 {
		t.Fatalf("a shared acquire after the upgrade: %d %s", r.status, r.raw)
	}
	tl.add("shared acquire granted")
	checkHeld("at the end")
	if pairs.Load() == 0 {
		t.Fatal("the workload made no progress")
	}
	tl.add("workload: %d pairs, %d failed calls (during restarts)", pairs.Load(), failures.Load())
	pc.c.EnsureSame()
}

// A node of the previous release can neither start on a data directory
// this build has written past version 1 (it stops at the first version 2
// entry, naming it) nor join a cluster at version 2 (the leader refuses it,
// naming both versions).
func TestOldNodeRefusedByNewCluster(t *testing.T) {
	old := buildAt(t, previousRelease)
	pc := startCluster(t, "") // this build; startCluster waits for version 2
	leader := pc.waitLeader()
	for k := range 5 { // entries written with attempts: version 2
		pc.post(leader, "raftlock.v1.LockService/Acquire", fmt.Sprintf(`{"keys":["v2-%d"],"ownerId":"o","requestId":"v2-%d"}`, k, k))
	}

	// Join: the old node asks to be added; the leader asks it its version.
	ports, err := testcluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	dir := t.TempDir()
	cmd := exec.Command(old, "--id", "n4", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--join", pc.addr(leader))
	logf, _ := os.Create(filepath.Join(dir, "node.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testcluster.WaitFor(t, 30*time.Second, "the old node's join to be refused naming both versions", func() bool {
		b, _ := os.ReadFile(logf.Name())
		return strings.Contains(string(b), "supports log versions up to 1, the cluster is at version 2")
	})
	st := pc.post(leader, "raftlock.v1.ClusterService/Status", "{}")
	if strings.Contains(st.raw, `"n4"`) {
		t.Fatalf("the old node was added: %s", st.raw)
	}

	// Start: the old binary on a node's data directory written by this build.
	f := pc.follower()
	if err := pc.c.Stop(f); err != nil {
		t.Fatal(err)
	}
	pc.c.SetNode(f, testcluster.NodeOptions{Binary: old})
	if err := pc.c.Restart(f); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 30*time.Second, "the old binary to stop on the new data directory", func() bool { return !pc.c.Running(f) })
	if log := pc.c.Log(f, 1<<20); !strings.Contains(log, "unsupported encoding version") {
		t.Fatalf("the old node stopped without saying why:\n%s", pc.c.Log(f, 4096))
	}
}

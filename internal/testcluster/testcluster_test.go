package testcluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// acquire takes key for owner through node i and returns the fencing token.
func acquire(t *testing.T, c *testcluster.Cluster, i int, key, owner string) uint64 {
	t.Helper()
	lc := raftlockv1connect.NewLockServiceClient(c.HTTPClient(), c.URL(i))
	resp, err := lc.Acquire(t.Context(), connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{key}, OwnerId: owner, RequestId: owner + "-" + key}))
	if err != nil {
		t.Fatalf("acquire %s through %s: %v", key, c.ID(i), err)
	}
	return resp.Msg.FencingToken
}

// The lifecycle a test relies on: an agreed leader; SIGKILL of the leader
// and a new one among the others; a restart on the same address and data
// with another binary (a wrapper script standing for an older build);
// SIGSTOP of a follower, which falls silent while the others still take
// writes, and SIGCONT; a graceful stop that exits 0; a wiped node that comes back
// empty and catches up; and every replica at one index with one hash at
// the end.
func TestLifecycle(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.Leader()
	tok := acquire(t, c, leader, "k1", "a")

	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(leader); !errors.Is(err, testcluster.ErrNotRunning) {
		t.Fatalf("second kill: %v, want ErrNotRunning", err)
	}
	if next := c.Leader(); next == leader || slices.Contains(c.RunningNodes(), leader) {
		t.Fatalf("leader %s after killing %s; running %v", c.ID(next), c.ID(leader), c.RunningNodes())
	}

	// The killed node comes back through a wrapper: the per-node binary.
	wrapper := filepath.Join(t.TempDir(), "node-wrapper")
	script := fmt.Sprintf("#!/bin/sh\necho wrapped-binary-started\nexec %q \"$@\"\n", c.Binary(leader))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c.SetNode(leader, testcluster.NodeOptions{Binary: wrapper})
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the restarted node to catch up", func() bool {
		st, err := c.Status(t.Context(), leader)
		return err == nil && st.Ready && st.Locks == 1
	})
	if !strings.Contains(c.Log(leader, 1<<20), "wrapped-binary-started") {
		t.Fatalf("the restart did not run the node's own binary %s", wrapper)
	}

	follower := c.Followers()[0]
	if err := c.Pause(follower); err != nil {
		t.Fatal(err)
	}
	// SIGSTOP reaches every thread of the process shortly after kill(2)
	// returns: wait for the node to fall silent.
	c.WaitFor("the paused node to stop answering", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		_, err := c.Status(ctx, follower)
		return err != nil
	})
	// The two others still make a majority: a write goes through.
	acquire(t, c, c.Leader(), "k-paused", "c")
	if err := c.Resume(follower); err != nil {
		t.Fatal(err)
	}

	// A graceful stop, a wiped disk, a fresh start on the same address.
	victim := c.Followers()[0]
	if err := c.Stop(victim); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := c.Wipe(victim); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.DataDir(victim)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data directory after Wipe: %v", err)
	}
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the wiped node to catch up", func() bool {
		st, err := c.Status(t.Context(), victim)
		return err == nil && st.Ready && st.Locks == 2
	})
	if got := acquire(t, c, victim, "k2", "b"); got <= tok {
		t.Fatalf("token after the faults = %d, want > %d", got, tok)
	}
	c.EnsureSame()
}

// With TLS and tokens, the harness's own calls (Status for Leader,
// /debug/state for EnsureSame) go over https with its token, while a call
// without a token is refused: the nodes really run secured.
func TestTLSAndTokens(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithTokens(tokens.Token{Name: "other", SHA256: tokens.Hash("x"), Verbs: []string{tokens.VerbRead}}))
	c.Leader()
	if !strings.HasPrefix(c.URL(0), "https://") {
		t.Fatalf("URL = %s, want https", c.URL(0))
	}
	tc, err := testcluster.ClientTLS(c.TLSDir())
	if err != nil {
		t.Fatal(err)
	}
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	_, err = raftlockv1connect.NewClusterServiceClient(anon, c.URL(0)).Status(t.Context(), connect.NewRequest(&raftlockv1.StatusRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("status without a token: %v, want unauthenticated", err)
	}
	acquire(t, c, 0, "k", "me")
}

// WaitSame reports the replicas' agreement, names the replicas of each hash
// when they differ at one index, and gives up with the last sample when
// they never meet at one index.
func TestWaitSame(t *testing.T) {
	fixed := func(s map[string]testcluster.State) func(context.Context) (map[string]testcluster.State, error) {
		return func(context.Context) (map[string]testcluster.State, error) { return s, nil }
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if got, err := testcluster.WaitSame(ctx, fixed(map[string]testcluster.State{"n1": {7, "h"}, "n2": {7, "h"}})); err != nil || !strings.Contains(got, "index 7") {
		t.Fatalf("agreeing replicas: %q, %v", got, err)
	}
	_, err := testcluster.WaitSame(ctx, fixed(map[string]testcluster.State{"n1": {7, "h"}, "n2": {7, "h"}, "n3": {7, "other"}}))
	if !errors.Is(err, testcluster.ErrDiverged) || !strings.Contains(err.Error(), "n1,n2: h") || !strings.Contains(err.Error(), "n3: other") {
		t.Fatalf("diverged replicas: %v, want ErrDiverged naming n1,n2 and n3", err)
	}
	_, err = testcluster.WaitSame(ctx, fixed(map[string]testcluster.State{"n1": {7, "h"}, "n2": {8, "h"}}))
	if !errors.Is(err, testcluster.ErrNoCommonIndex) || !strings.Contains(err.Error(), "n1@7 n2@8") {
		t.Fatalf("replicas apart: %v, want ErrNoCommonIndex with the last sample", err)
	}
}

package cluster_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// Snapshots and log truncation happen under load, and a node that was
// wiped and added back catches up from a snapshot with every lock.
// Both log stores: raft-wal truncates whole segments, so its segments are
// made small enough for the test's log to span several.
func TestSnapshotsUnderLoadAndCatchUp(t *testing.T) {
	for _, store := range []string{cluster.LogStoreWAL, cluster.LogStoreBolt} {
		t.Run(store, func(t *testing.T) { testSnapshotsUnderLoadAndCatchUp(t, store) })
	}
}

func testSnapshotsUnderLoadAndCatchUp(t *testing.T, store string) {
	c := clustertest.New(t, 3, clustertest.WithConfig(func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 32
		cfg.SnapshotInterval = 100 * time.Millisecond
		cfg.LogStore, cfg.WALSegmentSize = store, 32<<10
	}))
	ctx := ctxT(t)
	leader := c.Leader()
	victim := c.Followers()[0]
	lc := c.LockClient(leader)

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				key := fmt.Sprintf("w%d-%d", w, i)
				if _, err := acquire(ctx, lc, "load", 0, 0, key); err != nil {
					t.Errorf("acquire %s: %v", key, err)
					return
				}
				if i%3 != 0 { // keep every third lock held
					if _, err := lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{key}, OwnerId: "load"})); err != nil {
						t.Errorf("release %s: %v", key, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	snapIndex := func(i int) uint64 {
		v, _ := strconv.ParseUint(c.Node(i).Raft().Stats()["last_snapshot_index"], 10, 64)
		return v
	}
	c.WaitFor("a snapshot on the leader", func() bool { return snapIndex(leader) > 0 })
	want := c.Node(leader).Status().Locks
	if want != 4*20 {
		t.Fatalf("locks = %d, want 80", want)
	}

	c.Kill(victim)
	c.Wipe(victim)
	if _, err := c.ClusterClient(leader).RemoveMember(ctx, connect.NewRequest(&raftlockv1.RemoveMemberRequest{Id: c.ID(victim)})); err != nil {
		t.Fatal(err)
	}
	fresh := c.AddNode(leader)
	c.WaitFor("the re-added node to catch up", func() bool {
		st := c.Node(fresh).Status()
		return st.Ready && st.Locks == want
	})
	if snapIndex(fresh) == 0 {
		t.Fatal("the re-added node caught up without installing a snapshot (the log should have been truncated)")
	}
	// It serves linearizable reads from its restored table.
	l := getLock(t, ctx, c.LockClient(fresh), "w0-0")
	if l.GetOwnerId() != "load" {
		t.Fatalf("w0-0 on the re-added node = %+v", l)
	}
	c.EnsureSame()
}

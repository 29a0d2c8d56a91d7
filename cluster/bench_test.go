package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/cluster/clustertest"
	"github.com/raftlock/raftlock/fsm"
)

// BenchmarkAcquireRelease drives an in-process 3-node cluster (real Raft
// on disk, real gRPC over h2c on loopback) with C concurrent callers, each
// looping acquire -> release on its own key, and reports pairs per second.
//
//	go test -run '^$' -bench BenchmarkAcquireRelease -benchtime 5s ./cluster/
func BenchmarkAcquireRelease(b *testing.B) {
	c := clustertest.New(b, 3)
	lc := c.LockClient(c.Leader())
	ctx := context.Background()
	runPairs(b, "bench", func(key, owner string) error {
		if _, err := lc.Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{key}, OwnerId: owner})); err != nil {
			return err
		}
		_, err := lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{key}, OwnerId: owner}))
		return err
	})
}

// BenchmarkRaftApply is the floor under BenchmarkAcquireRelease: the same
// acquire -> release loop proposed straight to the leader's Raft (no HTTP,
// no handler, no client), through the lock table, on the same in-process
// cluster. The gap between the two is what the API costs.
//
//	go test -run '^$' -bench BenchmarkRaftApply -benchtime 5s ./cluster/
func BenchmarkRaftApply(b *testing.B) {
	c := clustertest.New(b, 3)
	var rid atomic.Int64 // request ids unique across runs, so none is a retry
	r := c.Node(c.Leader()).Raft()
	runPairs(b, "raw", func(key, owner string) error {
		for _, op := range []fsm.Op{fsm.OpAcquire, fsm.OpRelease} {
			cmd := fsm.Command{Op: op, Keys: []string{key}, Owner: owner, Expire: time.Minute,
				RequestID: fmt.Sprintf("raw-%d", rid.Add(1))}
			f := r.Apply(cmd.Encode(nil), 5*time.Second)
			if err := f.Error(); err != nil {
				return err
			}
			if res := f.Response().(*fsm.Result); res.Code != fsm.CodeOK {
				return fmt.Errorf("%s: %s", op, res.Code)
			}
		}
		return nil
	})
}

// runPairs runs pair (one acquire -> release on the caller's own key) b.N
// times in all, spread over 1, 16 and 64 concurrent callers in turn, and
// reports pairs per second for each.
func runPairs(b *testing.B, prefix string, pair func(key, owner string) error) {
	for _, callers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("%s-%d-%d", prefix, callers, w)
					owner := fmt.Sprintf("worker-%d", w)
					for next.Add(1) <= int64(b.N) {
						if err := pair(key, owner); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
		})
	}
}

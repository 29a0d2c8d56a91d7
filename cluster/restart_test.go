package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/cluster/clustertest"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// A follower that restarts hears the leader's heartbeat before the log
// reaches it: for a moment its table is its last snapshot (here: none, so
// empty and at cluster version 1) while it knows the leader and forwards
// calls. A node must not decide from that table. Before caughtUp it sent
// the Acquires of that moment without their attempt, so the abandon of a
// caller that left while its Acquire was granted was a cancel_wait, which
// cannot release a grant: the key stayed held, forever, by nobody. It also
// said it was ready, and refused shared acquires ("the cluster is at
// version 1").
//
// Each round restarts a follower and, in the moment it knows the leader
// with its table still at version 1, sends it 20 Acquires of free keys
// whose callers leave after 2 ms (deadline and hang-up). Every key must end
// free, with the request's outcome cancelled. The moment is short (a few
// ms); a round where the log arrived with the first heartbeat proves
// nothing and is run again.
func TestRestartedFollowerDecidesOnACaughtUpTable(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	c.WaitForVersion(2)
	f := c.Followers()[0]
	leader := c.LockClient(c.Leader())
	const calls = 20
	for round := 1; ; round++ {
		if round > 10 {
			t.Fatalf("in 10 restarts the log always reached %s with the leader's first heartbeat: the moment this test is about never came", c.ID(f))
		}
		c.Kill(f)
		c.Restart(f)
		n := c.Node(f)
		if !knowsLeaderOnStaleTable(n) {
			t.Logf("round %d: the log reached %s with the first heartbeat; again", round, c.ID(f))
			continue
		}
		lc := c.LockClient(f)
		var wg sync.WaitGroup
		for i := range calls {
			wg.Go(func() {
				key := fmt.Sprintf("r%d-k%d", round, i)
				ctx, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
				defer cancel()
				_, _ = lc.Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{key}, OwnerId: "gone-" + key, RequestId: "gone-" + key, WaitTimeout: durationpb.New(30 * time.Second)}))
			})
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if n.Ready(rctx) && n.Status().ClusterVersion < 2 {
			t.Errorf("%s says it is ready with its table at version 1", c.ID(f))
		}
		cancel()
		wg.Wait()
		t.Logf("round %d: %d acquires sent to %s while its table was at version 1 (applied index %d)", round, calls, c.ID(f), n.Raft().AppliedIndex())

		c.WaitFor("the restarted node's table at version 2", func() bool { return n.Status().ClusterVersion >= 2 })
		reached := 0
		for i := range calls {
			key := fmt.Sprintf("r%d-k%d", round, i)
			var state raftlockv1.RequestState
			var last string
			testcluster.Poll(t, 10*time.Second, 20*time.Millisecond, "the departed caller's "+key+" to be withdrawn", func() bool {
				held := getLock(t, ctx, leader, key).GetOwnerId()
				out, err := leader.GetRequestOutcome(ctx, connect.NewRequest(&raftlockv1.GetRequestOutcomeRequest{RequestId: "gone-" + key}))
				switch {
				case connect.CodeOf(err) == connect.CodeNotFound:
					state = raftlockv1.RequestState_REQUEST_STATE_UNSPECIFIED // never reached the node
				case err != nil:
					t.Fatalf("outcome of gone-%s: %v", key, err)
				default:
					state = out.Msg.Outcome.GetState()
				}
				last = fmt.Sprintf("held by %q, outcome %s", held, state)
				return held == "" && state != raftlockv1.RequestState_REQUEST_STATE_SUCCEEDED && state != raftlockv1.RequestState_REQUEST_STATE_PENDING
			}, &last)
			if state == raftlockv1.RequestState_REQUEST_STATE_CANCELLED {
				reached++
			}
		}
		if reached == 0 {
			t.Logf("round %d: no call reached %s before its caller left; again", round, c.ID(f))
			continue
		}
		t.Logf("round %d: %d of %d reached the node; every key is free and each of those is cancelled", round, reached, calls)
		return
	}
}

// knowsLeaderOnStaleTable polls a restarted node until it knows the leader
// and reports whether its table was still at version 1 then.
func knowsLeaderOnStaleTable(n interface {
	Leader() (string, string)
	Status() *raftlockv1.StatusResponse
}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if addr, _ := n.Leader(); addr != "" {
			return n.Status().ClusterVersion < 2
		}
		time.Sleep(500 * time.Microsecond) // a tight poll: the moment lasts a few ms
	}
	return false
}

package cluster_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// ClusterService works through any node: Status everywhere, membership
// changes and leadership transfer through a follower.
func TestClusterServiceThroughAnyNode(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	for _, i := range c.Running() {
		st, err := c.ClusterClient(i).Status(ctx, connect.NewRequest(&raftlockv1.StatusRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if st.Msg.Id != c.ID(i) || len(st.Msg.Members) != 3 {
			t.Fatalf("status of %s = %+v", c.ID(i), st.Msg)
		}
		c.WaitFor("status to show the leader", func() bool {
			st, err := c.ClusterClient(i).Status(ctx, connect.NewRequest(&raftlockv1.StatusRequest{}))
			return err == nil && st.Msg.LeaderId == c.ID(leader)
		})
	}
	follower := c.Followers()[0]
	// A fourth node joins through a follower (AddMember is forwarded).
	n4 := c.AddNode(follower)
	c.WaitFor("the new node to catch up", func() bool {
		n := c.Node(n4)
		st := n.Status()
		return st.Ready && len(st.Members) == 4
	})
	// Transfer leadership to the new node, asked through a follower.
	tr, err := c.ClusterClient(follower).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{Id: c.ID(n4)}))
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if tr.Msg.LeaderId != c.ID(n4) {
		t.Fatalf("leader after transfer = %q, want %q", tr.Msg.LeaderId, c.ID(n4))
	}
	c.WaitFor("the new node to take office", func() bool { return c.LeaderIndex() == n4 })
	// Remove the old leader through another follower.
	other := -1
	for _, i := range c.Running() {
		if i != n4 && i != leader {
			other = i
			break
		}
	}
	if _, err := c.ClusterClient(other).RemoveMember(ctx, connect.NewRequest(&raftlockv1.RemoveMemberRequest{Id: c.ID(leader)})); err != nil {
		t.Fatalf("remove: %v", err)
	}
	c.WaitFor("3 members", func() bool { return len(c.Node(n4).Status().Members) == 3 })
	_, err = c.ClusterClient(other).RemoveMember(ctx, connect.NewRequest(&raftlockv1.RemoveMemberRequest{Id: "nobody"}))
	wantCode(t, err, connect.CodeNotFound)
	// The shrunken cluster still grants locks.
	mustAcquire(t, ctx, c.LockClient(other), "alice", "after-membership-changes")
	c.EnsureSame()
}

// Killing the leader hard elects a new one; every lock survives with its
// owner and token, and the next grant of a key gets a larger token.
func TestKillLeaderKeepsLocks(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	lc := c.LockClient(leader)
	tokens := map[string]uint64{}
	for _, k := range []string{"a", "b", "c"} {
		tokens[k] = mustAcquire(t, ctx, lc, "owner-"+k, k).FencingToken
	}
	c.Kill(leader)
	newLeader := c.Leader()
	if newLeader == leader {
		t.Fatal("killed node still leads")
	}
	nc := c.LockClient(c.Followers()[0]) // through a follower of the new leader
	for k, tok := range tokens {
		l := getLock(t, ctx, nc, k)
		if l.GetOwnerId() != "owner-"+k || l.FencingToken != tok {
			t.Fatalf("after failover %q = %+v, want owner-%s with token %d", k, l, k, tok)
		}
		_, err := acquire(ctx, nc, "intruder", 0, 0, k)
		wantCode(t, err, connect.CodeAborted)
	}
	if _, err := nc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{"a"}, OwnerId: "owner-a"})); err != nil {
		t.Fatal(err)
	}
	if got := mustAcquire(t, ctx, nc, "next", "a").FencingToken; got <= tokens["a"] {
		t.Fatalf("token after failover = %d, want > %d", got, tokens["a"])
	}
	c.EnsureSame()
}

// A waiter queued while the leader dies ends with its grant, or with a
// clear unavailable error after which GetRequestOutcome tells the truth;
// it never holds a lock it was not told about.
func TestWaiterSurvivesLeaderDeath(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	follower := c.Followers()[0]
	mustAcquire(t, ctx, c.LockClient(leader), "holder", "k")
	done := make(chan error, 1)
	var resp *connect.Response[raftlockv1.AcquireResponse]
	go func() {
		var err error
		resp, err = c.LockClient(follower).Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{
			Keys: []string{"k"}, OwnerId: "waiter", WaitTimeout: durationpb.New(20 * time.Second), RequestId: "w1"}))
		done <- err
	}()
	c.WaitFor("the waiter to queue", func() bool { return getLock(t, ctx, c.LockClient(follower), "k").Waiters == 1 })
	c.Kill(leader)
	c.Leader()
	if _, err := c.LockClient(follower).Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{"k"}, OwnerId: "holder"})); err != nil {
		t.Fatal(err)
	}
	err := <-done
	out, oerr := c.LockClient(follower).GetRequestOutcome(ctx, connect.NewRequest(&raftlockv1.GetRequestOutcomeRequest{RequestId: "w1"}))
	if oerr != nil {
		t.Fatal(oerr)
	}
	l := getLock(t, ctx, c.LockClient(follower), "k")
	switch {
	case err == nil:
		if l.GetOwnerId() != "waiter" || l.FencingToken != resp.Msg.FencingToken {
			t.Fatalf("granted %d but the lock is %+v", resp.Msg.FencingToken, l)
		}
	case connect.CodeOf(err) == connect.CodeUnavailable:
		// The caller was told it does not know; the outcome is the truth.
		if out.Msg.Outcome.State == raftlockv1.RequestState_REQUEST_STATE_SUCCEEDED && l.GetOwnerId() != "waiter" {
			t.Fatalf("outcome says granted but the lock is %+v", l)
		}
	default:
		t.Fatalf("waiter: %v", err)
	}
	if out.Msg.Outcome.State == raftlockv1.RequestState_REQUEST_STATE_SUCCEEDED {
		if l.GetOwnerId() != "waiter" {
			t.Fatalf("outcome granted, lock %+v", l)
		}
	} else if l != nil {
		t.Fatalf("outcome %s but the lock is held: %+v", out.Msg.Outcome.State, l)
	}
	c.EnsureSame()
}

// All three nodes restart from their own disks: locks and tokens survive
// and tokens keep increasing; the waiter of a caller that died with the
// nodes is withdrawn (each node, once caught up, abandons its previous
// run's waiters).
func TestFullRestartFromDisk(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	lc := c.LockClient(c.Leader())
	held := mustAcquire(t, ctx, lc, "alice", "held")
	waitErr := make(chan error, 1)
	go func() {
		_, err := lc.Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{"held"}, OwnerId: "bob",
			WaitTimeout: durationpb.New(time.Minute), RequestId: "bob-1"}))
		waitErr <- err
	}()
	c.WaitFor("bob to queue", func() bool { return getLock(t, ctx, lc, "held").Waiters == 1 })
	for _, i := range c.Running() {
		c.Kill(i)
	}
	// The caller's connection died with the nodes; its outcome is unknown.
	if err := <-waitErr; err == nil {
		t.Fatal("acquire succeeded while every node was down")
	}
	for i := range c.Len() {
		c.Restart(i)
	}
	lc = c.LockClient(c.Leader())
	if l := getLock(t, ctx, lc, "held"); l.GetOwnerId() != "alice" || l.FencingToken != held.FencingToken {
		t.Fatalf("after restart: %+v, want alice/%d", l, held.FencingToken)
	}
	// Bob's caller died with the nodes: each node, caught up with the log,
	// withdraws the waiters of its previous run, so bob no longer waits and
	// his request id's answer is final (cancelled), also for a retry.
	c.WaitFor("bob's waiter withdrawn", func() bool { return getLock(t, ctx, lc, "held").Waiters == 0 })
	out, err := lc.GetRequestOutcome(ctx, connect.NewRequest(&raftlockv1.GetRequestOutcomeRequest{RequestId: "bob-1"}))
	if err != nil || out.Msg.Outcome.State != raftlockv1.RequestState_REQUEST_STATE_CANCELLED {
		t.Fatalf("outcome of bob-1 = %v, %v; want cancelled", out, err)
	}
	_, err = lc.Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{"held"}, OwnerId: "bob",
		WaitTimeout: durationpb.New(time.Minute), RequestId: "bob-1"}))
	wantCode(t, err, connect.CodeCanceled)
	if _, err := lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{"held"}, OwnerId: "alice"})); err != nil {
		t.Fatal(err)
	}
	if l := getLock(t, ctx, lc, "held"); l.GetOwnerId() != "" {
		t.Fatalf("after alice's release: %+v, want free", l)
	}
	c.EnsureSame()
}

// Locks expire by their deadline and never earlier, also when leadership
// moves in between: the new leader continues from the cluster time of the
// last applied entry.
func TestExpiryAcrossLeaderChange(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	lc := c.LockClient(leader)
	const ttl = 3 * time.Second
	start := time.Now()
	if _, err := acquire(ctx, lc, "alice", ttl, 0, "ttl"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClusterClient(leader).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{})); err != nil {
		t.Fatal(err)
	}
	nl := c.Leader()
	if nl == leader {
		t.Fatal("leadership did not move")
	}
	nc := c.LockClient(nl)
	for {
		l := getLock(t, ctx, nc, "ttl")
		if l == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("lock still held after 20s: %+v", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < ttl {
		t.Fatalf("lock with ttl %s freed after %s", ttl, elapsed)
	}
	if _, err := acquire(ctx, nc, "bob", 0, 0, "ttl"); err != nil {
		t.Fatalf("acquire after expiry: %v", err)
	}
	c.EnsureSame()
}

// A leader that is the only voter cannot hand leadership over: the caller
// is told so (failed_precondition), not shown an internal error.
func TestTransferLeadershipWithoutOtherVoter(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := ctxT(t)
	_, err := c.ClusterClient(c.Leader()).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{}))
	wantCode(t, err, connect.CodeFailedPrecondition)
	tr, err := c.ClusterClient(c.Leader()).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{Id: c.ID(c.Leader())}))
	if err != nil || tr.Msg.LeaderId != c.ID(c.Leader()) {
		t.Fatalf("transfer to itself = %v, %v", tr, err)
	}
}

// A transfer made conditional on a leader that no longer leads changes
// nothing and reports the leader; made on the node that leads, it moves
// leadership once. This is what makes the client's untargeted transfer
// safe to retry after a lost answer.
func TestTransferLeadershipIfLeaderID(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	follower := c.Followers()[0]
	term := c.Node(leader).Status().Term
	tr, err := c.ClusterClient(follower).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{IfLeaderId: c.ID(follower)}))
	if err != nil {
		t.Fatalf("transfer on condition of a follower: %v", err)
	}
	if tr.Msg.LeaderId != c.ID(leader) || tr.Msg.LeaderAddress != c.Addr(leader) {
		t.Fatalf("answer = %+v, want the unchanged leader %s at %s", tr.Msg, c.ID(leader), c.Addr(leader))
	}
	if l, st := c.LeaderIndex(), c.Node(leader).Status(); l != leader || st.Term != term {
		t.Fatalf("leadership moved: leader %d (was %d), term %d (was %d)", l, leader, st.Term, term)
	}
	tr, err = c.ClusterClient(follower).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{IfLeaderId: c.ID(leader)}))
	if err != nil {
		t.Fatalf("transfer on condition of the leader: %v", err)
	}
	if tr.Msg.LeaderId == c.ID(leader) || tr.Msg.LeaderId == "" {
		t.Fatalf("answer = %+v, want a new leader", tr.Msg)
	}
	c.WaitFor("a new leader to take office", func() bool { l := c.LeaderIndex(); return l >= 0 && l != leader })
	c.EnsureSame()
}

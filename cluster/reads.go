package cluster

import (
	"context"
	"fmt"
	"time"
)

// readBarrier returns once this node's lock table reflects every write
// committed before the call (the ReadIndex protocol: the leader confirms
// its leadership, and the read waits for that commit index to be applied
// here), along with the leader's cluster time. Answers read after it are
// linearizable.
func (n *Node) readBarrier(ctx context.Context) (int64, error) {
	var index uint64
	var now int64
	err := n.retryLeader(ctx, func() (err error) {
		if o := n.leading(); o != nil {
			index, now, err = n.localReadIndex(o)
			return err
		}
		addr, err := n.leaderToForwardTo()
		if err != nil {
			return err
		}
		index, now, err = n.peers.readIndex(ctx, addr)
		return err
	})
	if err != nil {
		return 0, err
	}
	return now, n.waitApplied(ctx, index)
}

// localReadIndex is the leader's half of ReadIndex: its commit index,
// confirmed by a round of heartbeats, and its cluster time.
func (n *Node) localReadIndex(o *office) (uint64, int64, error) {
	index := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, 0, err
	}
	return index, o.stamp(n.clock), nil
}

// waitApplied waits until this node's lock table has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	t := time.NewTimer(n.cfg.ApplyTimeout)
	defer t.Stop()
	for {
		ch := n.fsm.Changed()
		if n.fsm.Applied() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w: this node has not applied index %d in time", ErrNoLeader, index)
		case <-n.shutdownCh:
			return ErrShuttingDown
		}
	}
}

// Ready reports whether the node knows a leader, has caught up with the
// log once since it started (caughtUp), and has applied everything it knows
// to be committed (waiting up to one second for that).
func (n *Node) Ready(ctx context.Context) bool {
	if addr, _ := n.Leader(); addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return n.caughtUp(ctx) == nil && n.waitApplied(ctx, n.raft.CommitIndex()) == nil
}

// caughtUp returns once this node's lock table has applied an index that
// the leader confirmed as committed after the node started (a read
// barrier, done once per run). Before that, the table of a node that just
// restarted or joined can be far behind the cluster: Raft restores the
// last snapshot and replays the log only as the leader tells the node what
// is committed, and a heartbeat names the leader before that. Such a
// table's cluster version may be older than the cluster's, so what a node
// decides from the version (whether the cluster records attempts, whether
// it takes shared acquires, whether a restarted node's previous waiters
// need withdrawing) waits for this. After it, the table lags the leader
// only as any follower's does, and the version it shows only ever rises.
func (n *Node) caughtUp(ctx context.Context) error {
	if n.synced.Load() {
		return nil
	}
	if _, err := n.readBarrier(ctx); err != nil {
		return err
	}
	n.synced.Store(true)
	return nil
}

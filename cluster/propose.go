package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/raftlock/raftlock/fsm"
)

var proposeStage = stageSeconds.WithLabelValues("propose")

// applyLocal stamps an encoded command with the leader's cluster time and
// commits it. Only the leader, in office o, calls it.
func (n *Node) applyLocal(o *office, encoded []byte) (*fsm.Result, error) {
	buf := make([]byte, len(encoded))
	copy(buf, encoded)
	fsm.StampTime(buf, o.stamp(n.clock))
	start := time.Now()
	f := n.raft.Apply(buf, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	proposeStage.Observe(time.Since(start).Seconds())
	r, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, fmt.Errorf("unexpected apply response %T", f.Response())
	}
	return r, nil
}

// propose commits a command through the leader (this node or, forwarded,
// another) and returns its result. Every command proposed here is safe to
// apply twice (it has a request id, or is a tick, a cancel or an abandon),
// so it is retried across leader changes (see retryLeader). If sent is not
// nil, it is set once the command may have reached a leader: from then on
// the command may be in the log even if propose fails.
func (n *Node) propose(ctx context.Context, c *fsm.Command, sent *bool) (*fsm.Result, error) {
	encoded := c.Encode(nil)
	var r *fsm.Result
	err := n.retryLeader(ctx, func() (err error) {
		if sent != nil {
			*sent = true
		}
		if o := n.leading(); o != nil {
			if err := n.admitVersion(encoded); err != nil {
				return err
			}
			r, err = n.applyLocal(o, encoded)
			return err
		}
		addr, err := n.leaderToForwardTo()
		if err != nil {
			return err
		}
		r, err = n.peers.propose(ctx, addr, encoded)
		return err
	})
	return r, err
}

// leaderToForwardTo returns the address of the leader to hand a call to,
// or errNotReady when none is known (or this node is it, not yet in
// office).
func (n *Node) leaderToForwardTo() (string, error) {
	addr, _ := n.Leader()
	if addr == "" || addr == n.cfg.Advertise {
		return "", errNotReady
	}
	return addr, nil
}

// retryLeader runs once until it succeeds or fails for a reason other
// than a leader being unavailable (transient), backing off from 2 ms to
// 100 ms and waking early when this node's office changes. It gives up
// with ErrNoLeader after twice the apply timeout, or when ctx ends or the
// node shuts down.
func (n *Node) retryLeader(ctx context.Context, once func() error) error {
	var last error
	deadline := time.Now().Add(2 * n.cfg.ApplyTimeout)
	for backoff := 2 * time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		select {
		case <-n.shutdownCh:
			return ErrShuttingDown
		default:
		}
		err := once()
		if err == nil || !transient(err) {
			return err
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %v", ErrNoLeader, last)
		}
		if err := n.pause(ctx, backoff); err != nil {
			return fmt.Errorf("%w (last error: %v)", err, last)
		}
	}
}

// pause waits d, or until the office changes, ctx ends or the node shuts
// down.
func (n *Node) pause(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	ch := n.officeCh
	n.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.shutdownCh:
		return ErrShuttingDown
	}
	return nil
}

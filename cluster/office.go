package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// office is what a leader knows once it has taken office: the cluster time
// it started from and when, by its own monotonic clock (DESIGN.md section
// 4). Nothing in it changes after takeOffice made it.
type office struct {
	// term is the Raft term this office belongs to.
	term uint64
	// base is the cluster time of the last entry applied before the term.
	base int64
	// start is when the office began, by the node's clock.
	start time.Time
}

// stamp is the cluster time now: the base plus the time elapsed on this
// node's monotonic clock since it took office.
func (o *office) stamp(c Clock) int64 {
	return o.base + int64(c.Now().Sub(o.start))
}

// leading returns this node's office if it leads and has taken office, or
// nil: the one test of "may this node stamp and commit entries now".
func (n *Node) leading() *office {
	n.mu.Lock()
	o := n.office
	n.mu.Unlock()
	if o == nil || n.raft.State() != raft.Leader {
		return nil
	}
	return o
}

// leaderLoop follows Raft's leadership changes: on winning an election it
// starts takeOffice, on losing one it ends the office. After a restore
// (backup.go), which moves cluster time past the office's base, a leader
// takes office again from the restored table.
func (n *Node) leaderLoop() {
	leave := func() {}
	defer func() { leave() }()
	for {
		select {
		case isLeader := <-n.raft.LeaderCh():
			leave()
			n.setOffice(nil)
			if isLeader {
				ctx, cancel := context.WithCancel(context.Background())
				leave = cancel
				n.goRun(func() { n.takeOffice(ctx) })
			}
		case <-n.backups.reoffice:
			leave()
			n.setOffice(nil)
			if n.raft.State() == raft.Leader {
				ctx, cancel := context.WithCancel(context.Background())
				leave = cancel
				n.goRun(func() { n.takeOffice(ctx) })
			}
		case <-n.shutdownCh:
			n.setOffice(nil)
			return
		}
	}
}

// takeOffice runs while this node leads. It waits until every entry of
// earlier terms is applied (Barrier), takes the cluster time of the last
// applied entry as its base, records its first tick, and from then on
// stamps every entry and proposes expiries (DESIGN.md section 4).
func (n *Node) takeOffice(ctx context.Context) {
	term := n.raft.CurrentTerm()
	for {
		err := n.raft.Barrier(n.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		if ctx.Err() != nil || n.raft.State() != raft.Leader {
			return
		}
		n.log.Warn("barrier on taking office failed; retrying", "err", err)
	}
	o := &office{term: term, base: n.fsm.Now(), start: n.clock.Now()}
	if _, err := n.applyLocal(o, tickCommand()); err != nil {
		n.log.Warn("first tick of the term failed", "err", err)
		return
	}
	if ctx.Err() != nil {
		return
	}
	n.setOffice(o)
	n.log.Info("took office", "term", term, "cluster_time", time.Duration(o.base))
	n.tickLoop(ctx, o)
}

func tickCommand() []byte { return (&fsm.Command{Op: fsm.OpTick}).Encode(nil) }

// tickLoop proposes a tick whenever a lock or wait deadline has passed in
// cluster time, or the log has been idle for TickInterval.
func (n *Node) tickLoop(ctx context.Context, o *office) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := n.fsm.Changed()
		var last, next int64
		n.fsm.Read(func(t *fsm.Table) { last, next = t.Now(), t.NextDeadline() })
		due := last + int64(n.cfg.TickInterval)
		if next != 0 && next < due {
			due = next
		}
		if now := o.stamp(n.clock); now >= due {
			if _, err := n.applyLocal(o, tickCommand()); err != nil {
				if ctx.Err() != nil {
					return
				}
				n.log.Warn("tick failed", "err", err)
				if !sleepCtx(ctx, 50*time.Millisecond) {
					return
				}
			}
			continue
		} else {
			timer.Reset(time.Duration(due - now))
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// sleepCtx waits d and reports true, or reports false once ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (n *Node) setOffice(o *office) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.office == o {
		return
	}
	n.office = o
	close(n.officeCh)
	n.officeCh = make(chan struct{})
}

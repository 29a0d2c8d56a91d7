package cluster

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/fsm"
)

// Shared and semaphore modes on the wire (fsm/DESIGN.md, "Modes"): the
// request's mode fields become the command's, and a lock's mode, limit,
// holders and slots become the Lock message's.

// modeFeature names the modes in the refusal of a cluster below version 2.
const modeFeature = "a shared or semaphore lock"

// setMode copies an AcquireRequest's mode fields onto c (permits default
// to 1 for a semaphore) and checks them, and that the cluster can carry
// them.
func (n *Node) setMode(ctx context.Context, c *fsm.Command, m *raftlockv1.AcquireRequest) error {
	switch m.Mode {
	case raftlockv1.LockMode_LOCK_MODE_UNSPECIFIED, raftlockv1.LockMode_LOCK_MODE_EXCLUSIVE:
		c.Mode = fsm.ModeExclusive
	case raftlockv1.LockMode_LOCK_MODE_SHARED:
		c.Mode = fsm.ModeShared
	case raftlockv1.LockMode_LOCK_MODE_SEMAPHORE:
		c.Mode = fsm.ModeSemaphore
	default:
		return invalidArg("mode: unknown mode %d", m.Mode)
	}
	c.Permits, c.Limit = m.Permits, m.Limit
	if c.Mode == fsm.ModeSemaphore && c.Permits == 0 {
		c.Permits = 1
	}
	if err := fsm.ValidateMode(c.Mode, c.Permits, c.Limit, c.Owner); err != nil {
		return invalidArg("%v", err)
	}
	if c.Mode != fsm.ModeExclusive {
		return n.requireVersion(ctx, modeFeature, fsm.Version2)
	}
	return nil
}

// modeProto is a Lock's mode: unset for an exclusive key, so that its
// description is exactly what it was before modes existed.
func modeProto(m fsm.Mode) raftlockv1.LockMode {
	switch m {
	case fsm.ModeShared:
		return raftlockv1.LockMode_LOCK_MODE_SHARED
	case fsm.ModeSemaphore:
		return raftlockv1.LockMode_LOCK_MODE_SEMAPHORE
	}
	return raftlockv1.LockMode_LOCK_MODE_UNSPECIFIED
}

func expiresIn(deadline, now int64) *durationpb.Duration {
	if deadline == 0 {
		return nil
	}
	return durationpb.New(time.Duration(max(deadline-now, 0)))
}

// holdersProto describes a shared or semaphore key's holders.
func holdersProto(hs []fsm.HolderInfo, now int64) []*raftlockv1.Holder {
	out := make([]*raftlockv1.Holder, len(hs))
	for i, h := range hs {
		out[i] = &raftlockv1.Holder{OwnerId: h.Owner, FencingToken: h.Token, ExpiresIn: expiresIn(h.Deadline, now), Slots: h.Slots}
	}
	return out
}

// ownSlots returns the slots of key i among a result's keys: from the
// result (an Acquire's grant, Permits per key), else from owner's hold in
// the key's current description (a Refresh).
func ownSlots(r *fsm.Result, i int, cur fsm.LockInfo) []uint32 {
	if n := len(r.Keys); n > 0 && len(r.Slots) > 0 && len(r.Slots)%n == 0 {
		per := len(r.Slots) / n
		return r.Slots[i*per : (i+1)*per]
	}
	for _, h := range cur.Holders {
		if h.Owner == r.Owner {
			return h.Slots
		}
	}
	return nil
}

package fsm

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Restoring a table into a new cluster (a backup restore, issue 19). The
// table read from a backup is the state of another cluster, or of this one
// before a disaster; PrepareRestore fits it to the cluster that takes it
// over, so that the rules of a restore hold on every replica alike (the
// prepared table is what the leader hands to Raft, which ships it to the
// followers):
//
//   - fencing tokens never go backwards: the table stands at Index, which
//     the caller picks above every index the old cluster can have used, so
//     the token of every later grant (its entry's index) is above every
//     token granted before;
//   - cluster time never runs backwards: it becomes the later of the
//     table's and the new cluster's (Now); when that is the new cluster's,
//     every deadline and remembered request moves by the difference, so
//     locks keep their remaining time and remembered ids their remaining
//     memory;
//   - waiters are dropped: their callers were connected to the old
//     cluster and are gone. Each waiting request's outcome becomes
//     cancelled (a retry with its id learns that instead of queueing
//     again), and no key is handed on to a later waiter on the way: all
//     waiters go;
//   - the cluster version never goes down: the later of the table's and
//     the new cluster's (Version).

// RestoreOptions say how PrepareRestore fits a table into the cluster it is
// restored into.
type RestoreOptions struct {
	// Index is the Raft index the restored table stands at in the new
	// cluster; every later entry, so every later grant's token, is above
	// it. It must not be below the table's own index.
	Index uint64
	// Now is the new cluster's cluster time (ns): the restored table's time
	// is the later of it and the table's own.
	Now int64
	// Version is the new cluster's cluster version: the restored table's is
	// the higher of it and the table's own.
	Version uint32
}

// DroppedWaiter is a waiting Acquire that PrepareRestore ended.
type DroppedWaiter struct {
	RequestID string
	Owner     string
	Keys      []string
}

// RestoreReport says what PrepareRestore changed.
type RestoreReport struct {
	// Dropped are the waiters it removed, in arrival order.
	Dropped []DroppedWaiter
	// Shift is how far every deadline and remembered request's time moved
	// forward (0 when the table's own time was the later one).
	Shift time.Duration
	// FromIndex and FromVersion are the table's index and cluster version
	// before.
	FromIndex   uint64
	FromVersion uint32
}

// PrepareRestore fits a table read from a backup into the cluster it is
// restored into (see the rules above). It changes the table in place; on
// an error it changes nothing.
func (t *Table) PrepareRestore(o RestoreOptions) (RestoreReport, error) {
	rep := RestoreReport{FromIndex: t.index, FromVersion: t.version}
	switch {
	case o.Index < t.index:
		return rep, fmt.Errorf("%w: index %d is below the table's index %d", ErrRestore, o.Index, t.index)
	case o.Version > SupportedVersion:
		return rep, fmt.Errorf("%w: cluster version %d, this build supports versions up to %d", ErrRestore, o.Version, SupportedVersion)
	}
	ws := t.waitersInOrder()
	dropped := make([]*record, 0, len(ws))
	for _, w := range ws {
		t.dropWaiter(w) // no hand-off: every waiter goes
		rep.Dropped = append(rep.Dropped, DroppedWaiter{RequestID: w.rid, Owner: w.owner, Keys: w.keys})
		rec := t.records[w.rid]
		rec.code = CodeCancelled
		dropped = append(dropped, rec)
	}
	if d := o.Now - t.now; d > 0 {
		t.shiftTime(d)
		rep.Shift = time.Duration(d)
	}
	for _, rec := range dropped {
		t.resolve(rec) // at the restored time: they age from the restore on
	}
	t.index = o.Index
	t.version = max(t.version, o.Version)
	return rep, nil
}

// shiftTime moves cluster time, every deadline and every remembered
// request's time forward by d. The timers keep their order (all move
// alike), so the heap stays valid.
func (t *Table) shiftTime(d int64) {
	t.now += d
	for _, tm := range t.timers {
		tm.deadline += d
	}
	for _, rec := range t.ring[t.head:] {
		rec.at += d
		for i, dl := range rec.deadlines {
			if dl != 0 { // 0: that lock never expires
				rec.deadlines[i] = dl + d
			}
		}
	}
}

// SnapshotInfo is what the start of a snapshot says about the table it
// holds.
type SnapshotInfo struct {
	// Version is the snapshot's encoding version, which is the table's
	// cluster version.
	Version uint32
	// Index is the Raft index of the last entry the table applied.
	Index uint64
	// Now is the table's cluster time (ns).
	Now int64
}

// PeekSnapshot reads the start of a snapshot written by AppendSnapshot:
// its version, index and cluster time. b may be just the first
// SnapshotPeekLen bytes; nothing beyond them is checked.
func PeekSnapshot(b []byte) (SnapshotInfo, error) {
	if len(b) < len(snapshotMagic)+1 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return SnapshotInfo{}, fmt.Errorf("%w: not a raftlock snapshot", ErrCorrupt)
	}
	info := SnapshotInfo{Version: uint32(b[len(snapshotMagic)])}
	if info.Version == 0 || info.Version > SupportedVersion {
		return info, fmt.Errorf("%w: the snapshot is of version %d, this build reads versions up to %d", ErrUnsupportedVersion, info.Version, SupportedVersion)
	}
	r := reader{b: b[len(snapshotMagic)+1:]}
	info.Index, info.Now = r.uvarint(), r.varint()
	if info.Version >= Version2 {
		if cv := r.uvarint(); r.err == nil && cv != uint64(info.Version) {
			r.fail("cluster version %d in a version %d snapshot", cv, info.Version)
		}
	}
	return info, r.err
}

// SnapshotPeekLen is how many bytes of a snapshot PeekSnapshot needs at
// most: the magic, the version byte and three varints.
const SnapshotPeekLen = len(snapshotMagic) + 1 + 3*binary.MaxVarintLen64

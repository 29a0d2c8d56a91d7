package raftfsm

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// Replayed snapshots: a snapshot without a pause.
//
// The lock table is deterministic, so its state at index I is the state of
// any earlier snapshot (at index B) with the log entries B+1..I applied to
// it. Raft keeps exactly what that needs: the snapshot it took last (or
// installed, or restored), and every entry after it (it compacts the log
// only up to the snapshot it has just finished). So Snapshot, which runs
// on the goroutine that applies entries, only notes I and B; Persist,
// which runs on Raft's snapshot goroutine while entries go on being
// applied, decodes snapshot B into a table of its own, applies the
// entries B+1..I to it, and encodes that. The live table is never locked
// for it. The cost moves off the write path: a second table in memory for
// the time of a Persist (about as much as the live one), and the CPU of a
// decode and a replay besides the encoding.
//
// Entries up to I are committed (this node applied them), and so is the
// state at B, so the rebuilt state is the live table's at I, byte for byte.
// When the state cannot be rebuilt (no snapshot and a log that no longer
// starts at 1; entries missing since; the last replayed Persist failed),
// Snapshot encodes under the lock as before, and says why.

// WithReplay makes the FSM rebuild snapshots from Raft's own log and
// snapshot store (the ones given to raft.NewRaft) instead of encoding the
// live table under its lock.
func WithReplay(logs raft.LogStore, snaps raft.SnapshotStore) Option {
	return func(f *FSM) {
		f.replay = &replaySource{cfg: f.cfg, logs: logs, snaps: snaps, released: f.hooks.SnapshotReleased}
	}
}

// errLastReplayFailed: the previous replayed snapshot's Persist failed, so
// this one is encoded under the lock (and the one after is replayed again).
var errLastReplayFailed = errors.New("the last replayed snapshot failed")

// replaySource rebuilds snapshots from the log and snapshot stores.
type replaySource struct {
	cfg      fsm.Config
	logs     raft.LogStore
	snaps    raft.SnapshotStore
	released func(size int)

	mu         sync.Mutex
	lastFailed error // the error of the last replayed Persist, if it failed
}

// plan picks the base of a snapshot at index applied: the latest stored
// snapshot at or below it (none: the empty table at index 0), and checks
// that the log holds every entry after it up to applied.
func (s *replaySource) plan(applied uint64) (*replayed, error) {
	s.mu.Lock()
	failed := s.lastFailed
	s.lastFailed = nil
	s.mu.Unlock()
	if failed != nil {
		return nil, fmt.Errorf("%w: %w", errLastReplayFailed, failed)
	}
	metas, err := s.snaps.List()
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	r := &replayed{src: s, applied: applied}
	for _, m := range metas { // newest first
		if m.Index <= applied {
			r.baseID, r.baseIndex = m.ID, m.Index
			break
		}
	}
	if r.baseIndex == applied {
		return r, nil
	}
	first, err := s.logs.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("first log index: %w", err)
	}
	last, err := s.logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("last log index: %w", err)
	}
	if first == 0 || first > r.baseIndex+1 || last < applied {
		return nil, fmt.Errorf("the log holds entries %d to %d, a replay from the snapshot at %d to %d needs %d to %d",
			first, last, r.baseIndex, applied, r.baseIndex+1, applied)
	}
	return r, nil
}

// replayed is a snapshot at index applied, to be rebuilt from the stored
// snapshot baseID (at baseIndex; "": the empty table) and the log.
type replayed struct {
	src       *replaySource
	baseID    string
	baseIndex uint64
	applied   uint64
	size      int
}

// Persist rebuilds the state and writes it; on any error it cancels the
// sink, and the next snapshot is encoded under the lock.
func (r *replayed) Persist(sink raft.SnapshotSink) error {
	err := r.persist(sink)
	if err != nil {
		sink.Cancel()
		r.src.mu.Lock()
		r.src.lastFailed = err
		r.src.mu.Unlock()
	}
	return err
}

func (r *replayed) persist(sink raft.SnapshotSink) error {
	t, err := r.rebuild()
	if err != nil {
		return err
	}
	data := t.AppendSnapshot(nil)
	r.size = len(data)
	if _, err := sink.Write(data); err != nil {
		return fmt.Errorf("raftfsm: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raftfsm: close snapshot: %w", err)
	}
	return nil
}

// rebuild returns the table at r.applied: the base with the log entries
// after it applied, exactly as ApplyBatch applied them.
func (r *replayed) rebuild() (*fsm.Table, error) {
	t := fsm.New(r.src.cfg)
	if r.baseID != "" {
		_, rc, err := r.src.snaps.Open(r.baseID)
		if err != nil {
			return nil, fmt.Errorf("raftfsm: replay: open snapshot %s: %w", r.baseID, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("raftfsm: replay: read snapshot %s: %w", r.baseID, err)
		}
		if t, err = fsm.Restore(r.src.cfg, data); err != nil {
			return nil, fmt.Errorf("raftfsm: replay: snapshot %s: %w", r.baseID, err)
		}
	}
	var l raft.Log
	for i := r.baseIndex + 1; i <= r.applied; i++ {
		if err := r.src.logs.GetLog(i, &l); err != nil {
			return nil, fmt.Errorf("raftfsm: replay: entry %d: %w", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := fsm.Decode(l.Data)
		if err != nil {
			return nil, fmt.Errorf("raftfsm: replay: entry %d: %w", i, err)
		}
		t.Apply(l.Index, c)
	}
	return t, nil
}

// Release tells the hook how large the snapshot was: the node hands the
// memory of the rebuilt table back to the system.
func (r *replayed) Release() {
	if r.src.released != nil && r.size > 0 {
		r.src.released(r.size)
	}
}

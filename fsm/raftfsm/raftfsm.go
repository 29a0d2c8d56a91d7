// Package raftfsm adapts the pure lock table of package fsm to
// hashicorp/raft's FSM interface, and makes it safe to read while Raft
// applies entries.
package raftfsm

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// Hooks are called on the goroutine that applies entries (SnapshotReleased
// also on Raft's snapshot goroutine). They must not block and must not call back into the
// FSM's write path. Any may be nil.
type Hooks struct {
	// Applied receives the result of each applied command.
	Applied func(*fsm.Result)
	// Restored is told that a snapshot replaced the table, and the index of
	// the last command it contains.
	Restored func(index uint64)
	// SnapshotReleased is told that the FSM has let go of the encoding of
	// a snapshot, of size bytes: after Raft is done with a snapshot it
	// took (written or abandoned; called on Raft's snapshot goroutine), or
	// after a restore from one (on the apply goroutine).
	SnapshotReleased func(size int)
	// Fatal is told that an entry cannot be applied (it does not decode, or
	// needs a newer build: the error names the index and both versions).
	// It must not return; nil: the FSM panics with the same message. Going
	// on would let the replicas' states drift apart silently.
	Fatal func(error)
	// SnapshotUnderLock is told, with the reason, that a snapshot of an
	// FSM made WithReplay could not be replayed and is encoded under the
	// table's lock instead (writes wait for it).
	SnapshotUnderLock func(reason error)
}

// FSM is a raft.FSM (and raft.BatchingFSM) around an fsm.Table.
type FSM struct {
	cfg   fsm.Config
	hooks Hooks

	mu    sync.RWMutex
	table *fsm.Table
	// applied is the index of the last log entry handed to the FSM of any
	// type (commands, configuration changes, no-ops), so waiting for
	// "applied >= commit index" terminates even when the last entries are
	// not commands.
	applied uint64
	changed chan struct{} // closed and replaced after every batch

	// replay, when set (WithReplay), is where snapshots are rebuilt from
	// instead of encoded under mu (replay.go).
	replay *replaySource
}

// Option changes how New makes an FSM.
type Option func(*FSM)

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over an empty table.
func New(cfg fsm.Config, hooks Hooks, opts ...Option) *FSM {
	f := &FSM{cfg: cfg, hooks: hooks, table: fsm.New(cfg), changed: make(chan struct{})}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Apply applies one log entry. On a command it cannot decode (corrupt, or
// of a version above fsm.SupportedVersion) it stops the node through
// Hooks.Fatal, naming the index and the versions: every replica of this
// build would fail the same way, and going on would let the replicas'
// states drift apart silently.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries under one lock acquisition.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	results := make([]*fsm.Result, 0, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			f.applied = max(f.applied, l.Index)
			continue
		}
		c, err := fsm.Decode(l.Data)
		if err != nil {
			f.mu.Unlock()
			f.fatal(fmt.Errorf("raftfsm: cannot apply the entry at index %d (term %d): %w", l.Index, l.Term, err))
		}
		f.applied = max(f.applied, l.Index)
		r := f.table.Apply(l.Index, c)
		out[i] = r
		results = append(results, r)
	}
	ch := f.changed
	f.changed = make(chan struct{})
	f.mu.Unlock()
	close(ch)
	if f.hooks.Applied != nil {
		for _, r := range results {
			f.hooks.Applied(r)
		}
	}
	return out
}

// fatal stops the node: the hook, or a panic.
func (f *FSM) fatal(err error) {
	if f.hooks.Fatal != nil {
		f.hooks.Fatal(err)
	}
	panic(err.Error())
}

// Read runs fn with the table under a read lock. fn must not keep the
// table or call Apply.
func (f *FSM) Read(fn func(t *fsm.Table)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.table)
}

// Applied returns the index of the last entry handed to the FSM.
func (f *FSM) Applied() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Now returns the cluster time of the last applied command.
func (f *FSM) Now() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.table.Now()
}

// Changed returns a channel that is closed when the next batch of entries
// has been applied (or a snapshot restored).
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Snapshot returns the state as of the last applied entry. Raft calls it
// on the goroutine that applies entries, so no entry is applied until it
// returns. Made WithReplay, it only notes the index and where to rebuild
// the state from, and Persist does the work while entries go on being
// applied (replay.go); otherwise, or when the state cannot be rebuilt
// (the hook SnapshotUnderLock says why), it encodes the table now, under
// the lock, and Persist only writes bytes.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if f.replay != nil {
		f.mu.RLock()
		applied := f.applied
		f.mu.RUnlock()
		s, err := f.replay.plan(applied)
		if err == nil {
			return s, nil
		}
		if f.hooks.SnapshotUnderLock != nil {
			f.hooks.SnapshotUnderLock(err)
		}
	}
	return f.snapshotUnderLock(), nil
}

// snapshotUnderLock encodes the table while holding the lock, so the
// snapshot is a consistent copy.
func (f *FSM) snapshotUnderLock() *snapshot {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &snapshot{data: f.table.AppendSnapshot(nil), released: f.hooks.SnapshotReleased}
}

// Restore replaces the table with the one in the snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("raftfsm: read snapshot: %w", err)
	}
	t, err := fsm.Restore(f.cfg, data)
	if err != nil {
		return fmt.Errorf("raftfsm: restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.table = t
	f.applied = max(f.applied, t.Index())
	ch := f.changed
	f.changed = make(chan struct{})
	f.mu.Unlock()
	close(ch)
	if f.hooks.Restored != nil {
		f.hooks.Restored(t.Index())
	}
	if f.hooks.SnapshotReleased != nil {
		// data is dead from here on (the table was decoded from it), so
		// the collection the hook may force can free it.
		f.hooks.SnapshotReleased(len(data))
	}
	return nil
}

type snapshot struct {
	data     []byte
	released func(size int)
}

// Persist writes the encoded table; on any error it cancels the sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftfsm: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftfsm: close snapshot: %w", err)
	}
	return nil
}

// Release drops the copy of the table and tells the hook.
func (s *snapshot) Release() {
	size := len(s.data)
	s.data = nil
	if s.released != nil {
		s.released(size)
	}
}

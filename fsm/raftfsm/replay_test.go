package raftfsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// node is the part of a Raft node a replayed snapshot depends on: a log
// store, a file snapshot store, and an FSM applying what is appended.
type node struct {
	t        testing.TB
	logs     *raft.InmemStore
	snaps    *raft.FileSnapshotStore
	f        *FSM
	index    uint64
	now      int64
	rng      *rand.Rand
	fallback []error
}

func newNode(t testing.TB, seed uint64) *node {
	snaps, err := raft.NewFileSnapshotStoreWithLogger(t.TempDir(), 3, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, logs: raft.NewInmemStore(), snaps: snaps, now: int64(time.Hour), rng: rand.New(rand.NewPCG(seed, 1))}
	n.f = New(fsm.DefaultConfig(), Hooks{SnapshotUnderLock: func(err error) { n.fallback = append(n.fallback, err) }},
		WithReplay(n.logs, n.snaps))
	return n
}

// append stores entries in the log and applies them as Raft would: commands
// and configuration changes reach the FSM, no-ops do not.
func (n *node) append(entries ...*raft.Log) {
	n.t.Helper()
	if err := n.logs.StoreLogs(entries); err != nil {
		n.t.Fatal(err)
	}
	var batch []*raft.Log
	for _, l := range entries {
		if l.Type != raft.LogNoop {
			batch = append(batch, l)
		}
	}
	n.f.ApplyBatch(batch)
}

// command appends one command at the next index.
func (n *node) command(c fsm.Command) {
	n.index++
	n.now += int64(n.rng.IntN(int(time.Second)))
	c.Time = n.now
	n.append(&raft.Log{Index: n.index, Term: 1, Type: raft.LogCommand, Data: c.Encode(nil)})
}

// other appends a no-op or a configuration entry.
func (n *node) other(typ raft.LogType) {
	n.index++
	n.append(&raft.Log{Index: n.index, Term: 1, Type: typ})
}

// load appends count random commands (acquires that wait or not, releases,
// refreshes, shared holds, ticks) and the odd non-command entry.
func (n *node) load(count int) {
	for range count {
		key := fmt.Sprintf("k%d", n.rng.IntN(20))
		owner := fmt.Sprintf("o%d", n.rng.IntN(5))
		rid := fmt.Sprintf("r%d", n.index)
		switch n.rng.IntN(10) {
		case 0:
			n.other(raft.LogNoop)
		case 1:
			n.other(raft.LogConfiguration)
		case 2, 3:
			n.command(fsm.Command{Op: fsm.OpAcquire, Keys: []string{key}, Owner: owner, Expire: 5 * time.Second, Wait: 3 * time.Second, RequestID: rid})
		case 4:
			n.command(fsm.Command{Op: fsm.OpAcquire, Keys: []string{key, "shared"}, Owner: owner, Mode: n.mode(), Expire: 10 * time.Second, RequestID: rid})
		case 5, 6:
			n.command(fsm.Command{Op: fsm.OpRelease, Keys: []string{key}, Owner: owner, RequestID: rid})
		case 7:
			n.command(fsm.Command{Op: fsm.OpRefresh, Keys: []string{key}, Owner: owner, RequestID: rid})
		default:
			n.command(fsm.Command{Op: fsm.OpTick})
		}
	}
}

// mode is shared once the table is at version 2, else exclusive.
func (n *node) mode() fsm.Mode {
	var v uint32
	n.f.Read(func(t *fsm.Table) { v = t.Version() })
	if v >= fsm.Version2 {
		return fsm.ModeShared
	}
	return fsm.ModeExclusive
}

// live is the live table's own encoding.
func (n *node) live() []byte {
	var b []byte
	n.f.Read(func(t *fsm.Table) { b = t.AppendSnapshot(nil) })
	return b
}

// snapshot takes a snapshot as Raft's snapshot goroutine does, while more
// entries are applied between Snapshot and Persist, and returns its bytes.
func (n *node) snapshot(during int) ([]byte, error) {
	n.t.Helper()
	index := n.index
	snap, err := n.f.Snapshot()
	if err != nil {
		n.t.Fatal(err)
	}
	want := n.live()
	n.load(during) // Persist runs while the table moves on
	sink, err := n.snaps.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer snap.Release()
	if err := snap.Persist(sink); err != nil {
		return nil, err
	}
	_, rc, err := n.snaps.Open(sink.ID())
	if err != nil {
		n.t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, want) {
		n.t.Fatalf("snapshot at %d: %d bytes, the live table then encoded %d (different)", index, len(got), len(want))
	}
	return got, nil
}

// compact drops the log up to index, as Raft does after a snapshot.
func (n *node) compact(upTo uint64) {
	first, _ := n.logs.FirstIndex()
	if err := n.logs.DeleteRange(first, upTo); err != nil {
		n.t.Fatal(err)
	}
}

// A replayed snapshot is the live table's encoding at the snapshot's index,
// byte for byte: from the empty table and the whole log first, then from
// each previous snapshot and the entries after it, with the log compacted
// behind, across the move to version 2, while entries go on being applied
// between Snapshot and Persist. None falls back to the lock.
func TestReplayedSnapshotIsTheLiveState(t *testing.T) {
	for seed := range uint64(5) {
		n := newNode(t, seed)
		n.load(300)
		if _, err := n.snapshot(50); err != nil {
			t.Fatal(err)
		}
		for round := range 6 {
			if round == 2 {
				n.command(fsm.Command{Op: fsm.OpSetVersion, ClusterVersion: fsm.Version2})
			}
			n.load(200)
			if _, err := n.snapshot(30); err != nil {
				t.Fatal(err)
			}
			metas, _ := n.snaps.List()
			n.compact(metas[0].Index - 20) // trailing logs kept, as Raft does
		}
		if len(n.fallback) != 0 {
			t.Fatalf("seed %d: fell back to the lock: %v", seed, n.fallback)
		}
	}
}

// Without the entries after the last snapshot (or any snapshot, with a log
// that no longer starts at 1) the snapshot is encoded under the lock, and
// the hook says why.
func TestReplayFallsBackWhenEntriesAreMissing(t *testing.T) {
	n := newNode(t, 7)
	n.load(100)
	n.compact(10) // no snapshot, and the log starts at 11
	if _, err := n.snapshot(10); err != nil {
		t.Fatal(err)
	}
	if len(n.fallback) != 1 || !strings.Contains(n.fallback[0].Error(), "needs 1 to") {
		t.Fatalf("fallbacks = %v", n.fallback)
	}
	// The snapshot just written is the base of the next: replayed again.
	n.load(100)
	if _, err := n.snapshot(10); err != nil {
		t.Fatal(err)
	}
	if len(n.fallback) != 1 {
		t.Fatalf("fallbacks = %v, want none more", n.fallback)
	}
}

// A replayed Persist that fails (its base snapshot is gone) fails the
// snapshot; the next one is encoded under the lock, the one after is
// replayed again.
func TestReplayFailureFallsBackOnce(t *testing.T) {
	n := newNode(t, 8)
	n.load(100)
	if _, err := n.snapshot(0); err != nil {
		t.Fatal(err)
	}
	n.load(100)
	snap, err := n.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap.(*replayed).baseID = "no-such-snapshot" // as if the disk lost it
	out, _ := n.snaps.Create(raft.SnapshotVersionMax, n.index, 1, raft.Configuration{}, 1, nil)
	if err := snap.Persist(out); err == nil {
		t.Fatal("persist from a missing base succeeded")
	}
	if _, err := n.snapshot(0); err != nil {
		t.Fatal(err)
	}
	if len(n.fallback) != 1 || !errors.Is(n.fallback[0], errLastReplayFailed) {
		t.Fatalf("fallbacks = %v", n.fallback)
	}
	n.load(50)
	if _, err := n.snapshot(0); err != nil || len(n.fallback) != 1 {
		t.Fatalf("after recovery: %v, fallbacks %v", err, n.fallback)
	}
}

// After a restore (a follower installing the leader's snapshot, or a
// backup restored), the restored snapshot is the base of the next one.
func TestReplayAfterRestore(t *testing.T) {
	leader := newNode(t, 9)
	leader.load(200)
	state, err := leader.snapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, 10)
	n.index, n.now = leader.index, leader.now
	sink, _ := n.snaps.Create(raft.SnapshotVersionMax, n.index, 1, raft.Configuration{}, 1, nil)
	sink.Write(state)
	sink.Close()
	if err := n.f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		t.Fatal(err)
	}
	n.load(100) // the log of n starts after the restored index
	if _, err := n.snapshot(10); err != nil {
		t.Fatal(err)
	}
	if len(n.fallback) != 0 {
		t.Fatalf("fallbacks = %v", n.fallback)
	}
}

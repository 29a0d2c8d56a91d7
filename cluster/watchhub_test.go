package cluster

import (
	"errors"
	"testing"

	"github.com/raftlock/raftlock/fsm"
)

func entry(index uint64, keys ...string) *fsm.Result {
	r := &fsm.Result{Index: index}
	for _, k := range keys {
		r.Changes = append(r.Changes, fsm.Change{Kind: fsm.ChangeAcquired, Key: k})
	}
	return r
}

// The hub never waits for a watcher: one whose queue passes the bound is
// cut off (and told through onCut), the others keep their events; a
// watcher of other keys is not charged for them.
func TestWatchHubCutsOffTheSlowWatcherOnly(t *testing.T) {
	h := newWatchHub(4, 100, 10)
	slow, _, _ := h.subscribe(watchSelector{prefix: "a"}, 0, 0)
	other, _, _ := h.subscribe(watchSelector{prefix: "b"}, 0, 0)
	told := 0
	slow.onCut = func() { told++ }
	for i := uint64(1); i <= 5; i++ {
		h.publish(entry(i, "a1"))
	}
	h.publish(entry(6, "b1"))
	q, cut, _, last, _ := h.take(slow)
	if !cut || len(q) != 0 || told != 1 || last != 6 {
		t.Fatalf("slow watcher: cut %v, queue %d, told %d, last %d; want cut, empty, told once, 6", cut, len(q), told, last)
	}
	if q, cut, _, _, _ := h.take(other); cut || len(q) != 1 || q[0].index != 6 {
		t.Fatalf("other watcher: cut %v, queue %v; want entry 6 alone", cut, q)
	}
}

// A resume from an index in the ring gets exactly the entries after it;
// one from below the ring's floor, or ahead of what the node's log has,
// needs a snapshot; a restore resets every watcher and raises the floor.
func TestWatchHubResumesFromItsHistory(t *testing.T) {
	h := newWatchHub(100, 3, 10) // history: 3 changes
	for i := uint64(1); i <= 5; i++ {
		h.publish(entry(i, "k"))
	}
	if _, ok, _ := h.subscribe(watchSelector{}, 1, 5); ok {
		t.Fatal("resumed from 1, which fell out of a history of 3 changes")
	}
	w, ok, _ := h.subscribe(watchSelector{}, 3, 5)
	if !ok {
		t.Fatal("no resume from 3, in the history")
	}
	if q, _, _, _, _ := h.take(w); len(q) != 2 || q[0].index != 4 || q[1].index != 5 {
		t.Fatalf("resume from 3: %v, want entries 4 and 5", q)
	}
	if _, ok, _ := h.subscribe(watchSelector{}, 9, 5); ok {
		t.Fatal("resumed from 9, beyond the node's log")
	}
	h.restored(100)
	if _, _, reset, _, _ := h.take(w); !reset {
		t.Fatal("a restore did not reset the watcher")
	}
	if _, ok, _ := h.subscribe(watchSelector{}, 5, 100); ok {
		t.Fatal("resumed from 5 across a restore at 100")
	}
	for range 6 {
		h.subscribe(watchSelector{}, 0, 0)
	}
	if _, _, err := h.subscribe(watchSelector{}, 0, 0); !errors.Is(err, ErrTooManyWatches) {
		t.Fatalf("the 11th watcher of 10: %v, want ErrTooManyWatches", err)
	}
}

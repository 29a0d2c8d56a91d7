package cluster

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftlock/raftlock/fsm"
)

// The watch hub fans the changes of applied entries out to watch streams.
//
// Protocol, apply side: raftfsm calls Node.observe on the goroutine that
// applies entries, after each applied command; observe calls publish with
// the command's Result. publish, under hub.mu, appends the entry's Changes
// (fsm/changes.go) to the history ring, and to the queue of every watcher
// that selects at least one of them, and pokes that watcher (a
// non-blocking send). It never waits for a watcher: one whose queue would
// pass its bound (Config.WatchBuffer events) is cut off instead (its queue
// dropped, cut set; its stream then ends with resource_exhausted). A
// snapshot installed or a backup restored (raftfsm Hooks.Restored) clears
// the ring and marks every watcher reset.
//
// Protocol, stream side (watch.go): a handler subscribes (with the index it
// resumes after, if any), then loops: take its queue and flags under
// hub.mu, send the events after its position, or a fresh snapshot when
// reset. Because a watcher is registered before its snapshot is read, every
// entry after the snapshot's index reaches its queue; entries up to it are
// dropped by index.
type watchHub struct {
	mu sync.Mutex
	// ring holds the recent entries that changed something, oldest first
	// (ring[head:] is live), ringChanges the number of their changes, at
	// most history (an entry bigger than that alone is kept alone).
	ring        []*watchEntry
	head        int
	ringChanges int
	history     int
	// floor: every entry after floor that changed something is in the
	// ring. A resume from an index below floor needs a snapshot.
	floor uint64
	// last and lastNow are the index and cluster time of the last entry
	// published.
	last     uint64
	lastNow  int64
	watchers map[*watcher]struct{}
	buffer   int // the bound of a watcher's queue, in events
	max      int // most watchers at once

	cutoffs, resets prometheus.Counter
}

// watchEntry is the changes of one applied entry. Entries are shared by the
// ring and every queue, never changed after publish.
type watchEntry struct {
	index   uint64
	now     int64
	changes []fsm.Change
}

// watchSelector is what a watch sees.
type watchSelector struct {
	prefix, key string
	byOwner     bool
	owner       string
	noWaiters   bool
	scope       []string // the caller's key prefixes; nil: every key
}

func (s *watchSelector) selects(c *fsm.Change) bool {
	if s.noWaiters && (c.Kind == fsm.ChangeWaiterJoined || c.Kind == fsm.ChangeWaiterLeft) {
		return false
	}
	if s.key != "" {
		if c.Key != s.key {
			return false
		}
	} else if !strings.HasPrefix(c.Key, s.prefix) {
		return false
	}
	if s.byOwner && c.Owner != s.owner {
		return false
	}
	return keysWithin([]string{c.Key}, s.scope)
}

// count is how many of e's changes s selects.
func (s *watchSelector) count(e *watchEntry) int {
	n := 0
	for i := range e.changes {
		if s.selects(&e.changes[i]) {
			n++
		}
	}
	return n
}

// watcher is one watch stream's place in the hub.
type watcher struct {
	sel  watchSelector
	wake chan struct{} // capacity 1: poked when there is something to take

	// Under hub.mu.
	queue   []*watchEntry
	pending int  // selected changes in queue
	cut     bool // the queue passed its bound: the stream must end
	reset   bool // the table was replaced: the stream needs a snapshot
	// onCut is called (under hub.mu, once) when the watcher is cut off, to
	// unblock a Send stuck on a client that does not read.
	onCut func()
}

func newWatchHub(buffer, history, maxWatchers int) *watchHub {
	return &watchHub{
		history: history, buffer: buffer, max: maxWatchers, watchers: make(map[*watcher]struct{}),
		cutoffs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "raftlock", Name: "watch_cutoffs_total",
			Help: "Watch streams cut off because they fell too far behind (resource_exhausted)."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "raftlock", Name: "watch_resets_total",
			Help: "Snapshots sent to watch streams in place of history: from index 0, an index too old, or a restore."}),
	}
}

// register adds the hub's metrics to reg.
func (h *watchHub) register(reg *prometheus.Registry) {
	reg.MustRegister(h.cutoffs, h.resets, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "raftlock", Name: "watches",
		Help: "Watch streams this node serves now."}, func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(len(h.watchers))
	}))
}

// publish hands one applied entry's changes to the ring and the watchers.
// Called on the apply goroutine; never blocks on a watcher.
func (h *watchHub) publish(r *fsm.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// A watcher is woken only for an entry it selects something in: its
	// heartbeat reads last, and its queue holds all it selects up to there.
	h.last, h.lastNow = max(h.last, r.Index), r.Now
	if len(r.Changes) == 0 {
		return
	}
	e := &watchEntry{index: r.Index, now: r.Now, changes: r.Changes}
	h.ring = append(h.ring, e)
	h.ringChanges += len(e.changes)
	for h.ringChanges > h.history && len(h.ring)-h.head > 1 {
		old := h.ring[h.head]
		h.ring[h.head] = nil
		h.head++
		h.ringChanges -= len(old.changes)
		h.floor = old.index
	}
	if h.head > 1024 && h.head > len(h.ring)/2 {
		n := copy(h.ring, h.ring[h.head:])
		clear(h.ring[n:])
		h.ring, h.head = h.ring[:n], 0
	}
	for w := range h.watchers {
		if w.cut || w.reset {
			continue
		}
		n := w.sel.count(e)
		if n == 0 {
			continue
		}
		// An entry is never split: one bigger than the bound alone passes
		// when the queue is empty.
		if w.pending > 0 && w.pending+n > h.buffer {
			h.cutOff(w)
			continue
		}
		w.queue = append(w.queue, e)
		w.pending += n
		poke(w)
	}
}

func (h *watchHub) cutOff(w *watcher) {
	w.cut, w.queue, w.pending = true, nil, 0
	h.cutoffs.Inc()
	if w.onCut != nil {
		w.onCut()
	}
	poke(w)
}

func poke(w *watcher) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// restored is told that the table was replaced by a snapshot holding
// entries up to index: history before it is gone, and every watcher needs
// a new snapshot.
func (h *watchHub) restored(index uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.ring)
	h.ring, h.head, h.ringChanges = h.ring[:0], 0, 0
	h.floor, h.last = max(h.floor, index), max(h.last, index)
	for w := range h.watchers {
		w.reset, w.queue, w.pending = true, nil, 0
		poke(w)
	}
}

// subscribe registers a watcher. When from is not 0 and the ring holds
// every entry after it (from is at least floor, and at most lastKnown, the
// highest index the node's log has: a client that saw a later index
// elsewhere waits for this node to catch up), the entries after from are
// queued and resumed is true; otherwise the caller starts with a
// snapshot. It fails when the node serves its maximum of watches.
func (h *watchHub) subscribe(sel watchSelector, from, lastKnown uint64) (w *watcher, resumed bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.watchers) >= h.max {
		return nil, false, ErrTooManyWatches
	}
	w = &watcher{sel: sel, wake: make(chan struct{}, 1)}
	h.watchers[w] = struct{}{}
	if from == 0 || from < h.floor || from > max(lastKnown, h.last) {
		return w, false, nil
	}
	for _, e := range h.ring[h.head:] {
		if e.index <= from {
			continue
		}
		if n := sel.count(e); n > 0 {
			w.queue = append(w.queue, e)
			w.pending += n // the backlog may pass the bound: it is history, already held
		}
	}
	return w, true, nil
}

func (h *watchHub) unsubscribe(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.watchers, w)
}

// take hands the watcher its queue and flags, and the index every entry up
// to which has been published (its queue then holds all it selects up to
// there).
func (h *watchHub) take(w *watcher) (q []*watchEntry, cut, reset bool, last uint64, lastNow int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q, cut, reset = w.queue, w.cut, w.reset
	w.queue, w.pending, w.reset = nil, 0, false
	return q, cut, reset, h.last, h.lastNow
}

// dropUpTo removes queued entries up to index (covered by a snapshot).
func (h *watchHub) dropUpTo(w *watcher, index uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(w.queue) && w.queue[i].index <= index {
		w.pending -= w.sel.count(w.queue[i])
		i++
	}
	w.queue = w.queue[i:]
}

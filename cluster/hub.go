package cluster

import (
	"sync"

	"github.com/raftlock/raftlock/fsm"
)

// hub delivers the resolution of waiting Acquires (granted, timed out,
// cancelled), as the lock table reports them in Result.Events, to the
// handlers waiting on their request ids.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

// subscription receives the event of one request id. Its channel holds one
// event; a request id is resolved only once.
type subscription struct {
	rid string
	ch  chan fsm.Result
}

func newHub() *hub { return &hub{subs: make(map[string]map[*subscription]struct{})} }

// subscribe must happen before the command that may queue the waiter is
// proposed, so the event cannot be missed.
func (h *hub) subscribe(rid string) *subscription {
	s := &subscription{rid: rid, ch: make(chan fsm.Result, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[rid]
	if set == nil {
		set = make(map[*subscription]struct{})
		h.subs[rid] = set
	}
	set[s] = struct{}{}
	return s
}

func (h *hub) unsubscribe(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.subs[s.rid]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, s.rid)
		}
	}
}

// publish hands an event to every subscriber of its request id. It never
// blocks: it runs on the goroutine that applies Raft entries.
func (h *hub) publish(ev fsm.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[ev.RequestID] {
		select {
		case s.ch <- ev:
		default:
		}
	}
}

package checker

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// The simulator produces histories and journals of a correct lock service
// (DESIGN.md section 2: leases, FIFO waiters without barging, tokens from
// the log index, request ids) with concurrent clients, lost answers and
// late-applied requests, so every checker can be run on long, messy, legal
// histories: none may report a violation (soundness), and targeted
// corruptions of them must be caught. Times are in milliseconds until
// recorded.

type simConfig struct {
	seed     uint64
	clients  int
	keys     []string
	ops      int     // operations to invoke
	ttl      int64   // lock TTL, ms
	pUnknown float64 // an operation's answer is lost
	pWait    float64 // an acquire may wait
	wait     int64   // wait timeout, ms
}

func defaultSim(seed uint64) simConfig {
	return simConfig{seed: seed, clients: 8, keys: []string{"a", "b"}, ops: 400, ttl: 100, pUnknown: 0.05, pWait: 0.3, wait: 60}
}

type simLock struct {
	owner    string
	token    uint64
	ttl      int64
	deadline int64 // server side, ms
}

type simWaiter struct {
	op       *history.Op
	client   *simClient
	deadline int64
	lost     bool // the client gave up on it
}

type simClient struct {
	id       int
	seq      int
	holding  bool
	key      string
	owner    string
	token    uint64
	deadline int64 // conservative, ms
}

type simEvent struct {
	at  int64
	seq int // tie-break: insertion order
	fn  func()
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	cfg     simConfig
	rng     *rand.Rand
	now     int64
	seq     int
	q       eventQueue
	index   uint64
	locks   map[string]*simLock
	queues  map[string][]*simWaiter
	store   map[string]uint64
	ops     []*history.Op
	journal []history.Entry
	invoked int
	clients []*simClient
}

func (s *sim) at(t int64, fn func()) {
	s.seq++
	heap.Push(&s.q, &simEvent{at: t, seq: s.seq, fn: fn})
}

func (s *sim) between(lo, hi int64) int64 { return lo + s.rng.Int64N(hi-lo+1) }

// simulate runs the simulation and returns the history and three journals:
// n1 complete, n2 restored from a snapshot in the middle (it skipped a span),
// n3 restarted once (it re-applied the entries after its snapshot).
func simulate(cfg simConfig) ([]history.Op, map[string][]history.Entry) {
	s := &sim{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 7)),
		locks: make(map[string]*simLock), queues: make(map[string][]*simWaiter), store: make(map[string]uint64),
	}
	for i := range cfg.clients {
		c := &simClient{id: i}
		s.clients = append(s.clients, c)
		s.at(s.between(0, 20), func() { s.invoke(c) })
	}
	s.at(10, s.tick)
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*simEvent)
		s.now = e.at
		e.fn()
	}
	ops := make([]history.Op, len(s.ops))
	for i, op := range s.ops {
		ops[i] = *op
		ops[i].Invoke *= int64(time.Millisecond)
		ops[i].Return *= int64(time.Millisecond)
		if ops[i].Deadline != 0 {
			ops[i].Deadline *= int64(time.Millisecond)
		}
	}
	return ops, s.journals()
}

func (s *sim) journals() map[string][]history.Entry {
	j := s.journal
	n := len(j)
	out := map[string][]history.Entry{"n1": slices.Clone(j)}
	if n < 4 {
		out["n2"], out["n3"] = slices.Clone(j), slices.Clone(j)
		return out
	}
	// n2 fell behind and installed a snapshot: it skipped j[n/4 : n/2].
	n2 := slices.Clone(j[:n/4])
	n2 = append(n2, history.Entry{Restore: j[n/2-1].Index})
	out["n2"] = append(n2, j[n/2:]...)
	// n3 was killed after j[2n/3] and restarted from a snapshot at j[n/3].
	n3 := slices.Clone(j[:2*n/3])
	n3 = append(n3, history.Entry{Restore: j[n/3].Index})
	out["n3"] = append(n3, j[n/3+1:]...)
	return out
}

// entry appends a journal entry for a command applied now, first expiring
// what is due (as the state machine does at every entry).
func (s *sim) entry(op, rid, owner string, keys []string) *history.Entry {
	s.index += 1 + uint64(s.rng.IntN(2)) // Raft also writes entries the FSM never sees
	s.journal = append(s.journal, history.Entry{Index: s.index, Time: s.now * int64(time.Millisecond), Op: op, RequestID: rid, Code: history.CodeOK, Keys: keys, Owner: owner})
	e := &s.journal[len(s.journal)-1]
	s.expire(e)
	return e
}

// expire ends due locks and waits at entry e, handing keys on.
func (s *sim) expire(e *history.Entry) {
	for _, k := range s.cfg.keys {
		if l := s.locks[k]; l != nil && l.deadline <= s.now {
			delete(s.locks, k)
			e.Expired++
			s.handOff(k, e)
		}
		for _, w := range slices.Clone(s.queues[k]) {
			if w.deadline <= s.now {
				s.dropWaiter(k, w)
				e.Events = append(e.Events, history.Event{RequestID: w.op.RequestID, Code: history.CodeTimedOut, Keys: []string{k}, Owner: w.op.Owner})
				s.finish(w, false, 0)
				s.handOff(k, e)
			}
		}
	}
}

func (s *sim) dropWaiter(k string, w *simWaiter) {
	s.queues[k] = slices.DeleteFunc(s.queues[k], func(x *simWaiter) bool { return x == w })
}

// handOff grants a free key to its first waiter in entry e.
func (s *sim) handOff(k string, e *history.Entry) {
	if s.locks[k] != nil || len(s.queues[k]) == 0 {
		return
	}
	w := s.queues[k][0]
	s.queues[k] = s.queues[k][1:]
	s.grant(k, w.op, e.Index)
	e.Events = append(e.Events, history.Event{RequestID: w.op.RequestID, Code: history.CodeOK, Keys: []string{k}, Owner: w.op.Owner, Tokens: []uint64{e.Index}})
	s.finish(w, true, e.Index)
}

func (s *sim) grant(k string, op *history.Op, token uint64) {
	ttl := int64(op.Expire / time.Millisecond)
	deadline := history.Infinity // TTL 0: never expires
	if ttl > 0 {
		deadline = s.now + ttl + s.between(0, 5)
	}
	s.locks[k] = &simLock{owner: op.Owner, token: token, ttl: ttl, deadline: deadline}
}

// finish answers a waiting acquire.
func (s *sim) finish(w *simWaiter, granted bool, token uint64) {
	if granted {
		w.op.Outcome, w.op.Token = history.OutcomeOK, token
	} else {
		w.op.Outcome = history.OutcomeFail
	}
	if w.lost {
		s.settleLost(w.op)
		return
	}
	s.at(s.now+s.between(0, 10), func() { s.answered(w.client, w.op) })
}

func (s *sim) tick() {
	due := false
	for _, k := range s.cfg.keys {
		if l := s.locks[k]; l != nil && l.deadline <= s.now {
			due = true
		}
		for _, w := range s.queues[k] {
			due = due || w.deadline <= s.now
		}
	}
	if due {
		s.entry(history.EntryTick, "", "", nil)
	}
	waiting := false
	for _, q := range s.queues {
		waiting = waiting || len(q) > 0
	}
	if s.q.Len() > 0 || waiting {
		s.at(s.now+10, s.tick)
	}
}

// invoke lets client c start its next operation.
func (s *sim) invoke(c *simClient) {
	if s.invoked >= s.cfg.ops {
		return
	}
	s.invoked++
	c.seq++
	if c.holding && s.now >= c.deadline {
		c.holding = false // stopped using it: the deadline passed
	}
	op := &history.Op{ID: len(s.ops) + 1, Client: c.id, Invoke: s.now}
	s.ops = append(s.ops, op)
	rid := fmt.Sprintf("c%d-%d", c.id, c.seq)
	p := s.rng.Float64()
	switch {
	case c.holding && p < 0.4:
		op.Kind, op.Key, op.Owner, op.Token = history.KindWrite, c.key, c.owner, c.token
	case c.holding && p < 0.6 && c.deadline != history.Infinity:
		op.Kind, op.Key, op.Owner, op.RequestID = history.KindRefresh, c.key, c.owner, rid
		op.Expire = time.Duration(s.cfg.ttl) * time.Millisecond
	case c.holding && (p < 0.9 || c.deadline == history.Infinity):
		op.Kind, op.Key, op.Owner, op.RequestID = history.KindRelease, c.key, c.owner, rid
		if s.rng.IntN(2) == 0 {
			op.Token = c.token
		}
	case c.holding:
		// Abandon the lock (let it expire) and read meanwhile.
		c.holding = false
		op.Kind, op.Key = history.KindRead, c.key
	case p < 0.6:
		op.Kind, op.Key, op.Owner, op.RequestID = history.KindAcquire, s.cfg.keys[s.rng.IntN(len(s.cfg.keys))], fmt.Sprintf("o%d-%d", c.id, c.seq), rid
		op.Expire = time.Duration(s.cfg.ttl) * time.Millisecond
		if s.rng.IntN(8) == 0 {
			op.Expire = 0 // never expires
		}
	default:
		op.Kind, op.Key = history.KindRead, s.cfg.keys[s.rng.IntN(len(s.cfg.keys))]
	}
	lost := op.Kind != history.KindWrite && s.rng.Float64() < s.cfg.pUnknown
	if lost {
		// The client gives up; the request may still be applied, late.
		op.Outcome, op.Error = history.OutcomeUnknown, "deadline exceeded"
		if op.Kind == history.KindAcquire && op.Expire == 0 {
			op.Expire = time.Duration(s.cfg.ttl) * time.Millisecond // no ghost holds a key forever
		}
		s.at(s.now+s.between(5, 40), func() {
			op.Return = s.now
			if op.Kind == history.KindRelease {
				c.holding = false // it does not know, so it stops using the lock
			}
			s.next(c, op)
		})
		if s.rng.IntN(4) != 0 {
			s.at(s.now+s.between(1, 150), func() { s.apply(c, op, true) })
		}
		return
	}
	s.at(s.now+s.between(1, 15), func() { s.apply(c, op, false) })
}

// apply executes op on the service at the current time.
func (s *sim) apply(c *simClient, op *history.Op, lost bool) {
	k := op.Key
	respond := func() {
		if lost {
			s.settleLost(op)
			return
		}
		s.at(s.now+s.between(0, 15), func() { s.answered(c, op) })
	}
	switch op.Kind {
	case history.KindWrite:
		if op.Token >= s.store[k] {
			s.store[k] = op.Token
			op.Outcome = history.OutcomeOK
		} else {
			op.Outcome = history.OutcomeFail
		}
	case history.KindRead:
		e := s.entry(history.EntryTick, "", "", nil) // the leader ticks before answering
		if e.Expired == 0 && len(e.Events) == 0 {
			s.journal = s.journal[:len(s.journal)-1]
		}
		op.Outcome = history.OutcomeOK
		if l := s.locks[k]; l != nil {
			op.Held, op.ReadOwner, op.Token = true, l.owner, l.token
		}
	case history.KindAcquire:
		e := s.entry(history.EntryAcquire, op.RequestID, op.Owner, []string{k})
		switch {
		case s.locks[k] == nil && len(s.queues[k]) == 0:
			s.grant(k, op, e.Index)
			e.Tokens = []uint64{e.Index}
			op.Outcome, op.Token = history.OutcomeOK, e.Index
		case s.rng.Float64() < s.cfg.pWait:
			e.Code = history.CodePending
			s.queues[k] = append(s.queues[k], &simWaiter{op: op, client: c, deadline: s.now + s.cfg.wait, lost: lost})
			return // answered at the hand-off or time-out
		default:
			e.Code = history.CodeBusy
			op.Outcome = history.OutcomeFail
		}
	case history.KindRelease:
		e := s.entry(history.EntryRelease, op.RequestID, op.Owner, []string{k})
		l := s.locks[k]
		holds := l != nil && l.owner == op.Owner
		switch {
		case op.Token != 0 && (!holds || l.token != op.Token):
			e.Code = history.CodeNotHeld
			op.Outcome = history.OutcomeFail
		case holds:
			delete(s.locks, k)
			e.Released = true
			op.Outcome, op.Released = history.OutcomeOK, true
			s.handOff(k, e)
		default:
			op.Outcome = history.OutcomeOK
		}
	case history.KindRefresh:
		e := s.entry(history.EntryRefresh, op.RequestID, op.Owner, []string{k})
		if l := s.locks[k]; l != nil && l.owner == op.Owner {
			l.deadline = s.now + l.ttl + s.between(0, 5)
			e.Tokens = []uint64{l.token}
			op.Outcome = history.OutcomeOK
		} else {
			e.Code = history.CodeNotHeld
			op.Outcome = history.OutcomeFail
		}
	}
	respond()
}

// settleLost records what became of a request whose answer was lost: the
// runner resolves half of the applied ones from the outcome table.
func (s *sim) settleLost(op *history.Op) {
	if op.Kind != history.KindRead && s.rng.IntN(2) == 0 {
		op.Resolved = true // keeps the outcome the service reached
		return
	}
	op.Outcome, op.Token, op.Released, op.Held, op.ReadOwner = history.OutcomeUnknown, 0, false, false, ""
}

// answered delivers op's answer to client c.
func (s *sim) answered(c *simClient, op *history.Op) {
	op.Return = s.now
	switch {
	case op.Kind == history.KindAcquire && op.Outcome == history.OutcomeOK:
		c.holding, c.key, c.owner, c.token = true, op.Key, op.Owner, op.Token
		c.deadline = history.Infinity
		if op.Expire > 0 {
			c.deadline = op.Invoke + int64(op.Expire/time.Millisecond) - margin
			op.Deadline = c.deadline
		}
	case op.Kind == history.KindRefresh && op.Outcome == history.OutcomeOK:
		op.Deadline = op.Invoke + s.cfg.ttl - margin
		if c.holding && s.now < c.deadline && c.deadline != history.Infinity {
			c.deadline = op.Deadline
		}
	case op.Kind == history.KindRelease:
		c.holding = false
	}
	s.next(c, op)
}

// next schedules the client's following operation.
func (s *sim) next(c *simClient, _ *history.Op) {
	s.at(s.now+s.between(0, 10), func() { s.invoke(c) })
}

package fsm

import (
	"container/list"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config holds the table's bounds. Every replica of a cluster must use the
// same Config: the bounds decide which request ids are forgotten and which
// Acquires are refused, so they are part of the state machine.
type Config struct {
	// RequestTTL is how long a resolved request id is remembered, in cluster
	// time. A retry after that is treated as a new request.
	RequestTTL time.Duration
	// MaxRequests is the most resolved request ids remembered; past it the
	// oldest are forgotten first.
	MaxRequests int
	// MaxWaitersPerKey is the longest queue of one key.
	MaxWaitersPerKey int
	// MaxWaiters is the most waiting Acquires in the table.
	MaxWaiters int
	// MaxLocks is the most held locks; an Acquire that would pass it is
	// refused (hand-offs to waiters are not).
	MaxLocks int
}

// DefaultConfig returns the bounds raftlock nodes use.
func DefaultConfig() Config {
	return Config{
		RequestTTL:       5 * time.Minute,
		MaxRequests:      500_000,
		MaxWaitersPerKey: 10_000,
		MaxWaiters:       100_000,
		MaxLocks:         10_000_000,
	}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.RequestTTL <= 0:
		return fmt.Errorf("RequestTTL must be positive, got %s", c.RequestTTL)
	case c.MaxRequests <= 0:
		return fmt.Errorf("MaxRequests must be positive, got %d", c.MaxRequests)
	case c.MaxWaitersPerKey <= 0:
		return fmt.Errorf("MaxWaitersPerKey must be positive, got %d", c.MaxWaitersPerKey)
	case c.MaxWaiters <= 0:
		return fmt.Errorf("MaxWaiters must be positive, got %d", c.MaxWaiters)
	case c.MaxLocks <= 0:
		return fmt.Errorf("MaxLocks must be positive, got %d", c.MaxLocks)
	}
	return nil
}

// lock is a held key.
type lock struct {
	key    string
	owner  string
	token  uint64
	expire int64 // time to live in ns; 0: never expires
	// prev and next link the locks of one owner (Table.owners holds the
	// first), for ReleaseAll and listing by owner: two pointers cost less
	// than an entry in a map per owner.
	prev, next *lock
	t          timer // t.deadline: expiry in cluster time; 0: never
}

// waiter is an Acquire waiting in the queues of its keys.
type waiter struct {
	ask           // owner, mode, permits, limit
	id     uint64 // Raft index of the entry that queued it: arrival order
	rid    string
	keys   []string
	expire int64
	fp     uint64
	elems  []*list.Element // its place in each key's queue, parallel to keys
	t      timer           // t.deadline: end of the wait in cluster time
}

// record is a remembered request id and its result.
type record struct {
	rid       string
	op        Op
	code      Code
	fp        uint64
	at        int64 // cluster time it was resolved
	keys      []string
	owner     string
	key       string // for CodeBusy / CodeNotHeld
	tokens    []uint64
	deadlines []int64
	slots     []uint32 // a granted semaphore Acquire's slots (Result.Slots)
	released  bool
	count     int
	// attempt is the latest attempt that carried this Acquire's request id
	// (Command.Attempt; 0: none), the only one OpAbandon acts for.
	attempt uint64
	// granted is the Raft index of the entry that granted this Acquire:
	// the token of each key it newly took (keys it held already, re-entrant,
	// keep older tokens).
	granted uint64
}

// Table is the lock table. It is not safe for concurrent use: the caller
// (raftfsm) serialises Apply against reads.
type Table struct {
	cfg     Config
	now     int64  // cluster time in ns: the highest command time seen
	index   uint64 // Raft index of the last applied entry
	version uint32 // cluster version: the highest log version entries may use

	locks   map[string]*lock      // exclusive keys
	groups  map[string]*group     // shared and semaphore keys (modes.go)
	holds   int                   // holds in groups
	owners  map[string]*lock      // owner -> first of its holds (lock.next)
	queues  map[string]*list.List // key -> FIFO of *waiter
	waiters map[string]*waiter    // request id -> waiter
	// ownerWaiters counts waiters per non-empty owner, so a hand-off looks
	// for re-entrant waiters only when the owner has more than one.
	ownerWaiters map[string]int
	timers       deadlines

	records map[string]*record
	ring    []*record // resolved records in resolution order
	head    int       // first live element of ring

	// The entry being applied (changes.go): its changes so far, how a hold
	// that ends now ends, why a waiter cancelled now leaves, and the last
	// holder whose hold on each key ended (for hand-offs). Reset by Apply.
	changes   []Change
	ending    ChangeKind
	cancelWhy LeftReason
	freed     map[string]string
}

// New returns an empty table. It panics if cfg is invalid: a table with bad
// bounds would be a programming error, not a runtime condition.
func New(cfg Config) *Table {
	if err := cfg.Validate(); err != nil {
		panic("fsm: " + err.Error())
	}
	return &Table{
		cfg:          cfg,
		version:      Version1,
		locks:        make(map[string]*lock),
		groups:       make(map[string]*group),
		owners:       make(map[string]*lock),
		queues:       make(map[string]*list.List),
		waiters:      make(map[string]*waiter),
		ownerWaiters: make(map[string]int),
		records:      make(map[string]*record),
	}
}

// Now returns the cluster time (ns) of the last applied entry.
func (t *Table) Now() int64 { return t.now }

// Index returns the Raft index of the last applied entry.
func (t *Table) Index() uint64 { return t.index }

// Version returns the cluster version: the highest log version that
// entries may use (Version1 until an OpSetVersion raises it).
func (t *Table) Version() uint32 { return t.version }

// NextDeadline returns the earliest lock expiry or wait deadline in cluster
// time, or 0 if nothing is due ever.
func (t *Table) NextDeadline() int64 {
	if tm := t.timers.peek(); tm != nil {
		return tm.deadline
	}
	return 0
}

// Apply applies the command of the Raft entry at index and returns its
// result. Time first moves to max(now, c.Time); locks and waiters whose
// deadline has passed expire (in deadline order, handing keys to waiters);
// then the command runs. Every lock granted by this entry gets index as its
// fencing token.
func (t *Table) Apply(index uint64, c *Command) *Result {
	t.index = index
	t.now = max(t.now, c.Time)
	t.changes, t.freed, t.ending, t.cancelWhy = nil, nil, ChangeReleased, LeftCancelled
	var events []Result
	expired := t.expire(&events)
	t.forgetRequests()

	r := t.run(c, &events)
	if r.Op == 0 { // results read back from a record keep the record's op and id
		r.Op = c.Op
		r.RequestID = c.RequestID
	}
	r.Now = t.now
	r.Index = index
	for i := range events {
		events[i].Now, events[i].Index = t.now, index
	}
	r.Events = events
	r.Expired = expired
	r.Changes = t.changes
	t.changes, t.freed = nil, nil
	return r
}

// run applies the command itself, after time and expiries have moved.
func (t *Table) run(c *Command, events *[]Result) *Result {
	if v := c.Version(); v > t.version && c.Op != OpSetVersion {
		return invalid("%s: needs cluster version %d, the cluster is at version %d", c.Op, v, t.version)
	}
	if c.Op != OpAcquire && (c.Mode != ModeExclusive || c.Permits != 0 || c.Limit != 0) {
		return invalid("mode: only an acquire takes a mode, permits or a limit")
	}
	switch c.Op {
	case OpTick:
		return &Result{Code: CodeOK}
	case OpAcquire:
		return t.acquire(c, events)
	case OpRelease:
		return t.release(c, events)
	case OpReleaseAll:
		return t.releaseAll(c, events)
	case OpRefresh:
		return t.refresh(c)
	case OpCancelWait:
		return t.cancelWait(c, events)
	case OpForceRelease:
		return t.forceRelease(c, events)
	case OpSetVersion:
		t.version = max(t.version, c.ClusterVersion)
		return &Result{Code: CodeOK, Count: int(t.version)}
	case OpAbandon:
		return t.abandon(c, events)
	case OpAbandonNode:
		return t.abandonNode(c, events)
	default:
		return invalid("op: unknown operation %d", c.Op)
	}
}

func invalid(format string, args ...any) *Result {
	return &Result{Code: CodeInvalid, Msg: fmt.Sprintf(format, args...)}
}

// check validates the fields a command uses and returns its keys normalised.
// Keys are required when needKeys; otherwise (ReleaseAll's key prefixes)
// they are optional.
func check(c *Command, needKeys bool) ([]string, *Result) {
	var keys []string
	if needKeys || len(c.Keys) > 0 {
		var err error
		if keys, err = NormalizeKeys(c.Keys); err != nil {
			return nil, invalid("%v", err)
		}
	}
	if err := ValidateOwner(c.Owner); err != nil {
		return nil, invalid("owner_id: %v", err)
	}
	if err := ValidateRequestID(c.RequestID); err != nil {
		return nil, invalid("request_id: %v", err)
	}
	if err := ValidateExpire(c.Expire); err != nil {
		return nil, invalid("expire: %v", err)
	}
	if err := ValidateWait(c.Wait); err != nil {
		return nil, invalid("wait_timeout: %v", err)
	}
	return keys, nil
}

// remembered returns the result of an earlier command with the same request
// id, or nil if there is none.
func (t *Table) remembered(c *Command, fp uint64) *Result {
	if c.RequestID == "" {
		return nil
	}
	rec := t.records[c.RequestID]
	if rec == nil {
		return nil
	}
	if rec.tombstone() && c.Op == OpAcquire {
		r := rec.result()
		r.Duplicate = true
		return &r
	}
	if rec.op != c.Op || rec.fp != fp {
		return invalid("request_id: %v", ErrRequestIDReused)
	}
	r := rec.result()
	r.Duplicate = true
	return &r
}

// remember stores the result of a command under its request id. A pending
// record is stored outside the ring until it resolves.
func (t *Table) remember(c *Command, fp uint64, r *Result) {
	if c.RequestID == "" {
		return
	}
	rec := &record{
		rid: c.RequestID, op: c.Op, code: r.Code, fp: fp, keys: r.Keys, owner: c.Owner,
		key: r.Key, tokens: r.Tokens, deadlines: r.Deadlines, slots: r.Slots, released: r.Released, count: r.Count,
		attempt: c.Attempt,
	}
	if c.Op == OpAcquire && r.Code == CodeOK {
		rec.granted = t.grantIndex()
	}
	t.records[rec.rid] = rec
	if rec.code != CodePending {
		t.resolve(rec)
	}
}

// grantIndex is what a record granted by this entry keeps as record.granted:
// the entry's index from version 2 on. A version 1 table keeps 0, as a
// version 1 snapshot does, so that replicas restored from one and replicas
// that applied the entries agree (only version 2's OpAbandon reads it).
func (t *Table) grantIndex() uint64 {
	if t.version < Version2 {
		return 0
	}
	return t.index
}

// resolve stamps a record with the current time and queues it for aging.
func (t *Table) resolve(rec *record) {
	rec.at = t.now
	t.ring = append(t.ring, rec)
}

// forgetRequests drops resolved records older than RequestTTL, and the
// oldest ones while there are more than MaxRequests.
func (t *Table) forgetRequests() {
	ttl := int64(t.cfg.RequestTTL)
	for t.head < len(t.ring) {
		rec := t.ring[t.head]
		if rec.at+ttl > t.now && len(t.ring)-t.head <= t.cfg.MaxRequests {
			break
		}
		if t.records[rec.rid] == rec {
			delete(t.records, rec.rid)
		}
		t.ring[t.head] = nil
		t.head++
	}
	if t.head > 1024 && t.head > len(t.ring)/2 {
		n := copy(t.ring, t.ring[t.head:])
		clear(t.ring[n:])
		t.ring = t.ring[:n]
		t.head = 0
	}
}

// tombstone reports whether the record is a cancel that came before its
// Acquire: a cancelled acquire record without keys (a real one has keys).
func (rec *record) tombstone() bool {
	return rec.op == OpAcquire && rec.code == CodeCancelled && len(rec.keys) == 0
}

func (rec *record) result() Result {
	return Result{
		Op: rec.op, Code: rec.code, RequestID: rec.rid, Key: rec.key, Keys: rec.keys,
		Owner: rec.owner, Tokens: rec.tokens, Deadlines: rec.deadlines, Slots: rec.slots,
		Released: rec.released, Count: rec.count,
	}
}

// grantable reports whether a (or waiter w, if not nil) may take every key
// now; if not, it returns the first key in the way. A key is grantable when
// the owner's own hold covers the request (re-entrant, or an upgrade), or
// its holders leave room (free; shared among shared requests; permits left
// of a semaphore) and nobody waits before w.
func (t *Table) grantable(keys []string, a *ask, w *waiter) (string, bool) {
	for _, k := range keys {
		switch t.fit(k, a) {
		case blocked:
			return k, false
		case room:
			if q := t.queues[k]; q != nil {
				if w == nil || q.Front().Value.(*waiter) != w {
					return k, false // room, but others wait first: no barging
				}
			}
		}
	}
	return "", true
}

// grant takes keys for a with the current entry's index as the token of
// every new hold; holds the owner has (re-entrant) keep their token (and
// slots) and get a new deadline. An exclusive request on the owner's only
// shared hold upgrades it: the key becomes exclusive with a new token.
// slots are a semaphore grant's permit slots, key after key.
//
// kind and rid are what the changes of the grant say: ChangeAcquired for an
// Acquire, ChangeHandedOff for a waiter.
func (t *Table) grant(keys []string, a *ask, expire int64, kind ChangeKind, rid string) (tokens []uint64, deadlines []int64, slots []uint32) {
	tokens = make([]uint64, len(keys))
	deadlines = make([]int64, len(keys))
	var deadline int64
	if expire > 0 {
		deadline = t.now + expire
	}
	for i, k := range keys {
		var l *lock
		if a.owner != "" {
			l = t.holdOf(k, a.owner)
		}
		if l != nil && a.mode == ModeExclusive && t.locks[k] != l {
			t.free(l) // upgrade: the shared hold gives way to an exclusive one
			l = nil
		}
		switch {
		case l != nil: // re-entrant
		case a.mode == ModeExclusive:
			l = &lock{key: k, owner: a.owner, token: t.index}
			l.t = timer{lock: l, idx: -1}
			t.locks[k] = l
			t.link(l)
		default:
			l = &t.addHold(k, a).lock
		}
		l.expire = expire
		t.timers.set(&l.t, deadline)
		tokens[i] = l.token
		deadlines[i] = deadline
		mode, limit, permits := t.holdMode(l)
		ch := Change{Kind: kind, Key: k, Owner: a.owner, Token: l.token, Mode: mode, Limit: limit, Permits: permits,
			Deadline: deadline, Expire: expire, RequestID: rid}
		if kind == ChangeHandedOff {
			ch.Previous = t.freed[k]
		}
		t.record(ch)
		if a.mode == ModeSemaphore {
			slots = append(slots, t.groups[k].holders[a.owner].slots...)
		}
	}
	return tokens, deadlines, slots
}

// free removes a hold, exclusive or in a group. Callers hand the key on
// with handOff.
func (t *Table) free(l *lock) {
	t.recordFree(l)
	if t.locks[l.key] == l {
		delete(t.locks, l.key)
	} else {
		t.dropHold(l)
	}
	t.unlink(l)
	t.timers.remove(&l.t)
}

// link puts l first in its owner's list.
func (t *Table) link(l *lock) {
	head := t.owners[l.owner]
	l.prev, l.next = nil, head
	if head != nil {
		head.prev = l
	}
	t.owners[l.owner] = l
}

// unlink takes l out of its owner's list.
func (t *Table) unlink(l *lock) {
	switch {
	case l.prev != nil:
		l.prev.next = l.next
	case l.next != nil:
		t.owners[l.owner] = l.next
	default:
		delete(t.owners, l.owner)
	}
	if l.next != nil {
		l.next.prev = l.prev
	}
	l.prev, l.next = nil, nil
}

// handOff grants keys that just became available (freed, or left by a
// waiter) to the first waiter of their queues, if that waiter can now take
// every key it needs. When a waiter is granted, later waiters of the same
// owner in its keys' queues may now be re-entrant, so those are checked
// too. Candidates are granted oldest first, as if every waiter were checked
// in arrival order until none can be granted; every replica grants the same
// waiters in the same order.
//
// After a grant, the new first waiter of each of its keys is a candidate
// too: a shared or semaphore grant may leave room for the next.
func (t *Table) handOff(keys []string, events *[]Result) {
	var work []*waiter
	for _, k := range keys {
		work = t.candidates(k, work)
	}
	for len(work) > 0 {
		i := 0
		for j, v := range work {
			if v.id < work[i].id {
				i = j
			}
		}
		w := work[i]
		work = slices.Delete(work, i, i+1)
		if t.waiters[w.rid] != w {
			continue // granted earlier in this hand-off
		}
		if _, ok := t.grantable(w.keys, &w.ask, w); !ok {
			continue
		}
		t.dropWaiter(w)
		tokens, deadlines, slots := t.grant(w.keys, &w.ask, w.expire, ChangeHandedOff, w.rid)
		rec := t.records[w.rid]
		rec.code, rec.tokens, rec.deadlines, rec.slots, rec.granted = CodeOK, tokens, deadlines, slots, t.grantIndex()
		t.resolve(rec)
		*events = append(*events, rec.result())
		for _, k := range w.keys {
			if q := t.queues[k]; q != nil {
				work = append(work, q.Front().Value.(*waiter))
				work = t.waitersOf(w.owner, q, work)
			}
		}
	}
}

// dropWaiter takes a waiter out of its queues, the timers and the index.
func (t *Table) dropWaiter(w *waiter) {
	for i, k := range w.keys {
		q := t.queues[k]
		q.Remove(w.elems[i])
		if q.Len() == 0 {
			delete(t.queues, k)
		}
	}
	w.elems = nil
	t.timers.remove(&w.t)
	delete(t.waiters, w.rid)
	if w.owner != "" {
		if t.ownerWaiters[w.owner]--; t.ownerWaiters[w.owner] == 0 {
			delete(t.ownerWaiters, w.owner)
		}
	}
}

// endWait resolves a waiter that leaves without a grant (timed out or
// cancelled) and lets the waiters behind it move up.
func (t *Table) endWait(w *waiter, code Code, events *[]Result) Result {
	why := t.cancelWhy
	if code == CodeTimedOut {
		why = LeftTimedOut
	}
	t.recordWaiter(ChangeWaiterLeft, w, why)
	t.dropWaiter(w)
	rec := t.records[w.rid]
	rec.code = code
	t.resolve(rec)
	r := rec.result()
	*events = append(*events, r)
	t.handOff(w.keys, events)
	return r
}

// expire ends every lock and wait whose deadline is at or before now, in
// the timers' total order, and returns how many locks expired.
func (t *Table) expire(events *[]Result) (expired int) {
	for {
		tm := t.timers.peek()
		if tm == nil || tm.deadline > t.now {
			return expired
		}
		if l := tm.lock; l != nil {
			expired++
			t.ending = ChangeExpired
			t.free(l)
			t.ending = ChangeReleased
			t.handOff([]string{l.key}, events)
		} else {
			t.endWait(tm.waiter, CodeTimedOut, events)
		}
	}
}

func (t *Table) acquire(c *Command, events *[]Result) *Result {
	keys, bad := check(c, true)
	if bad != nil {
		return bad
	}
	if err := ValidateMode(c.Mode, c.Permits, c.Limit, c.Owner); err != nil {
		return invalid("%v", err)
	}
	if c.Wait > 0 && c.RequestID == "" {
		return invalid("request_id: required when wait_timeout is set")
	}
	fp := c.fingerprint(keys)
	if r := t.remembered(c, fp); r != nil {
		if rec := t.records[c.RequestID]; c.Attempt != 0 && r.Code != CodeInvalid && !rec.tombstone() && attemptTry(c.Attempt) >= attemptTry(rec.attempt) {
			// This attempt takes the request over; a copy of an earlier try
			// of the caller's, arriving late, does not.
			rec.attempt = c.Attempt
		}
		return r
	}
	a := ask{owner: c.Owner, mode: c.Mode, permits: c.Permits, limit: c.Limit}
	if k, msg := t.wrongMode(keys, &a); k != "" {
		return &Result{Code: CodeWrongMode, Key: k, Msg: msg}
	}
	r := &Result{Keys: keys, Owner: c.Owner}
	if busy, ok := t.grantable(keys, &a, nil); ok {
		fresh := 0
		for _, k := range keys {
			if c.Owner == "" || t.holdOf(k, c.Owner) == nil {
				fresh++
			}
		}
		if t.held()+fresh > t.cfg.MaxLocks {
			return &Result{Code: CodeExhausted, Msg: fmt.Sprintf("the table holds its maximum of %d locks", t.cfg.MaxLocks)}
		}
		r.Code = CodeOK
		r.Tokens, r.Deadlines, r.Slots = t.grant(keys, &a, int64(c.Expire), ChangeAcquired, c.RequestID)
	} else if c.Wait == 0 {
		r.Code, r.Key = CodeBusy, busy
	} else {
		if len(t.waiters) >= t.cfg.MaxWaiters {
			return &Result{Code: CodeExhausted, Msg: fmt.Sprintf("the table has its maximum of %d waiters", t.cfg.MaxWaiters)}
		}
		for _, k := range keys {
			if q := t.queues[k]; q != nil && q.Len() >= t.cfg.MaxWaitersPerKey {
				return &Result{Code: CodeExhausted, Key: k, Msg: fmt.Sprintf("key %q has its maximum of %d waiters", k, t.cfg.MaxWaitersPerKey)}
			}
		}
		t.enqueue(&waiter{ask: a, id: t.index, rid: c.RequestID, keys: keys, expire: int64(c.Expire), fp: fp}, t.now+int64(c.Wait))
		r.Code = CodePending
	}
	t.remember(c, fp, r)
	return r
}

// enqueue adds a waiter at the tail of each of its keys' queues.
func (t *Table) enqueue(w *waiter, deadline int64) {
	w.elems = make([]*list.Element, len(w.keys))
	for i, k := range w.keys {
		q := t.queues[k]
		if q == nil {
			q = list.New()
			t.queues[k] = q
		}
		w.elems[i] = q.PushBack(w)
	}
	w.t = timer{waiter: w, idx: -1}
	t.timers.set(&w.t, deadline)
	t.waiters[w.rid] = w
	if w.owner != "" {
		t.ownerWaiters[w.owner]++
	}
	t.recordWaiter(ChangeWaiterJoined, w, 0)
}

func (t *Table) release(c *Command, events *[]Result) *Result {
	keys, bad := check(c, true)
	if bad != nil {
		return bad
	}
	fp := c.fingerprint(keys)
	if r := t.remembered(c, fp); r != nil {
		return r
	}
	r := &Result{Keys: keys, Owner: c.Owner, Released: true}
	var freed []string
	if c.HasToken {
		for _, k := range keys {
			if l := t.holdOf(k, c.Owner); l == nil || l.token != c.Token {
				r.Code, r.Key, r.Released = CodeNotHeld, k, false
				t.remember(c, fp, r)
				return r
			}
		}
	}
	for _, k := range keys {
		if l := t.holdOf(k, c.Owner); l != nil {
			t.free(l)
			freed = append(freed, k)
		} else {
			r.Released = false
		}
	}
	t.handOff(freed, events)
	t.remember(c, fp, r)
	return r
}

// releaseAll frees every lock of the owner; with Keys, only those whose key
// starts with one of them (the key prefixes a restricted caller may touch).
func (t *Table) releaseAll(c *Command, events *[]Result) *Result {
	prefixes, bad := check(c, false)
	if bad != nil {
		return bad
	}
	fp := c.fingerprint(prefixes)
	if r := t.remembered(c, fp); r != nil {
		return r
	}
	var mine []*lock
	for l := t.owners[c.Owner]; l != nil; l = l.next {
		if k := l.key; len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			mine = append(mine, l)
		}
	}
	slices.SortFunc(mine, func(a, b *lock) int { return strings.Compare(a.key, b.key) })
	keys := make([]string, len(mine))
	for i, l := range mine {
		keys[i] = l.key
		t.free(l)
	}
	t.handOff(keys, events)
	r := &Result{Count: len(mine), Owner: c.Owner}
	t.remember(c, fp, r)
	return r
}

func (t *Table) forceRelease(c *Command, events *[]Result) *Result {
	keys, bad := check(c, true)
	if bad != nil {
		return bad
	}
	fp := c.fingerprint(keys)
	if r := t.remembered(c, fp); r != nil {
		return r
	}
	r := t.freeKeys(keys, events)
	r.Keys = keys
	t.remember(c, fp, r)
	return r
}

// freeKeys frees whichever of the sorted keys are held, every holder of
// each, then hands each on. Count is the number of keys freed.
func (t *Table) freeKeys(keys []string, events *[]Result) *Result {
	r := &Result{}
	t.ending = ChangeForceReleased
	defer func() { t.ending = ChangeReleased }()
	for _, k := range keys {
		if l := t.locks[k]; l != nil {
			t.free(l)
			r.Count++
		} else if g := t.groups[k]; g != nil {
			for _, h := range g.holders {
				t.free(&h.lock) // the order is immaterial: nothing is handed on before all are gone
			}
			r.Count++
		}
	}
	t.handOff(keys, events)
	return r
}

func (t *Table) refresh(c *Command) *Result {
	keys, bad := check(c, true)
	if bad != nil {
		return bad
	}
	fp := c.fingerprint(keys)
	if r := t.remembered(c, fp); r != nil {
		return r
	}
	r := &Result{Keys: keys, Owner: c.Owner}
	for _, k := range keys {
		if t.holdOf(k, c.Owner) == nil {
			r.Code, r.Key = CodeNotHeld, k
			t.remember(c, fp, r)
			return r
		}
	}
	r.Tokens = make([]uint64, len(keys))
	r.Deadlines = make([]int64, len(keys))
	for i, k := range keys {
		l := t.holdOf(k, c.Owner)
		if c.Expire > 0 {
			l.expire = int64(c.Expire)
		}
		var deadline int64
		if l.expire > 0 {
			deadline = t.now + l.expire
		}
		t.timers.set(&l.t, deadline)
		r.Tokens[i], r.Deadlines[i] = l.token, deadline
		mode, limit, permits := t.holdMode(l)
		t.record(Change{Kind: ChangeRefreshed, Key: k, Owner: l.owner, Token: l.token, Mode: mode, Limit: limit, Permits: permits,
			Deadline: deadline, Expire: l.expire})
	}
	t.remember(c, fp, r)
	return r
}

func (t *Table) cancelWait(c *Command, events *[]Result) *Result {
	if c.RequestID == "" {
		return invalid("request_id: required")
	}
	if len(c.Keys) > 0 {
		return t.cancelWithin(c, events)
	}
	if w := t.waiters[c.RequestID]; w != nil {
		r := t.endWait(w, CodeCancelled, events)
		return &r
	}
	rec := t.records[c.RequestID]
	if rec == nil {
		// The Acquire has not arrived (yet): leave a tombstone, so that if it
		// arrives after all it is refused as cancelled instead of granted to a
		// caller that has given up.
		rec = &record{rid: c.RequestID, op: OpAcquire, code: CodeCancelled}
		t.records[rec.rid] = rec
		t.resolve(rec)
		r := rec.result()
		return &r
	}
	r := rec.result()
	r.Duplicate = true
	return &r
}

// cancelWithin is CancelWait for a caller that may touch only keys under the
// prefixes c.Keys (a restricted token): decided here, on the state the
// cancel applies to, so no node's stale view can let it reach another
// tenant's request. It leaves no tombstone for an id it does not know: an
// unknown id could belong to anyone.
func (t *Table) cancelWithin(c *Command, events *[]Result) *Result {
	for i, p := range c.Keys {
		if err := ValidateKey(p); err != nil {
			return invalid("keys[%d]: %v", i, err)
		}
	}
	rec := t.records[c.RequestID]
	if rec == nil {
		return &Result{Code: CodeUnknown}
	}
	for _, k := range rec.keys {
		if !slices.ContainsFunc(c.Keys, func(p string) bool { return strings.HasPrefix(k, p) }) {
			return &Result{Code: CodeDenied, Key: k, Msg: fmt.Sprintf("request %q touches key %q, outside the caller's prefixes", c.RequestID, k)}
		}
	}
	if w := t.waiters[c.RequestID]; w != nil {
		r := t.endWait(w, CodeCancelled, events)
		return &r
	}
	r := rec.result()
	r.Duplicate = true
	return &r
}

// abandon ends what attempt c.Attempt of the Acquire c.RequestID left behind
// when its caller went away (deadline, cancel, disconnect), so that no key
// is held, or waited for, by nobody:
//   - a waiter still queued is withdrawn (cancelled);
//   - a grant made meanwhile is released: the owner's hold on every key the
//     grant newly took (its token is the granting entry's index) and that
//     the owner still holds under it; in a shared or semaphore key only
//     that owner's hold ends. Keys the owner held before, re-entrantly,
//     stay; an upgrade (a new token) ends the owner's hold on the key. The
//     request's outcome becomes cancelled, so a late retry of its id cannot
//     believe it holds anything;
//   - an id not seen yet gets a tombstone, so the Acquire, still on its way,
//     is refused when it arrives.
//
// When another attempt has carried the request id since (the caller retried
// elsewhere), that attempt owns the request and nothing changes.
func (t *Table) abandon(c *Command, events *[]Result) *Result {
	if c.RequestID == "" || c.Attempt == 0 {
		return invalid("request_id and attempt: required")
	}
	t.cancelWhy = LeftAbandoned
	rec := t.records[c.RequestID]
	switch {
	case rec == nil:
		rec = &record{rid: c.RequestID, op: OpAcquire, code: CodeCancelled, attempt: c.Attempt}
		t.records[rec.rid] = rec
		t.resolve(rec)
		r := rec.result()
		return &r
	case rec.op != OpAcquire || rec.attempt != c.Attempt:
	case rec.code == CodePending, rec.code == CodeOK:
		r := t.abandonRecord(rec, events)
		return &r
	}
	r := rec.result()
	r.Duplicate = true
	return &r
}

// abandonRecord ends a pending or granted Acquire whose caller is gone: the
// waiter is withdrawn, or what the grant newly took is released (see
// abandon).
func (t *Table) abandonRecord(rec *record, events *[]Result) Result {
	if rec.code == CodePending {
		return t.endWait(t.waiters[rec.rid], CodeCancelled, events)
	}
	var freed []string
	for _, k := range rec.keys {
		if l := t.holdOf(k, rec.owner); l != nil && l.token == rec.granted {
			t.free(l)
			freed = append(freed, k)
		}
	}
	if len(freed) == 0 {
		// The grant is gone already (released, expired): it was used and
		// ended, and its outcome stays what it was.
		r := rec.result()
		r.Duplicate = true
		return r
	}
	rec.code, rec.tokens, rec.deadlines, rec.count = CodeCancelled, nil, nil, len(freed)
	t.handOff(freed, events)
	return rec.result()
}

// abandonNode withdraws every waiter whose request is still owned by an
// attempt of the incarnation in c.Attempt's high 32 bits, in arrival
// order, and counts them. It releases no grant: a grant made to an
// attempt of that incarnation may have reached its caller before the node
// stopped (a follower answers a forwarded Acquire as soon as the leader
// does), and releasing a lock its holder believes it holds would break
// exclusion. Such a grant, if nobody received it, ends when it expires.
func (t *Table) abandonNode(c *Command, events *[]Result) *Result {
	inc := c.Attempt >> 32
	if inc == 0 {
		return invalid("attempt: the incarnation (high 32 bits) is required")
	}
	t.cancelWhy = LeftAbandoned
	r := &Result{Code: CodeOK}
	for _, w := range t.waitersInOrder() {
		// An earlier withdrawal's hand-off may have granted w: then it is no
		// longer waiting, and stays granted.
		if rec := t.records[w.rid]; t.waiters[w.rid] == w && rec.attempt>>32 == inc {
			t.endWait(w, CodeCancelled, events)
			r.Count++
		}
	}
	return r
}

// LockInfo describes a held key.
type LockInfo struct {
	Key string
	// Mode is how the key is held; Limit is a semaphore's limit.
	Mode  Mode
	Limit uint32
	// Owner is the exclusive holder (empty for shared and semaphore keys).
	Owner string
	// Token is the exclusive holder's token; for shared and semaphore keys
	// the highest token among the holders (the latest grant).
	Token uint64
	// Deadline is the expiry in cluster time; 0: never expires. For shared
	// and semaphore keys: when the last hold ends if nothing is refreshed
	// (0 if some hold never expires).
	Deadline int64
	// Waiters is the length of the key's queue.
	Waiters int
	// Holders lists a shared or semaphore key's holders in grant order.
	Holders []HolderInfo
}

func (t *Table) info(key string) (LockInfo, bool) {
	li := LockInfo{Key: key}
	if q := t.queues[key]; q != nil {
		li.Waiters = q.Len()
	}
	if l := t.locks[key]; l != nil {
		li.Owner, li.Token, li.Deadline = l.owner, l.token, l.t.deadline
		return li, true
	}
	g := t.groups[key]
	if g == nil {
		return LockInfo{}, false
	}
	li.Mode, li.Limit, li.Holders = g.mode, g.limit, g.holderInfos()
	never := false
	for _, h := range li.Holders {
		li.Token = max(li.Token, h.Token)
		li.Deadline = max(li.Deadline, h.Deadline)
		never = never || h.Deadline == 0
	}
	if never {
		li.Deadline = 0
	}
	return li, true
}

// Get describes the key, if it is held.
func (t *Table) Get(key string) (LockInfo, bool) {
	return t.info(key)
}

// ListOptions filters List.
type ListOptions struct {
	// Prefix keeps keys that start with it.
	Prefix string
	// ByOwner keeps only locks of Owner.
	ByOwner bool
	Owner   string
	// After keeps keys greater than it (paging).
	After string
	// Limit is the most locks returned; 0: no limit.
	Limit int
}

// List returns held locks in key order and whether more would follow. With
// ByOwner it visits only that owner's locks; otherwise it scans the table.
func (t *Table) List(o ListOptions) ([]LockInfo, bool) {
	var out []LockInfo
	keep := func(k string) {
		if strings.HasPrefix(k, o.Prefix) && k > o.After {
			li, _ := t.info(k)
			out = append(out, li)
		}
	}
	if o.ByOwner {
		for l := t.owners[o.Owner]; l != nil; l = l.next {
			keep(l.key) // one hold per owner and key: no key twice
		}
	} else {
		for k := range t.locks {
			keep(k)
		}
		for k := range t.groups {
			keep(k)
		}
	}
	slices.SortFunc(out, func(a, b LockInfo) int { return strings.Compare(a.Key, b.Key) })
	if o.Limit > 0 && len(out) > o.Limit {
		return out[:o.Limit], true
	}
	return out, false
}

// Outcome returns the remembered result of a request id.
func (t *Table) Outcome(rid string) (Result, bool) {
	rec := t.records[rid]
	if rec == nil {
		return Result{}, false
	}
	return rec.result(), true
}

// Stats counts what the table holds.
type Stats struct {
	// Locks counts holds: exclusive locks and the holders of shared and
	// semaphore keys.
	Locks, Waiters, Requests int
}

// Stats returns the table's sizes.
func (t *Table) Stats() Stats {
	return Stats{Locks: t.held(), Waiters: len(t.waiters), Requests: len(t.records)}
}

package fsm

import (
	"cmp"
	"slices"
	"strings"
)

// model is a deliberately naive lock table: slices and full scans, the
// rules of DESIGN.md section 2 written as directly as possible. The
// property test runs it beside Table and requires the same results.
type model struct {
	cfg     Config
	now     int64
	index   uint64
	version uint32
	holds   []*mHold   // every hold, exclusive, shared or semaphore, in no order
	waiters []*mWaiter // arrival order
	records map[string]*mRecord
}

// mHold is one owner's hold on one key.
type mHold struct {
	key, owner       string
	mode             Mode
	limit            uint32
	slots            []uint32 // semaphore: its permits' slots
	token            uint64
	expire, deadline int64
}

type mWaiter struct {
	id       uint64
	rid      string
	keys     []string
	ask      ask
	expire   int64
	deadline int64
}

type mRecord struct {
	res     Result
	fp      uint64
	at      int64
	attempt uint64 // the latest attempt of an Acquire
	granted uint64 // the index that granted an Acquire (version 2)
}

func newModel(cfg Config) *model {
	return &model{cfg: cfg, version: Version1, records: map[string]*mRecord{}}
}

func (m *model) holdsOn(k string) []*mHold {
	var out []*mHold
	for _, h := range m.holds {
		if h.key == k {
			out = append(out, h)
		}
	}
	return out
}

func (m *model) holdOf(k, owner string) *mHold {
	for _, h := range m.holds {
		if h.key == k && h.owner == owner {
			return h
		}
	}
	return nil
}

func (m *model) drop(h *mHold) {
	m.holds = slices.DeleteFunc(m.holds, func(x *mHold) bool { return x == h })
}

// wrongMode: the first key whose holders (or, with none, first waiter) are
// of another use than a, or whose semaphore hold by a's owner has other
// permits.
func (m *model) wrongMode(keys []string, a ask) string {
	for _, k := range keys {
		sem, limit, used := false, uint32(0), false
		if hs := m.holdsOn(k); len(hs) > 0 {
			sem, limit, used = hs[0].mode == ModeSemaphore, hs[0].limit, true
		} else {
			for _, w := range m.waiters {
				if slices.Contains(w.keys, k) {
					sem, limit, used = w.ask.mode == ModeSemaphore, w.ask.limit, true
					break
				}
			}
		}
		if used && (sem != (a.mode == ModeSemaphore) || (sem && limit != a.limit)) {
			return k
		}
		if h := m.holdOf(k, a.owner); a.owner != "" && h != nil && a.mode == ModeSemaphore && len(h.slots) != int(a.permits) {
			return k
		}
	}
	return ""
}

func (m *model) apply(index uint64, c *Command) *Result {
	m.index = index
	m.now = max(m.now, c.Time)
	var events []Result
	m.expire(&events)
	for rid, rec := range m.records {
		if rec.res.Code != CodePending && rec.at+int64(m.cfg.RequestTTL) <= m.now {
			delete(m.records, rid)
		}
	}
	var r *Result
	if c.Version() > m.version && c.Op != OpSetVersion {
		r = &Result{Code: CodeInvalid}
	} else if c.Op != OpAcquire && (c.Mode != 0 || c.Permits != 0 || c.Limit != 0) {
		r = &Result{Code: CodeInvalid}
	} else if c.Op == OpAcquire && ValidateMode(c.Mode, c.Permits, c.Limit, c.Owner) != nil {
		r = &Result{Code: CodeInvalid}
	} else {
		r = m.do(c, &events)
	}
	r.Op, r.RequestID, r.Now, r.Index, r.Events = c.Op, c.RequestID, m.now, index, events
	return r
}

func (m *model) do(c *Command, events *[]Result) *Result {
	var keys []string
	switch c.Op {
	case OpTick:
		return &Result{}
	case OpSetVersion:
		m.version = max(m.version, c.ClusterVersion)
		return &Result{Count: int(m.version)}
	case OpAbandon:
		return m.abandon(c, events)
	case OpAbandonNode:
		return m.abandonNode(c, events)
	case OpCancelWait:
		if len(c.Keys) > 0 {
			return m.cancelWithin(c, events)
		}
		return m.cancel(c.RequestID, events)
	default:
		if c.Op != OpReleaseAll || len(c.Keys) > 0 {
			keys, _ = NormalizeKeys(c.Keys) // the generator makes valid commands only
		}
	}
	fp := c.fingerprint(keys)
	if rec := m.records[c.RequestID]; c.RequestID != "" && rec != nil {
		if rec.res.Op == OpAcquire && rec.res.Code == CodeCancelled && len(rec.res.Keys) == 0 && c.Op == OpAcquire {
			r := rec.res
			r.Duplicate = true
			return &r
		}
		if rec.res.Op != c.Op || rec.fp != fp {
			return &Result{Code: CodeInvalid}
		}
		if c.Attempt != 0 && uint8(c.Attempt>>24) >= uint8(rec.attempt>>24) {
			rec.attempt = c.Attempt
		}
		r := rec.res
		r.Duplicate = true
		return &r
	}
	r := &Result{Op: c.Op, Keys: keys, Owner: c.Owner, RequestID: c.RequestID}
	a := ask{owner: c.Owner, mode: c.Mode, permits: c.Permits, limit: c.Limit}
	switch c.Op {
	case OpAcquire:
		if k := m.wrongMode(keys, a); k != "" {
			return &Result{Code: CodeWrongMode, Key: k} // not remembered
		}
		if busy := m.blocked(keys, a, nil); busy == "" {
			r.Tokens, r.Deadlines, r.Slots = m.grant(keys, a, int64(c.Expire))
		} else if c.Wait == 0 {
			r.Code, r.Key = CodeBusy, busy
		} else {
			m.waiters = append(m.waiters, &mWaiter{id: m.index, rid: c.RequestID, keys: keys, ask: a, expire: int64(c.Expire), deadline: m.now + int64(c.Wait)})
			r.Code = CodePending
		}
	case OpRelease:
		r.Released = true
		if c.HasToken {
			for _, k := range keys {
				if h := m.holdOf(k, c.Owner); h == nil || h.token != c.Token {
					r.Code, r.Key, r.Released = CodeNotHeld, k, false
					break
				}
			}
		}
		if r.Code == CodeOK {
			for _, k := range keys {
				if h := m.holdOf(k, c.Owner); h != nil {
					m.drop(h)
				} else {
					r.Released = false
				}
			}
		}
	case OpReleaseAll:
		for _, h := range slices.Clone(m.holds) {
			inPrefixes := len(keys) == 0
			for _, p := range keys {
				inPrefixes = inPrefixes || strings.HasPrefix(h.key, p)
			}
			if h.owner == c.Owner && inPrefixes {
				m.drop(h)
				r.Count++
			}
		}
		r.Keys = nil
	case OpForceRelease:
		for _, k := range keys {
			if hs := m.holdsOn(k); len(hs) > 0 {
				for _, h := range hs {
					m.drop(h)
				}
				r.Count++
			}
		}
	case OpRefresh:
		for _, k := range keys {
			if m.holdOf(k, c.Owner) == nil {
				r.Code, r.Key = CodeNotHeld, k
				break
			}
		}
		if r.Code == CodeOK {
			for _, k := range keys {
				l := m.holdOf(k, c.Owner)
				if c.Expire > 0 {
					l.expire = int64(c.Expire)
				}
				l.deadline = 0
				if l.expire > 0 {
					l.deadline = m.now + l.expire
				}
				r.Tokens = append(r.Tokens, l.token)
				r.Deadlines = append(r.Deadlines, l.deadline)
			}
		}
	}
	m.grantAll(events)
	if c.RequestID != "" {
		rec := &mRecord{res: *r, fp: fp, at: m.now, attempt: c.Attempt}
		if c.Op == OpAcquire && r.Code == CodeOK && m.version >= Version2 {
			rec.granted = m.index
		}
		m.records[c.RequestID] = rec
	}
	return r
}

func (m *model) abandon(c *Command, events *[]Result) *Result {
	if c.RequestID == "" || c.Attempt == 0 {
		return &Result{Code: CodeInvalid}
	}
	rec := m.records[c.RequestID]
	if rec == nil {
		m.records[c.RequestID] = &mRecord{res: Result{Op: OpAcquire, Code: CodeCancelled, RequestID: c.RequestID}, at: m.now, attempt: c.Attempt}
		r := m.records[c.RequestID].res
		return &r
	}
	if rec.res.Op == OpAcquire && rec.attempt == c.Attempt {
		switch rec.res.Code {
		case CodePending:
			return m.cancel(c.RequestID, events)
		case CodeOK:
			n := 0
			for _, k := range rec.res.Keys {
				if h := m.holdOf(k, rec.res.Owner); h != nil && h.token == rec.granted {
					m.drop(h)
					n++
				}
			}
			if n == 0 { // the grant is gone already
				break
			}
			rec.res.Code, rec.res.Tokens, rec.res.Deadlines, rec.res.Slots, rec.res.Count = CodeCancelled, nil, nil, nil, n
			m.grantAll(events)
			r := rec.res
			return &r
		}
	}
	r := rec.res
	r.Duplicate = true
	return &r
}

func (m *model) abandonNode(c *Command, events *[]Result) *Result {
	inc := c.Attempt >> 32
	if inc == 0 {
		return &Result{Code: CodeInvalid}
	}
	var rids []string
	for _, w := range m.waiters { // arrival order
		if m.records[w.rid].attempt>>32 == inc {
			rids = append(rids, w.rid)
		}
	}
	r := &Result{}
	for _, rid := range rids {
		if m.records[rid].res.Code == CodePending {
			m.cancel(rid, events)
			r.Count++
		}
	}
	return r
}

func (m *model) cancelWithin(c *Command, events *[]Result) *Result {
	rec := m.records[c.RequestID]
	if rec == nil {
		return &Result{Code: CodeUnknown}
	}
	for _, k := range rec.res.Keys {
		if !slices.ContainsFunc(c.Keys, func(p string) bool { return strings.HasPrefix(k, p) }) {
			return &Result{Code: CodeDenied, Key: k}
		}
	}
	return m.cancel(c.RequestID, events)
}

// blocked returns the first key in the way of a (or waiter w), or "". On
// each key: the owner's own hold either covers a (re-entrant: exclusive
// covers shared too; shared covers shared; an upgrade when it is the only
// hold; a semaphore hold of the same permits) and the queue does not
// matter, or it blocks; other holds must be compatible (read-write: only
// shared with shared; a semaphore: same limit and permits left) and then
// nobody may wait first.
func (m *model) blocked(keys []string, a ask, w *mWaiter) string {
	for _, k := range keys {
		hs := m.holdsOn(k)
		if mine := m.holdOf(k, a.owner); a.owner != "" && mine != nil {
			switch {
			case mine.mode == ModeExclusive && a.mode != ModeSemaphore,
				mine.mode == ModeShared && a.mode == ModeShared,
				mine.mode == ModeShared && a.mode == ModeExclusive && len(hs) == 1,
				mine.mode == ModeSemaphore && a.mode == ModeSemaphore && mine.limit == a.limit && len(mine.slots) == int(a.permits):
				continue
			}
			return k
		}
		var used uint32
		for _, h := range hs {
			switch {
			case h.mode == ModeExclusive, a.mode == ModeExclusive,
				(h.mode == ModeSemaphore) != (a.mode == ModeSemaphore),
				h.mode == ModeSemaphore && h.limit != a.limit:
				return k
			}
			used += uint32(len(h.slots))
		}
		if a.mode == ModeSemaphore && used+a.permits > a.limit {
			return k
		}
		for _, o := range m.waiters {
			if slices.Contains(o.keys, k) {
				if o != w {
					return k
				}
				break
			}
		}
	}
	return ""
}

func (m *model) grant(keys []string, a ask, expire int64) ([]uint64, []int64, []uint32) {
	var tokens []uint64
	var deadlines []int64
	var slots []uint32
	for _, k := range keys {
		var h *mHold
		if a.owner != "" {
			h = m.holdOf(k, a.owner)
		}
		if h != nil && h.mode == ModeShared && a.mode == ModeExclusive {
			m.drop(h) // upgrade: a new exclusive hold, a new token
			h = nil
		}
		if h == nil {
			h = &mHold{key: k, owner: a.owner, mode: a.mode, limit: a.limit, token: m.index}
			for s := uint32(0); len(h.slots) < int(a.permits); s++ {
				if !m.slotTaken(k, s) {
					h.slots = append(h.slots, s)
				}
			}
			m.holds = append(m.holds, h)
		}
		h.expire, h.deadline = expire, 0
		if expire > 0 {
			h.deadline = m.now + expire
		}
		tokens = append(tokens, h.token)
		deadlines = append(deadlines, h.deadline)
		if a.mode == ModeSemaphore {
			slots = append(slots, h.slots...)
		}
	}
	return tokens, deadlines, slots
}

func (m *model) slotTaken(k string, s uint32) bool {
	for _, h := range m.holdsOn(k) {
		if slices.Contains(h.slots, s) {
			return true
		}
	}
	return false
}

// grantAll grants waiters, oldest first, until none can be granted.
func (m *model) grantAll(events *[]Result) {
	for again := true; again; {
		again = false
		for i, w := range m.waiters {
			if m.blocked(w.keys, w.ask, w) != "" {
				continue
			}
			m.waiters = slices.Delete(m.waiters, i, i+1)
			rec := m.records[w.rid]
			rec.res.Tokens, rec.res.Deadlines, rec.res.Slots = m.grant(w.keys, w.ask, w.expire)
			rec.res.Code, rec.at = CodeOK, m.now
			if m.version >= Version2 {
				rec.granted = m.index
			}
			*events = append(*events, rec.res)
			again = true
			break
		}
	}
}

func (m *model) endWait(i int, code Code, events *[]Result) Result {
	w := m.waiters[i]
	m.waiters = slices.Delete(m.waiters, i, i+1)
	rec := m.records[w.rid]
	rec.res.Code, rec.at = code, m.now
	*events = append(*events, rec.res)
	m.grantAll(events)
	return rec.res
}

func (m *model) cancel(rid string, events *[]Result) *Result {
	for i, w := range m.waiters {
		if w.rid == rid {
			r := m.endWait(i, CodeCancelled, events)
			return &r
		}
	}
	if rec := m.records[rid]; rec != nil {
		r := rec.res
		r.Duplicate = true
		return &r
	}
	m.records[rid] = &mRecord{res: Result{Op: OpAcquire, Code: CodeCancelled, RequestID: rid}, at: m.now}
	r := m.records[rid].res
	return &r
}

// expire ends overdue locks and waits one at a time in (deadline, locks
// first, key or arrival) order, granting after each.
func (m *model) expire(events *[]Result) {
	type due struct {
		deadline int64
		isWait   bool
		key      string
		owner    string
		id       uint64
	}
	for {
		var next *due
		consider := func(d due) {
			if d.deadline == 0 || d.deadline > m.now {
				return
			}
			if next == nil || cmp.Or(cmp.Compare(d.deadline, next.deadline), compareBool(d.isWait, next.isWait),
				cmp.Compare(d.key, next.key), cmp.Compare(d.owner, next.owner), cmp.Compare(d.id, next.id)) < 0 {
				next = &d
			}
		}
		for _, h := range m.holds {
			consider(due{deadline: h.deadline, key: h.key, owner: h.owner})
		}
		for _, w := range m.waiters {
			consider(due{deadline: w.deadline, isWait: true, id: w.id})
		}
		if next == nil {
			return
		}
		if !next.isWait {
			m.drop(m.holdOf(next.key, next.owner))
			m.grantAll(events)
			continue
		}
		for i, w := range m.waiters {
			if w.id == next.id {
				m.endWait(i, CodeTimedOut, events)
				break
			}
		}
	}
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

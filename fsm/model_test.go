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
	locks   map[string]*mLock
	waiters []*mWaiter // arrival order
	records map[string]*mRecord
}

type mLock struct {
	owner            string
	token            uint64
	expire, deadline int64
}

type mWaiter struct {
	id       uint64
	rid      string
	keys     []string
	owner    string
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
	return &model{cfg: cfg, version: Version1, locks: map[string]*mLock{}, records: map[string]*mRecord{}}
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
		if c.Attempt != 0 {
			rec.attempt = c.Attempt
		}
		r := rec.res
		r.Duplicate = true
		return &r
	}
	r := &Result{Op: c.Op, Keys: keys, Owner: c.Owner, RequestID: c.RequestID}
	switch c.Op {
	case OpAcquire:
		if busy := m.blocked(keys, c.Owner, nil); busy == "" {
			r.Tokens, r.Deadlines = m.grant(keys, c.Owner, int64(c.Expire))
		} else if c.Wait == 0 {
			r.Code, r.Key = CodeBusy, busy
		} else {
			m.waiters = append(m.waiters, &mWaiter{id: m.index, rid: c.RequestID, keys: keys, owner: c.Owner, expire: int64(c.Expire), deadline: m.now + int64(c.Wait)})
			r.Code = CodePending
		}
	case OpRelease:
		r.Released = true
		if c.HasToken {
			for _, k := range keys {
				if l := m.locks[k]; l == nil || l.owner != c.Owner || l.token != c.Token {
					r.Code, r.Key, r.Released = CodeNotHeld, k, false
					break
				}
			}
		}
		if r.Code == CodeOK {
			for _, k := range keys {
				if l := m.locks[k]; l != nil && l.owner == c.Owner {
					delete(m.locks, k)
				} else {
					r.Released = false
				}
			}
		}
	case OpReleaseAll, OpForceRelease:
		for k, l := range m.locks {
			inPrefixes := len(keys) == 0
			for _, p := range keys {
				inPrefixes = inPrefixes || strings.HasPrefix(k, p)
			}
			if (c.Op == OpReleaseAll && l.owner == c.Owner && inPrefixes) || (c.Op == OpForceRelease && slices.Contains(keys, k)) {
				delete(m.locks, k)
				r.Count++
			}
		}
		if c.Op == OpReleaseAll {
			r.Keys = nil
		}
	case OpRefresh:
		for _, k := range keys {
			if l := m.locks[k]; l == nil || l.owner != c.Owner {
				r.Code, r.Key = CodeNotHeld, k
				break
			}
		}
		if r.Code == CodeOK {
			for _, k := range keys {
				l := m.locks[k]
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
				if l := m.locks[k]; l != nil && l.owner == rec.res.Owner && l.token == rec.granted {
					delete(m.locks, k)
					n++
				}
			}
			rec.res.Code, rec.res.Tokens, rec.res.Deadlines, rec.res.Count = CodeCancelled, nil, nil, n
			m.grantAll(events)
			r := rec.res
			return &r
		}
	}
	r := rec.res
	r.Duplicate = true
	return &r
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

// blocked returns the first key in the way of owner (or waiter w), or "".
func (m *model) blocked(keys []string, owner string, w *mWaiter) string {
	for _, k := range keys {
		if l := m.locks[k]; l != nil {
			if owner == "" || l.owner != owner {
				return k
			}
			continue
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

func (m *model) grant(keys []string, owner string, expire int64) ([]uint64, []int64) {
	var tokens []uint64
	var deadlines []int64
	for _, k := range keys {
		l := m.locks[k]
		if l == nil {
			l = &mLock{owner: owner, token: m.index}
			m.locks[k] = l
		}
		l.expire, l.deadline = expire, 0
		if expire > 0 {
			l.deadline = m.now + expire
		}
		tokens = append(tokens, l.token)
		deadlines = append(deadlines, l.deadline)
	}
	return tokens, deadlines
}

// grantAll grants waiters, oldest first, until none can be granted.
func (m *model) grantAll(events *[]Result) {
	for again := true; again; {
		again = false
		for i, w := range m.waiters {
			if m.blocked(w.keys, w.owner, w) != "" {
				continue
			}
			m.waiters = slices.Delete(m.waiters, i, i+1)
			rec := m.records[w.rid]
			rec.res.Tokens, rec.res.Deadlines = m.grant(w.keys, w.owner, w.expire)
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
		id       uint64
	}
	for {
		var next *due
		consider := func(d due) {
			if d.deadline == 0 || d.deadline > m.now {
				return
			}
			if next == nil || cmp.Or(cmp.Compare(d.deadline, next.deadline), compareBool(d.isWait, next.isWait),
				cmp.Compare(d.key, next.key), cmp.Compare(d.id, next.id)) < 0 {
				next = &d
			}
		}
		for k, l := range m.locks {
			consider(due{deadline: l.deadline, key: k})
		}
		for _, w := range m.waiters {
			consider(due{deadline: w.deadline, isWait: true, id: w.id})
		}
		if next == nil {
			return
		}
		if !next.isWait {
			delete(m.locks, next.key)
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

package checker

import (
	"slices"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// holding is the span during which a client believed it held a key: from
// the return of its acquire to the earlier of its release's invocation and
// its conservative deadline (extended by refreshes that returned ok before
// it passed). end is history.Infinity for a lock that never expires and was
// never released.
type holding struct {
	key     string
	owner   string
	client  int
	acquire int // op id
	token   uint64
	start   int64
	end     int64
}

// holdings computes every believed holding of the history: one per acquire
// the client itself saw succeed. missing counts deadlines the recorder left
// out on locks that expire (Invoke+Expire is used instead).
func holdings(ops []history.Op) (hs []holding, missing int) {
	type ownerKey struct{ key, owner string }
	later := make(map[ownerKey][]*history.Op) // refreshes and releases by owner, in return order
	for i := range ops {
		op := &ops[i]
		if op.Kind == history.KindRefresh || op.Kind == history.KindRelease {
			k := ownerKey{op.Key, op.Owner}
			later[k] = append(later[k], op)
		}
	}
	for _, l := range later {
		slices.SortFunc(l, func(a, b *history.Op) int { return cmpInt64(a.Return, b.Return) })
	}
	for i := range ops {
		acq := &ops[i]
		if acq.Kind != history.KindAcquire || !acq.SeenOK() {
			continue
		}
		ttl := int64(acq.Expire)
		deadline, m := believedDeadline(acq, ttl)
		missing += m
		end := history.Infinity
		for _, op := range later[ownerKey{acq.Key, acq.Owner}] {
			if op.Invoke < acq.Return {
				continue // not part of this holding (owners are unique; be safe)
			}
			switch op.Kind {
			case history.KindRelease:
				end = min(end, op.Invoke)
			case history.KindRefresh:
				if !op.SeenOK() || op.Return >= deadline {
					continue // failed, or returned after the client had stopped
				}
				if op.Expire > 0 {
					ttl = int64(op.Expire)
				}
				deadline, m = believedDeadline(op, ttl)
				missing += m
			}
		}
		hs = append(hs, holding{
			key: acq.Key, owner: acq.Owner, client: acq.Client, acquire: acq.ID, token: acq.Token,
			start: acq.Return, end: min(end, deadline),
		})
	}
	return hs, missing
}

// believedDeadline is the conservative deadline an ok acquire or refresh gave
// its client: Deadline, or Infinity for a lock that never expires (ttl 0). If
// the recorder left Deadline out on an expiring lock, Invoke+ttl is used (the
// latest the client could have believed, without its safety margin) and
// missing is 1.
func believedDeadline(op *history.Op, ttl int64) (deadline int64, missing int) {
	switch {
	case op.Deadline != 0:
		return op.Deadline, 0
	case ttl == 0:
		return history.Infinity, 0
	default:
		return leaseEnd(op.Invoke, ttl), 1
	}
}

// MutualExclusion checks DESIGN.md section 8, promise 2: per key, the
// intervals during which clients believed they held the lock, [acquire
// Return, min(release Invoke, conservative deadline extended by refreshes
// that returned ok before it)], never overlap for two different owners. Only
// acquires the client saw succeed count: a grant resolved after the client
// gave up was never used.
func MutualExclusion(ops []history.Op) Result {
	rep := newReport("mutual-exclusion")
	hs, missing := holdings(ops)
	rep.stats["holdings"] = len(hs)
	if missing > 0 {
		rep.stats["deadlines_missing"] = missing
	}
	byKey := make(map[string][]holding)
	for _, h := range hs {
		byKey[h.key] = append(byKey[h.key], h)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		rep.stats["keys"]++
		list := byKey[key]
		slices.SortFunc(list, func(a, b holding) int { return cmpInt64(a.start, b.start) })
		// Sweep in start order, keeping the holdings still running; each new
		// one must not start before any running one of another owner ends.
		var running []*holding
		for i := range list {
			h := &list[i]
			if h.end <= h.start {
				continue // the deadline passed before the acquire returned: never held
			}
			running = slices.DeleteFunc(running, func(r *holding) bool { return r.end <= h.start })
			for _, r := range running {
				if r.owner != h.owner {
					rep.problemf("key %q: %s and %s held it at the same time (%s..%s)",
						key, r.describe(), h.describe(), history.FormatTime(h.start), history.FormatTime(min(h.end, r.end)))
				}
			}
			running = append(running, h)
		}
	}
	return rep.result()
}

func (h *holding) describe() string {
	return "client " + itoa(h.client) + " (owner " + h.owner + ", acquire op " + itoa(h.acquire) + ", token " + utoa(h.token) +
		", held " + history.FormatTime(h.start) + ".." + history.FormatTime(h.end) + ")"
}

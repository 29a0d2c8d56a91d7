package checker

import (
	"slices"
	"sort"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Keys with modes (shared and semaphore holds, issue 18) have their own
// checker, Modes; the exclusive-lock checkers (linearizable,
// mutual-exclusion, the write part of fencing) take the other keys only
// (PlainOps), and the journal part of fencing lets the holders one entry
// grants on such a key share its token.

// ModeKeys returns the keys that any operation used with a mode.
func ModeKeys(ops []history.Op) map[string]bool {
	keys := map[string]bool{}
	for i := range ops {
		if ops[i].Mode != "" {
			keys[ops[i].Key] = true
		}
	}
	return keys
}

// PlainOps returns the operations on keys that no operation used with a
// mode: the plain exclusive locks.
func PlainOps(ops []history.Op) []history.Op {
	modes := ModeKeys(ops)
	return slices.DeleteFunc(slices.Clone(ops), func(op history.Op) bool { return modes[op.Key] })
}

// Modes checks the promises of shared and semaphore holds, on the keys
// used with a mode:
//
//	(a) by the clients' conservative deadlines, a semaphore key never has
//	    more permits held at once than its limit, and holdings that run at
//	    once have distinct slots;
//	(b) on a read-write key, an exclusive holding never overlaps another
//	    owner's holding, shared or exclusive;
//	(c) every write the fenced resource accepted came from a current
//	    holder: its token (and slots) were granted to its client on that
//	    key, and no conflicting write with a higher token (any after an
//	    exclusive one; an exclusive one after any; a semaphore write that
//	    shares a slot) had been accepted before it was invoked; and every
//	    rejected write was rejected because such a write had been offered
//	    before it returned (otherwise the resource is broken and (c) proves
//	    nothing).
func Modes(ops []history.Op) Result {
	rep := newReport("modes")
	modes := ModeKeys(ops)
	var mine []history.Op
	for _, op := range ops {
		if modes[op.Key] {
			mine = append(mine, op)
		}
	}
	rep.stats["keys"] = len(modes)
	checkModeHoldings(rep, mine)
	checkModeWrites(rep, mine)
	return rep.result()
}

// checkModeHoldings is parts (a) and (b).
func checkModeHoldings(rep *report, ops []history.Op) {
	acquires := map[int]*history.Op{}
	for i := range ops {
		acquires[ops[i].ID] = &ops[i]
	}
	hs, missing := holdings(ops)
	if missing > 0 {
		rep.stats["deadlines_missing"] = missing
	}
	byKey := map[string][]holding{}
	for _, h := range hs {
		byKey[h.key] = append(byKey[h.key], h)
	}
	for _, key := range sortedKeys(byKey) {
		list := byKey[key]
		slices.SortFunc(list, func(a, b holding) int { return cmpInt64(a.start, b.start) })
		var running []*holding
		for i := range list {
			h := &list[i]
			if h.end <= h.start {
				continue // the deadline passed before the acquire returned: never held
			}
			rep.stats["holdings"]++
			running = slices.DeleteFunc(running, func(r *holding) bool { return r.end <= h.start })
			op := acquires[h.acquire]
			permits, slots := len(op.Slots), map[uint32]bool{}
			for _, s := range op.Slots {
				slots[s] = true
			}
			for _, r := range running {
				rop := acquires[r.acquire]
				switch {
				case r.owner == h.owner:
				case op.Mode == history.ModeSemaphore:
					permits += len(rop.Slots)
					for _, s := range rop.Slots {
						if slots[s] {
							rep.problemf("key %q: slot %d held by %s and %s at once", key, s, r.describe(), h.describe())
						}
						slots[s] = true
					}
				case op.Mode == history.ModeExclusive || rop.Mode == history.ModeExclusive:
					rep.problemf("key %q: %s (%s) and %s (%s) held it at the same time (%s..%s)", key,
						r.describe(), rop.Mode, h.describe(), op.Mode, history.FormatTime(h.start), history.FormatTime(min(h.end, r.end)))
				}
			}
			if op.Mode == history.ModeSemaphore {
				rep.stats["semaphore_holdings"]++
				if permits > op.Limit {
					rep.problemf("key %q: %d permits held at once from %s (%s joined), limit %d", key, permits, history.FormatTime(h.start), h.describe(), op.Limit)
				}
			} else if op.Mode == history.ModeShared {
				rep.stats["shared_holdings"]++
			}
			running = append(running, h)
		}
	}
}

// modeConflict tells whether a write under later, with a higher token,
// must fence out a write under w (the rule of fsm/DESIGN.md, "Modes").
func modeConflict(w, later *history.Op) bool {
	if later.Token <= w.Token {
		return false
	}
	if w.Mode == history.ModeExclusive || later.Mode == history.ModeExclusive {
		return true
	}
	return slices.ContainsFunc(later.Slots, func(s uint32) bool { return slices.Contains(w.Slots, s) })
}

// checkModeWrites is part (c).
func checkModeWrites(rep *report, ops []history.Op) {
	granted := grantedTo(ops)
	byKey := map[string][]*history.Op{}
	for i := range ops {
		if op := &ops[i]; op.Kind == history.KindWrite {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	for _, key := range sortedKeys(byKey) {
		writes := byKey[key]
		var accepted, offered []*history.Op
		for _, w := range writes {
			if w.Outcome != history.OutcomeFail {
				offered = append(offered, w)
			}
			if w.Outcome != history.OutcomeOK {
				continue
			}
			accepted = append(accepted, w)
			rep.stats["writes_accepted"]++
			if g, ok := granted[grantKey{key, w.Client, w.Token}]; !ok || !slices.Contains(g.owners, w.Owner) || !slices.Equal(g.slots[w.Owner], w.Slots) {
				rep.problemf("key %q: the resource accepted write op %d (client %d, owner %q, token %d, slots %v) that was not granted to that client and owner",
					key, w.ID, w.Client, w.Owner, w.Token, w.Slots)
			}
		}
		slices.SortFunc(accepted, func(a, b *history.Op) int { return cmpInt64(a.Return, b.Return) })
		for _, w := range accepted {
			// The accepted writes that returned before w was invoked.
			n := sort.Search(len(accepted), func(i int) bool { return accepted[i].Return >= w.Invoke })
			for _, v := range accepted[:n] {
				if modeConflict(w, v) {
					rep.problemf("key %q: the resource accepted stale write op %d (client %d, %s, token %d, slots %v) invoked at %s after write op %d (client %d, %s, token %d, slots %v) had been accepted at %s",
						key, w.ID, w.Client, w.Mode, w.Token, w.Slots, history.FormatTime(w.Invoke), v.ID, v.Client, v.Mode, v.Token, v.Slots, history.FormatTime(v.Return))
				}
			}
		}
		for _, w := range writes {
			if w.Outcome != history.OutcomeFail {
				continue
			}
			rep.stats["writes_rejected"]++
			if !slices.ContainsFunc(offered, func(v *history.Op) bool { return v.Invoke <= w.Return && modeConflict(w, v) }) {
				rep.problemf("key %q: the resource rejected write op %d (client %d, %s, token %d) though no conflicting higher token had been offered before it returned: the fenced resource is broken",
					key, w.ID, w.Client, w.Mode, w.Token)
			}
		}
	}
}

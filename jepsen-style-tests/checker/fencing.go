package checker

import (
	"slices"
	"sort"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Fencing checks DESIGN.md section 8, promise 3:
//
//	(a) in every node's journal, per key, the tokens of grants (an acquire
//	    entry with code ok that is not a duplicate, and every hand-off event
//	    with code ok) strictly increase in index order; a grant that keeps
//	    the holder's token is allowed only for the same owner (re-entrancy);
//	(b) of two acquires of a key that succeeded, if one returned before the
//	    other was invoked, the first has the lower token (a resolved acquire
//	    counts with an unknown return, so only as the later one);
//	(c) the fenced resource never accepted a stale write: of two accepted
//	    writes of a key, if one returned before the other was invoked, the
//	    second's token is not lower; every accepted write carries a token its
//	    client (its owner, if recorded) was granted on that key; and every
//	    rejected write was rejected because a higher token had been offered
//	    before it returned (otherwise the resource itself is broken and (c)
//	    proves nothing).
//
// On keys used with a mode (ModeKeys), (a) lets the holders one entry
// grants share its token (a read generation, or semaphore holders handed
// their permits together), and (c) is the Modes checker's.
func Fencing(ops []history.Op, journals map[string][]history.Entry) Result {
	rep := newReport("fencing")
	checkJournalTokens(rep, journals, ModeKeys(ops))
	checkAcquireTokens(rep, ops)
	checkWrites(rep, PlainOps(ops))
	return rep.result()
}

// checkJournalTokens is part (a).
func checkJournalTokens(rep *report, journals map[string][]history.Entry, modeKeys map[string]bool) {
	for _, node := range sortedNodes(journals) {
		rep.stats["journals"]++
		last := make(map[string]history.Grant)
		for _, e := range history.Applied(journals[node]) {
			for _, g := range e.Grants() {
				rep.stats["grants"]++
				if g.Token == 0 {
					rep.problemf("node %s: index %d granted key %q to %s without a token", node, g.Index, g.Key, g.Owner)
					continue
				}
				prev, seen := last[g.Key]
				switch {
				case !seen || g.Token > prev.Token:
				case g.Token == prev.Token && g.Owner == prev.Owner && g.Owner != "":
					rep.stats["reentrant_grants"]++
				case g.Token == prev.Token && g.Index == prev.Index && modeKeys[g.Key]:
					rep.stats["grants_sharing_an_entry"]++
				default:
					rep.problemf("node %s: key %q: token %d granted to %s at index %d (%s) is not above token %d granted to %s at index %d (%s)",
						node, g.Key, g.Token, g.Owner, g.Index, grantHow(g), prev.Token, prev.Owner, prev.Index, grantHow(prev))
				}
				last[g.Key] = g
			}
		}
	}
}

func grantHow(g history.Grant) string {
	how := "direct"
	if g.HandOff {
		how = "hand-off"
	}
	if g.RequestID != "" {
		how += ", rid " + g.RequestID
	}
	return how
}

// checkAcquireTokens is part (b).
func checkAcquireTokens(rep *report, ops []history.Op) {
	byKey := make(map[string][]*history.Op)
	for i := range ops {
		op := &ops[i]
		if op.Kind == history.KindAcquire && op.Acknowledged() {
			if op.Token == 0 {
				rep.problemf("acquire op %d (client %d, key %q) succeeded without a token", op.ID, op.Client, op.Key)
				continue
			}
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	for _, key := range sortedKeys(byKey) {
		list := byKey[key]
		rep.stats["acquires"] += len(list)
		forEachEarlier(list, func(later, best *history.Op) {
			if best.Token >= later.Token {
				rep.problemf("key %q: acquire op %d (client %d, token %d) was invoked at %s, after acquire op %d (client %d, token %d) returned at %s, but did not get a higher token",
					key, later.ID, later.Client, later.Token, history.FormatTime(later.Invoke),
					best.ID, best.Client, best.Token, history.FormatTime(best.Return))
			}
		})
	}
}

// forEachEarlier calls f for each op with the op of highest token among
// those that returned (EffectiveReturn) before it was invoked, if any.
func forEachEarlier(list []*history.Op, f func(later, best *history.Op)) {
	byRet := slices.Clone(list)
	slices.SortFunc(byRet, func(a, b *history.Op) int { return cmpInt64(a.EffectiveReturn(), b.EffectiveReturn()) })
	// best[i]: the op of highest token among byRet[:i+1].
	best := make([]*history.Op, len(byRet))
	for i, op := range byRet {
		best[i] = op
		if i > 0 && best[i-1].Token >= op.Token {
			best[i] = best[i-1]
		}
	}
	for _, op := range list {
		n := sort.Search(len(byRet), func(i int) bool { return byRet[i].EffectiveReturn() >= op.Invoke })
		if n > 0 {
			f(op, best[n-1])
		}
	}
}

// grantKey names a grant a client saw: key, client and token.
type grantKey struct {
	key    string
	client int
	token  uint64
}

// grants are the owners (and, for semaphores, each owner's slots) that a
// client saw granted one token on one key.
type grants struct {
	owners []string
	slots  map[string][]uint32
}

// grantedTo collects the grants clients saw (acquires they saw succeed).
func grantedTo(ops []history.Op) map[grantKey]grants {
	granted := make(map[grantKey]grants)
	for i := range ops {
		if op := &ops[i]; op.Kind == history.KindAcquire && op.SeenOK() {
			k := grantKey{op.Key, op.Client, op.Token}
			g := granted[k]
			if g.slots == nil {
				g.slots = map[string][]uint32{}
			}
			g.owners, g.slots[op.Owner] = append(g.owners, op.Owner), op.Slots
			granted[k] = g
		}
	}
	return granted
}

// checkWrites is part (c).
func checkWrites(rep *report, ops []history.Op) {
	granted := grantedTo(ops)
	byKey := make(map[string][]*history.Op)
	for i := range ops {
		if op := &ops[i]; op.Kind == history.KindWrite {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	for _, key := range sortedKeys(byKey) {
		var accepted, offered []*history.Op // offered: accepted or unknown
		for _, w := range byKey[key] {
			switch w.Outcome {
			case history.OutcomeOK:
				accepted = append(accepted, w)
				offered = append(offered, w)
				rep.stats["writes_accepted"]++
				g, ok := granted[grantKey{key, w.Client, w.Token}]
				if !ok || (w.Owner != "" && !slices.Contains(g.owners, w.Owner)) {
					rep.problemf("key %q: the resource accepted write op %d (client %d, owner %q, token %d) but that client was never granted token %d on it (as that owner)",
						key, w.ID, w.Client, w.Owner, w.Token, w.Token)
				}
			case history.OutcomeUnknown:
				offered = append(offered, w)
				rep.stats["writes_unknown"]++
			default:
				rep.stats["writes_rejected"]++
			}
		}
		forEachEarlier(accepted, func(later, best *history.Op) {
			if later.Token < best.Token {
				rep.problemf("key %q: the resource accepted stale write op %d (client %d, token %d) invoked at %s after write op %d (client %d, token %d) had been accepted at %s",
					key, later.ID, later.Client, later.Token, history.FormatTime(later.Invoke),
					best.ID, best.Client, best.Token, history.FormatTime(best.Return))
			}
		})
		// A rejection needs a higher token offered (invoked) before it returned.
		slices.SortFunc(offered, func(a, b *history.Op) int { return cmpInt64(a.Invoke, b.Invoke) })
		highest := make([]uint64, len(offered)) // highest token among offered[:i+1]
		for i, v := range offered {
			highest[i] = v.Token
			if i > 0 {
				highest[i] = max(highest[i], highest[i-1])
			}
		}
		for _, w := range byKey[key] {
			if w.Outcome != history.OutcomeFail {
				continue
			}
			n := sort.Search(len(offered), func(i int) bool { return offered[i].Invoke > w.Return })
			if n == 0 || highest[n-1] <= w.Token {
				rep.problemf("key %q: the resource rejected write op %d (client %d, token %d) though no higher token had been offered before it returned: the fenced resource is broken",
					key, w.ID, w.Client, w.Token)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedNodes(journals map[string][]history.Entry) []string { return sortedKeys(journals) }

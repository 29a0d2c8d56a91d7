package checker

import "slices"

// Given is an acquire whose caller gave up on purpose (the abandoning
// clients: a deadline of 0-5 ms, or a disconnect 0-5 ms after sending) and
// got no grant back.
type Given struct {
	Key, Owner string
	// How is "deadline" or "disconnect".
	How string
	// Crashed: the node that took the call was killed after it. A node that
	// restarts withdraws its previous run's waiters, but a grant made to one
	// while the node was down is not released (it may have been delivered,
	// as far as the cluster can tell) and lasts until it expires: such a
	// holder is counted, not judged.
	Crashed bool
}

// Abandoned checks DESIGN.md section 8 (7): a waiting acquire whose caller
// is gone is withdrawn, or released if it was granted meanwhile, so no key
// ends up held by an owner whose every acquire was abandoned. final is
// each abandon key's holder after the run (read once the faults healed and
// the abandons had time to land; "" for a free key); an owner of given
// found there is a violation.
func Abandoned(given []Given, final map[string]string) Result {
	r := newReport("abandoned")
	gone := make(map[string]bool, len(given))
	crashed := make(map[string]bool)
	for _, g := range given {
		gone[g.Owner] = true
		crashed[g.Owner] = g.Crashed
		r.stats["abandoned"]++
		r.stats["by_"+g.How]++
		if g.Crashed {
			r.stats["node_killed_after"]++
		}
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.stats["keys"]++
		switch owner := final[k]; {
		case gone[owner] && crashed[owner]:
			r.stats["held_after_a_crash"]++
		case gone[owner]:
			r.problemf("key %s is held by %s, whose every acquire was abandoned", k, owner)
		}
	}
	if len(given) > 0 && len(final) == 0 {
		r.problemf("%d acquires were abandoned but no key was read at the end", len(given))
	}
	return r.result()
}

package checker

import (
	"time"
)

// Recovery reports DESIGN.md section 8, promise 6, measured by the runner
// after the final heal: how long until a leader was found and until every
// key could be acquired. Either must be within limit; a negative duration
// means it never happened before the runner gave up. Stats are in
// milliseconds (-1 for never).
func Recovery(leaderFoundAfter, allKeysAcquiredAfter, limit time.Duration) Result {
	rep := newReport("recovery")
	rep.stats["limit_ms"] = int(limit.Milliseconds())
	for _, m := range []struct {
		what string
		stat string
		d    time.Duration
	}{
		{"a leader", "leader_ms", leaderFoundAfter},
		{"every key acquirable", "all_keys_ms", allKeysAcquiredAfter},
	} {
		switch {
		case m.d < 0:
			rep.stats[m.stat] = -1
			rep.problemf("%s never came back after the final heal (gave up)", m.what)
		case m.d > limit:
			rep.stats[m.stat] = int(m.d.Milliseconds())
			rep.problemf("%s took %s after the final heal, over the limit of %s", m.what, m.d, limit)
		default:
			rep.stats[m.stat] = int(m.d.Milliseconds())
		}
	}
	return rep.result()
}

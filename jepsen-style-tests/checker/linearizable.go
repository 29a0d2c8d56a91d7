package checker

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// LinearizableOptions tunes Linearizable.
type LinearizableOptions struct {
	// Timeout bounds porcupine's search for one key. A key whose search
	// times out makes the result not OK (unproven is not proven). 0 means
	// no bound.
	Timeout time.Duration
	// Timeline, if set, is drawn into the HTML visualisations as
	// annotations, so a violation can be read next to the faults.
	Timeline history.Timeline
	// MaxClockDrift is how much faster than the runner's clock a leader's
	// monotonic clock may run (0.01: 1%) under the faults injected: a lease
	// of TTL d may then end d×(1−MaxClockDrift) after it began.
	MaxClockDrift float64
}

// DefaultLinearizableOptions returns the options Linearizable uses.
func DefaultLinearizableOptions() LinearizableOptions {
	return LinearizableOptions{Timeout: time.Minute}
}

// Linearizable checks, per key, that the lock operations fit one sequential
// lock in real-time order (DESIGN.md section 8, promise 1) with the default
// options; see LinearizableWith.
func Linearizable(ops []history.Op, outDir string) Result {
	return LinearizableWith(ops, outDir, DefaultLinearizableOptions())
}

// LinearizableWith checks, per key, with porcupine and a time-aware lock
// model, that acquires, releases, refreshes and reads fit one sequential
// lock in real-time order. Writes are not part of the model. When a key's
// history is not linearizable and outDir is not empty, porcupine's HTML
// visualisation is written to outDir/linearizable-<key>.html and named in
// the problems. A key whose search exceeds opts.Timeout is a problem too.
//
// The model (README-checkers.md explains why each rule is sound):
//   - A lock's lease can end no earlier than its leaseFloor: the invocation
//     of the acquire or refresh that set it plus its TTL (never for TTL 0). An
//     operation may observe the lock as expired (free) only if it returned at
//     or after the leaseFloor; from then on, every later operation in the
//     linearization must have returned at or after that floor too.
//   - Failed acquires change nothing and are always legal (no barging makes
//     "busy" legal even on a free key). A successful acquire needs the key
//     free or possibly expired, and a token above every token granted before.
//   - Release ok with released=true needs the owner (and token, for a token
//     release) to hold the key; released=false, and a failed token release,
//     need it not held by them or possibly expired.
//   - A read must see the state, or free if the lock possibly expired.
//   - Refresh ok needs the owner to hold the key and moves the leaseFloor to
//     its invocation plus the TTL (the lock's own TTL if the refresh asks 0).
//   - Unknown acquires and refreshes may or may not have taken effect, at any
//     time after their invocation; resolved operations have their known
//     outcome at any time after their invocation. An unknown release whose
//     owner's acquire returned before it lowers the leaseFloor to its
//     invocation (the lock may end at any moment from then on, which covers
//     both "it took effect" and "it did not").
//   - Left out, as unable to change or constrain the state: unknown and
//     failed reads, failed acquires and refreshes, failed releases without a
//     token, unknown acquires whose owner no other operation mentions (had
//     they taken effect, they would only have made the key busy), and an
//     unknown refresh that is its owner's last lease-setting operation and
//     asks no shorter TTL (had it taken effect, it could only have lengthened
//     the lease, which allows fewer histories, never more).
//   - An effect at an unknown time is bounded by what observed it: tokens are
//     Raft indexes, so a resolved acquire of token T happened before any
//     acquire or read that returned a higher token; a release or refresh by
//     the holder of T, if it took effect, did so before then too; an unknown
//     acquire that a read saw took effect, with that token, before the read
//     returned.
func LinearizableWith(ops []history.Op, outDir string, opts LinearizableOptions) Result {
	rep := newReport("linearizable")
	byKey := make(map[string][]history.Op)
	for _, op := range ops {
		if op.Kind == history.KindWrite {
			continue
		}
		if opts.MaxClockDrift > 0 {
			op.Expire = time.Duration(float64(op.Expire) * (1 - opts.MaxClockDrift))
		}
		if err := op.Validate(); err != nil {
			rep.problemf("left out malformed %v", err)
			continue
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	model := lockModel()
	for _, key := range keys {
		hist, dropped := linearizableOps(byKey[key])
		rep.stats["ops"] += len(hist)
		rep.stats["dropped"] += dropped
		rep.stats["keys"]++
		for _, o := range hist {
			if o.Input.(*linOp).possible {
				rep.stats["unknown_kept"]++
			}
		}
		res, info := checkOperations(model, hist, opts.Timeout)
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			rep.stats["keys_timed_out"]++
			rep.problemf("key %q: porcupine timed out after %s on %d operations: linearizability not established", key, opts.Timeout, len(hist))
			continue
		}
		rep.stats["keys_illegal"]++
		msg := fmt.Sprintf("key %q: not linearizable (%d operations)%s", key, len(hist), stuckAt(hist, info))
		if outDir != "" {
			path := filepath.Join(outDir, "linearizable-"+fileSafe(key)+".html")
			if len(opts.Timeline) > 0 {
				info.AddAnnotations(timelineAnnotations(opts.Timeline))
			}
			if err := writeVisualization(model, info, path); err != nil {
				msg += fmt.Sprintf("; writing the visualisation failed: %v", err)
			} else {
				msg += "; visualisation: " + path
			}
		}
		rep.problemf("%s", msg)
	}
	return rep.result()
}

// checkOperations is porcupine's checker; tests replace it to reach the
// time-out path deterministically.
var checkOperations = porcupine.CheckOperationsVerbose

func writeVisualization(model porcupine.Model, info porcupine.LinearizationInfo, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return porcupine.VisualizePath(model, info, path)
}

// stuckAt names the operation the longest linearization could not get past:
// of the operations left out of it, the one that returned first.
func stuckAt(hist []porcupine.Operation, info porcupine.LinearizationInfo) string {
	partials := info.PartialLinearizations()
	if len(partials) == 0 {
		return ""
	}
	var longest []int
	for _, p := range partials[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	in := make(map[int]bool, len(longest))
	for _, i := range longest {
		in[i] = true
	}
	stuck := -1
	for i := range hist {
		if !in[i] && (stuck < 0 || hist[i].Return < hist[stuck].Return) {
			stuck = i
		}
	}
	if stuck < 0 {
		return ""
	}
	o := hist[stuck].Input.(*linOp)
	return fmt.Sprintf("; the longest linearizable prefix has %d operations and cannot place op %d (client %d, %s, %s..%s)",
		len(longest), o.id, hist[stuck].ClientId, o.describe(), history.FormatTime(o.invoke), history.FormatTime(o.ret))
}

func timelineAnnotations(tl history.Timeline) []porcupine.Annotation {
	out := make([]porcupine.Annotation, 0, len(tl))
	for _, f := range tl {
		end := f.End
		if end == 0 {
			end = f.Start
		}
		out = append(out, porcupine.Annotation{
			Tag:             "nemesis",
			Start:           f.Start,
			End:             end,
			Description:     f.Name + " " + strings.Join(f.Targets, ","),
			Details:         f.String(),
			BackgroundColor: "#f4cccc",
		})
	}
	return out
}

// fileSafe turns a key into a file name part.
func fileSafe(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "%%%02x", r)
		}
	}
	if b.Len() == 0 || b.Len() > 100 {
		return fmt.Sprintf("key-%x", fnv64(key))
	}
	return b.String()
}

// never is the leaseFloor of a lock that does not expire.
const never int64 = math.MaxInt64

// linOp is one operation as the lock model sees it.
type linOp struct {
	id       int
	kind     history.Kind
	owner    string
	token    uint64
	expire   int64 // ns; 0: never expires (refresh: keep the lock's TTL)
	invoke   int64
	ret      int64 // latest time it can have taken effect (Infinity if unknown/resolved)
	ok       bool  // succeeded (for a possible op: if it took effect)
	possible bool  // outcome unknown: it may or may not have taken effect
	mayEnd   bool  // an unknown release: the holder's lease may end at any time after invoke
	held     bool  // read: saw a holder
	rOwner   string
	released bool
}

func (o *linOp) describe() string {
	var s string
	switch o.kind {
	case history.KindAcquire:
		s = fmt.Sprintf("acquire %s", o.owner)
		if o.ok && !o.possible {
			s += fmt.Sprintf(" -> token %d", o.token)
		}
	case history.KindRelease:
		s = "release " + o.owner
		if o.token != 0 {
			s += fmt.Sprintf(" token %d", o.token)
		}
		switch {
		case o.possible, o.mayEnd:
		case !o.ok:
			s += " -> not held"
		default:
			s += fmt.Sprintf(" -> released=%t", o.released)
		}
	case history.KindRefresh:
		s = fmt.Sprintf("refresh %s ttl %s", o.owner, time.Duration(o.expire))
	case history.KindRead:
		if o.held {
			s = fmt.Sprintf("read -> %s token %d", o.rOwner, o.token)
		} else {
			s = "read -> free"
		}
	}
	switch {
	case o.possible:
		s += " (unknown)"
	case o.mayEnd:
		s += " (unknown: the lease may end from its invocation)"
	case o.ret == history.Infinity:
		s += " (resolved)"
	}
	return s
}

// linearizableOps turns one key's operations into porcupine operations,
// leaving out those that cannot change or constrain the model and bounding
// the time of those whose effect came at an unknown time (see
// LinearizableWith); it returns them and how many it left out.
func linearizableOps(ops []history.Op) ([]porcupine.Operation, int) {
	k := newKeyFacts(ops)
	var out []porcupine.Operation
	dropped := 0
	for _, op := range ops {
		o := &linOp{
			id: op.ID, kind: op.Kind, owner: op.Owner, token: op.Token, expire: int64(op.Expire),
			invoke: op.Invoke, ret: op.EffectiveReturn(), ok: op.Outcome == history.OutcomeOK,
			possible: op.Outcome == history.OutcomeUnknown, held: op.Held, rOwner: op.ReadOwner,
			released: op.Released,
		}
		if k.keep(&op, o) {
			out = append(out, porcupine.Operation{
				ClientId: op.Client, Input: o, Call: op.Invoke, Return: o.ret,
				Metadata: fmt.Sprintf("op %d, rid %s, node %s", op.ID, op.RequestID, op.Node),
			})
		} else {
			dropped++
		}
	}
	return out, dropped
}

// keyFacts are what one key's history proves about when things happened.
type keyFacts struct {
	// proofs are (token, time) pairs: the grant of token had happened by
	// time (an acquire the client saw return it, a read that saw it), sorted
	// by token, with sufMin[i] the earliest time among proofs[i:].
	proofs []proof
	sufMin []int64
	// ownerToken is the token each owner's acquire was granted, when known.
	ownerToken map[string]uint64
	// seen is the earliest read that saw each owner holding the key.
	seen map[string]proof
	// observed: owners whose lock some operation other than their acquire
	// depends on (a read saw it, a release or refresh of theirs may have
	// succeeded).
	observed map[string]bool
	// late: owners whose acquire took effect at an unknown time.
	late map[string]bool
	// ownerLast is each owner's last acquire or refresh (by invocation) and
	// ownerMaxTTL the longest TTL it asked (never for an acquire without
	// expiry), to decide which unknown refreshes can be dropped.
	ownerLast   map[string]int
	ownerLastAt map[string]int64
	ownerMaxTTL map[string]int64
}

type proof struct {
	token uint64
	at    int64
}

func newKeyFacts(ops []history.Op) *keyFacts {
	k := &keyFacts{
		ownerToken: make(map[string]uint64), seen: make(map[string]proof), observed: make(map[string]bool),
		late: make(map[string]bool), ownerLast: make(map[string]int), ownerLastAt: make(map[string]int64),
		ownerMaxTTL: make(map[string]int64),
	}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case history.KindRead:
			if op.Outcome == history.OutcomeOK && op.Held {
				k.observed[op.ReadOwner] = true
				at := op.EffectiveReturn()
				if op.Token != 0 && at != history.Infinity {
					k.proofs = append(k.proofs, proof{op.Token, at})
				}
				if p, ok := k.seen[op.ReadOwner]; !ok || at < p.at {
					k.seen[op.ReadOwner] = proof{op.Token, at}
				}
			}
		case history.KindAcquire:
			if op.Outcome == history.OutcomeOK && op.Token != 0 {
				k.ownerToken[op.Owner] = op.Token
				if op.SeenOK() {
					k.proofs = append(k.proofs, proof{op.Token, op.Return})
				}
			}
			if op.EffectiveReturn() == history.Infinity {
				k.late[op.Owner] = true
			}
		case history.KindRelease, history.KindRefresh:
			if op.Outcome != history.OutcomeFail {
				k.observed[op.Owner] = true
			}
		}
		if op.Kind == history.KindAcquire || op.Kind == history.KindRefresh {
			ttl := int64(op.Expire)
			if op.Kind == history.KindAcquire && ttl == 0 {
				ttl = never
			}
			k.ownerMaxTTL[op.Owner] = max(k.ownerMaxTTL[op.Owner], ttl)
			if at, ok := k.ownerLastAt[op.Owner]; !ok || op.Invoke >= at {
				k.ownerLastAt[op.Owner], k.ownerLast[op.Owner] = op.Invoke, op.ID
			}
		}
	}
	slices.SortFunc(k.proofs, func(a, b proof) int { return cmp.Compare(a.token, b.token) })
	k.sufMin = make([]int64, len(k.proofs))
	for i := len(k.proofs) - 1; i >= 0; i-- {
		k.sufMin[i] = k.proofs[i].at
		if i+1 < len(k.proofs) {
			k.sufMin[i] = min(k.sufMin[i], k.sufMin[i+1])
		}
	}
	return k
}

// grantedAfter returns the earliest time by which some token above t had
// been granted, or Infinity. Tokens are Raft indexes: a grant of a higher
// token was committed after the grant of t.
func (k *keyFacts) grantedAfter(t uint64) int64 {
	i := sort.Search(len(k.proofs), func(i int) bool { return k.proofs[i].token > t })
	if i == len(k.proofs) {
		return history.Infinity
	}
	return k.sufMin[i]
}

// tenureEnd returns the earliest time by which owner's tenure had certainly
// ended (a higher token was granted), or Infinity if unknown.
func (k *keyFacts) tenureEnd(owner string) int64 {
	t, ok := k.ownerToken[owner]
	if !ok {
		return history.Infinity
	}
	return k.grantedAfter(t)
}

// bound lowers o's return to at, if that does not precede its invocation
// (if it does, the history contradicts itself and the model will say so).
func bound(o *linOp, at int64) {
	if at >= o.invoke && at < o.ret {
		o.ret = at
	}
}

// keep decides whether op enters the model and adjusts its model form.
func (k *keyFacts) keep(op *history.Op, o *linOp) bool {
	switch op.Kind {
	case history.KindRead:
		return op.Outcome == history.OutcomeOK
	case history.KindAcquire:
		switch {
		case op.Outcome == history.OutcomeFail:
			return false // changes nothing, always legal
		case o.possible:
			if !k.observed[op.Owner] {
				return false // if it took effect, nothing depended on it
			}
			o.ok = true
			if p, ok := k.seen[op.Owner]; ok && p.at >= o.invoke && p.at != history.Infinity {
				// A read saw it: it took effect, with that token, by then.
				o.possible, o.token, o.ret = false, p.token, p.at
			}
		case op.Resolved:
			bound(o, k.grantedAfter(op.Token))
			if p, ok := k.seen[op.Owner]; ok {
				bound(o, p.at)
			}
		}
		return true
	case history.KindRelease:
		switch {
		case op.Outcome == history.OutcomeFail:
			return op.Token != 0 // a failed token release says "not held"
		case o.possible:
			o.ok, o.released = true, true
			if !k.late[op.Owner] {
				// Its holder was in place when it was invoked: the lease may
				// end at any time from then on.
				o.possible, o.mayEnd = false, true
				return true
			}
			bound(o, k.tenureEnd(op.Owner)) // if it freed the key, it was before the next grant
		case op.Resolved && op.Released:
			bound(o, k.tenureEnd(op.Owner))
		}
		return true
	case history.KindRefresh:
		switch {
		case op.Outcome == history.OutcomeFail:
			return false // changed nothing
		case o.possible:
			ttl := k.ownerMaxTTL[op.Owner]
			if k.ownerLast[op.Owner] == op.ID && (o.expire == 0 || o.expire >= ttl) {
				return false // could only have lengthened the owner's last lease
			}
			o.ok = true
			bound(o, k.tenureEnd(op.Owner))
		case op.Resolved:
			bound(o, k.tenureEnd(op.Owner))
		}
		return true
	}
	return false
}

// lockState is one possible state of a key's lock.
type lockState struct {
	held     bool
	owner    string
	token    uint64 // 0: not known (granted by an acquire whose outcome is unknown)
	ttl      int64  // the lock's TTL in ns, 0: never expires
	floor    int64  // leaseFloor: the earliest real time the lease can have ended
	maxToken uint64 // highest token known to have been granted on the key
	// past is a real time the linearization has certainly reached: an
	// earlier operation observed an expiry that cannot happen before it.
	past int64
}

func (s lockState) String() string {
	var b strings.Builder
	if s.held {
		fmt.Fprintf(&b, "held by %s token %d", s.owner, s.token)
		if s.floor != never {
			fmt.Fprintf(&b, ", lease ends >= %s", history.FormatTime(s.floor))
		}
	} else {
		b.WriteString("free")
	}
	fmt.Fprintf(&b, " (max token %d", s.maxToken)
	if s.past > 0 {
		fmt.Fprintf(&b, ", now >= %s", history.FormatTime(s.past))
	}
	b.WriteString(")")
	return b.String()
}

func leaseEnd(invoke, ttl int64) int64 {
	if ttl <= 0 || invoke > never-ttl {
		return never
	}
	return invoke + ttl
}

// free is the state after the lock was released.
func (s lockState) free() lockState {
	return lockState{maxToken: s.maxToken, past: s.past}
}

// expired is the state after the lease ended on its own: the operation
// observing it is at or after the floor, and so is everything after it.
func (s lockState) expired() lockState {
	f := s.free()
	f.past = max(f.past, s.floor)
	return f
}

// tokenMatches reports whether token t (0: none given) can be the holder's.
func (s lockState) tokenMatches(t uint64) bool {
	return t == 0 || s.token == t || (s.token == 0 && t > s.maxToken)
}

// learn fills in the holder's token when it was unknown.
func (s lockState) learn(t uint64) lockState {
	if s.token == 0 && t != 0 {
		s.token = t
		s.maxToken = max(s.maxToken, t)
	}
	return s
}

// step returns every state the lock can be in after o, given state s; none
// if o is impossible in s.
func step(s lockState, o *linOp) []lockState {
	if o.ret < s.past {
		return nil // o ended before an expiry that an earlier operation saw
	}
	// mayExpire: the lease can have ended before o took effect.
	mayExpire := s.held && s.floor != never && o.ret >= s.floor
	holds := s.held && s.owner == o.owner && s.tokenMatches(o.token)
	var out []lockState
	if o.possible {
		out = append(out, s) // it never took effect
	}
	switch o.kind {
	case history.KindAcquire:
		if !o.ok {
			return []lockState{s}
		}
		base := s
		if s.held {
			if !mayExpire {
				return out
			}
			base = s.expired()
		}
		if o.token != 0 && o.token <= s.maxToken {
			return out
		}
		out = append(out, lockState{
			held: true, owner: o.owner, token: o.token, ttl: o.expire,
			floor: leaseEnd(o.invoke, o.expire), maxToken: max(s.maxToken, o.token), past: base.past,
		})
	case history.KindRelease:
		switch {
		case o.mayEnd:
			n := s
			if holds {
				n.floor = min(n.floor, o.invoke)
			}
			out = append(out, n)
		case o.ok && o.released:
			if holds {
				out = append(out, s.learn(o.token).free())
			}
		default: // released=false, or a failed token release: not held by them
			if !holds {
				out = append(out, s)
			} else if mayExpire {
				out = append(out, s.expired())
			}
		}
	case history.KindRefresh:
		if !o.ok {
			return []lockState{s}
		}
		if s.held && s.owner == o.owner && s.tokenMatches(o.token) {
			n := s.learn(o.token)
			if o.expire > 0 {
				n.ttl = o.expire
			}
			n.floor = leaseEnd(o.invoke, n.ttl)
			out = append(out, n)
		}
	case history.KindRead:
		if o.held {
			if s.held && s.owner == o.rOwner && s.tokenMatches(o.token) {
				out = append(out, s.learn(o.token))
			}
		} else if !s.held {
			out = append(out, s)
		} else if mayExpire {
			out = append(out, s.expired())
		}
	}
	return out
}

// lockModel is the per-key lock model for porcupine.
func lockModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{lockState{}} },
		Step: func(state, input, _ any) []any {
			next := step(state.(lockState), input.(*linOp))
			out := make([]any, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Hash: func(state any) uint64 {
			s := state.(lockState)
			h := fnv64(s.owner)
			for _, v := range []uint64{uint64(s.token), uint64(s.ttl), uint64(s.floor), s.maxToken, uint64(s.past)} {
				h = (h ^ v) * 1099511628211
			}
			if s.held {
				h ^= 1
			}
			return h
		},
		DescribeOperation: func(input, _ any) string { return input.(*linOp).describe() },
		DescribeState:     func(state any) string { return state.(lockState).String() },
	}
	return nm.ToModel()
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

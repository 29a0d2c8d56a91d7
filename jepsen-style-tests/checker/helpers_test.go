package checker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Hand-made histories use milliseconds for readability; ms converts.
func ms(v int64) int64 { return v * int64(time.Millisecond) }

// h builds a history: each added op gets the next id and, for lock
// operations, a request id "r<id>". Times and TTLs are in milliseconds.
type h struct{ ops []history.Op }

func (b *h) add(op history.Op) *history.Op {
	op.ID = len(b.ops) + 1
	if op.Key == "" {
		op.Key = "k"
	}
	if op.RequestID == "" && op.Kind != history.KindRead && op.Kind != history.KindWrite {
		op.RequestID = fmt.Sprintf("r%d", op.ID)
	}
	b.ops = append(b.ops, op)
	return &b.ops[len(b.ops)-1]
}

// margin is the client's safety margin in these histories.
const margin = 10

// acquire adds an acquire; ttl 0 never expires. For an ok outcome the
// client's deadline is inv+ttl-margin.
func (b *h) acquire(c int, owner string, inv, ret int64, out history.Outcome, token uint64, ttl int64) *history.Op {
	op := history.Op{Client: c, Kind: history.KindAcquire, Owner: owner, Invoke: ms(inv), Return: ms(ret),
		Outcome: out, Token: token, Expire: time.Duration(ms(ttl))}
	if out == history.OutcomeOK && ttl > 0 {
		op.Deadline = ms(inv + ttl - margin)
	}
	return b.add(op)
}

func (b *h) release(c int, owner string, inv, ret int64, out history.Outcome, released bool, token uint64) *history.Op {
	return b.add(history.Op{Client: c, Kind: history.KindRelease, Owner: owner, Invoke: ms(inv), Return: ms(ret),
		Outcome: out, Released: released, Token: token})
}

func (b *h) refresh(c int, owner string, inv, ret int64, out history.Outcome, ttl int64) *history.Op {
	op := history.Op{Client: c, Kind: history.KindRefresh, Owner: owner, Invoke: ms(inv), Return: ms(ret),
		Outcome: out, Expire: time.Duration(ms(ttl))}
	if out == history.OutcomeOK && ttl > 0 {
		op.Deadline = ms(inv + ttl - margin)
	}
	return b.add(op)
}

// read adds an ok read that saw owner holding with token ("" = free).
func (b *h) read(c int, inv, ret int64, owner string, token uint64) *history.Op {
	return b.add(history.Op{Client: c, Kind: history.KindRead, Invoke: ms(inv), Return: ms(ret), Outcome: history.OutcomeOK,
		Held: owner != "", ReadOwner: owner, Token: token})
}

func (b *h) write(c int, owner string, inv, ret int64, token uint64, accepted bool) *history.Op {
	out := history.OutcomeFail
	if accepted {
		out = history.OutcomeOK
	}
	return b.add(history.Op{Client: c, Kind: history.KindWrite, Owner: owner, Invoke: ms(inv), Return: ms(ret),
		Outcome: out, Token: token})
}

const (
	ok      = history.OutcomeOK
	fail    = history.OutcomeFail
	unknown = history.OutcomeUnknown
)

// wantOK fails the test if the result is not OK.
func wantOK(t *testing.T, r Result) {
	t.Helper()
	if !r.OK {
		t.Fatalf("%s: want OK, got problems:\n  %s", r.Name, strings.Join(r.Problems, "\n  "))
	}
}

// wantFail fails the test unless the result is not OK and some problem
// contains each of the fragments.
func wantFail(t *testing.T, r Result, fragments ...string) {
	t.Helper()
	if r.OK {
		t.Fatalf("%s: want a violation, got OK (stats %v)", r.Name, r.Stats)
	}
	for _, f := range fragments {
		found := false
		for _, p := range r.Problems {
			if strings.Contains(p, f) {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: no problem mentions %q; problems:\n  %s", r.Name, f, strings.Join(r.Problems, "\n  "))
		}
	}
	if r.Stats["problems"] == 0 {
		t.Fatalf("%s: not OK but Stats[problems] = 0", r.Name)
	}
}

// entry builds a journal entry.
func entry(i uint64, op, rid, code string, keys []string, owner string, tokens ...uint64) history.Entry {
	return history.Entry{Index: i, Time: int64(i) * 1000, Op: op, RequestID: rid, Code: code, Keys: keys, Owner: owner, Tokens: tokens}
}

func keys(k ...string) []string { return k }

package runner

import (
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// An acquire whose client gave up is resolved from the journals: granted,
// refused, never seen; and one the cluster granted and then released
// because its caller had gone (an abandon) stays unknown, since it held
// the key for a while its client never knew of.
func TestResolve(t *testing.T) {
	ops := []history.Op{
		{Kind: history.KindAcquire, Key: "k", RequestID: "granted", Outcome: history.OutcomeUnknown},
		{Kind: history.KindAcquire, Key: "k", RequestID: "busy", Outcome: history.OutcomeUnknown},
		{Kind: history.KindAcquire, Key: "k", RequestID: "never", Outcome: history.OutcomeUnknown},
		{Kind: history.KindAcquire, Key: "k", RequestID: "undone", Outcome: history.OutcomeUnknown},
		{Kind: history.KindAcquire, Key: "k", RequestID: "handed-then-undone", Outcome: history.OutcomeUnknown},
	}
	journal := []history.Entry{
		{Index: 1, Op: "acquire", RequestID: "granted", Code: "ok", Tokens: []uint64{1}},
		{Index: 2, Op: "acquire", RequestID: "busy", Code: "busy"},
		{Index: 3, Op: "acquire", RequestID: "undone", Code: "ok", Tokens: []uint64{3}},
		{Index: 4, Op: "acquire", RequestID: "undone", Code: "cancelled"}, // its abandon
		{Index: 5, Op: "acquire", RequestID: "handed-then-undone", Code: "pending"},
		{Index: 6, Op: "release", Code: "ok", Events: []history.Event{{RequestID: "handed-then-undone", Code: "ok", Tokens: []uint64{6}}}},
		{Index: 7, Op: "acquire", RequestID: "handed-then-undone", Code: "cancelled"},
	}
	resolved, unknown := resolve(ops, map[string][]history.Entry{"n1": journal})
	want := []history.Outcome{history.OutcomeOK, history.OutcomeFail, history.OutcomeFail, history.OutcomeUnknown, history.OutcomeUnknown}
	for i, w := range want {
		if ops[i].Outcome != w {
			t.Errorf("%s: %s, want %s", ops[i].RequestID, ops[i].Outcome, w)
		}
	}
	if resolved != 3 || unknown != 2 {
		t.Errorf("resolved %d, unknown %d; want 3, 2", resolved, unknown)
	}
	if ops[0].Token != 1 {
		t.Errorf("granted: token %d", ops[0].Token)
	}
}

// An acquire its client was told failed (its answer lost, the retry found
// it cancelled, no wait left) whose request the cluster had granted and
// then released turns unknown: it held the key for a while. A refusal the
// log agrees with stays a refusal.
func TestResolveFailedButGrantedThenUndone(t *testing.T) {
	ops := []history.Op{
		{Kind: history.KindAcquire, Key: "k", RequestID: "told-no", Outcome: history.OutcomeFail},
		{Kind: history.KindAcquire, Key: "k", RequestID: "reissued", Outcome: history.OutcomeFail},
		{Kind: history.KindAcquire, Key: "k", RequestID: "timed-out", Outcome: history.OutcomeFail},
	}
	journal := []history.Entry{
		{Index: 1, Op: "acquire", RequestID: "told-no", Code: "pending"},
		{Index: 2, Op: "release", Code: "ok", Events: []history.Event{{RequestID: "told-no", Code: "ok", Tokens: []uint64{2}}}},
		{Index: 3, Op: "acquire", RequestID: "told-no", Code: "cancelled"}, // its abandon
		{Index: 4, Op: "acquire", RequestID: "reissued", Code: "ok", Tokens: []uint64{4}},
		{Index: 5, Op: "acquire", RequestID: "reissued", Code: "cancelled"},
		{Index: 6, Op: "acquire", RequestID: "reissued#1", Code: "timed_out"},
		{Index: 7, Op: "acquire", RequestID: "timed-out", Code: "pending"},
		{Index: 8, Op: "tick", Events: []history.Event{{RequestID: "timed-out", Code: "timed_out"}}},
	}
	resolve(ops, map[string][]history.Entry{"n1": journal})
	want := []history.Outcome{history.OutcomeUnknown, history.OutcomeUnknown, history.OutcomeFail}
	for i, w := range want {
		if ops[i].Outcome != w {
			t.Errorf("%s: %s, want %s", ops[i].RequestID, ops[i].Outcome, w)
		}
	}
}

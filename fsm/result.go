package fsm

import "fmt"

// Code is the outcome of a command, or of a waiting Acquire.
type Code uint8

// The outcomes. The API maps them to its error codes in one place.
const (
	// CodeOK: the command succeeded (an Acquire: granted).
	CodeOK Code = iota
	// CodePending: the Acquire waits in the queues of its keys.
	CodePending
	// CodeBusy: a key is held by someone else and the Acquire may not wait;
	// Result.Key names the first busy key.
	CodeBusy
	// CodeTimedOut: the Acquire waited until its wait timeout and holds
	// nothing.
	CodeTimedOut
	// CodeNotHeld: a Refresh or a token Release named a key this owner (or
	// token) no longer holds; Result.Key names it.
	CodeNotHeld
	// CodeCancelled: the waiting Acquire was withdrawn.
	CodeCancelled
	// CodeInvalid: the command breaks a rule; Result.Msg says which, naming
	// the field. Nothing changed.
	CodeInvalid
	// CodeExhausted: a queue or table limit was reached; Result.Msg says
	// which. Nothing changed.
	CodeExhausted
	// CodeUnknown: a CancelWait limited to key prefixes named a request id
	// the table does not remember. Nothing changed.
	CodeUnknown
	// CodeDenied: a CancelWait limited to key prefixes named a request whose
	// keys are outside them; Result.Key names the first. Nothing changed.
	CodeDenied
	// CodeWrongMode: an Acquire disagrees with how a key is used (held or
	// waited for) now: another mode, another semaphore limit, or other
	// permits than the owner holds. Result.Key names the first such key,
	// Result.Msg says how. Nothing changed, and the request id is not
	// remembered (a retry may succeed once the key is used otherwise).
	CodeWrongMode
)

var codeNames = [...]string{
	CodeOK:        "ok",
	CodePending:   "pending",
	CodeBusy:      "busy",
	CodeTimedOut:  "timed_out",
	CodeNotHeld:   "not_held",
	CodeCancelled: "cancelled",
	CodeInvalid:   "invalid",
	CodeExhausted: "exhausted",
	CodeUnknown:   "unknown",
	CodeDenied:    "denied",
	CodeWrongMode: "wrong_mode",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// The two messages callers match on (DESIGN.md section 2).
const (
	// MsgTimedOut is the message of a wait that timed out.
	MsgTimedOut = "Timed-out acquiring lock."
)

// BusyMessage is the message of an Acquire that found key busy.
func BusyMessage(key string) string {
	return fmt.Sprintf("Failed to acquire lock for key %q", key)
}

// Result is what applying a command produced. A Result never aliases the
// table's state: callers may keep it.
type Result struct {
	// Op is the operation of the command (or of the remembered request).
	Op Op
	// Code is the outcome.
	Code Code
	// Key names the key a CodeBusy or CodeNotHeld refers to.
	Key string
	// Msg explains a CodeInvalid or CodeExhausted.
	Msg string
	// RequestID is the request id of the command or event.
	RequestID string
	// Keys are the request's keys, sorted and de-duplicated.
	Keys []string
	// Owner is the request's owner.
	Owner string
	// Tokens holds the fencing token of each key (granted Acquire, Refresh).
	Tokens []uint64
	// Deadlines holds each key's expiry in cluster time; 0: never expires.
	Deadlines []int64
	// Slots holds a granted semaphore Acquire's permit slots: Permits
	// numbers per key, key after key (the fencing of a semaphore is per
	// key and slot; see DESIGN.md, "Modes").
	Slots []uint32
	// Released tells whether a Release freed everything it named.
	Released bool
	// Count is how many locks a ReleaseAll or ForceRelease freed.
	Count int
	// Now is the cluster time at which the command was applied.
	Now int64
	// Index is the Raft index of the entry that produced this result.
	Index uint64
	// Duplicate is set when the request id was seen before: the result is
	// the remembered one and nothing changed.
	Duplicate bool
	// Expired is how many locks this entry ended because their deadline
	// passed.
	Expired int
	// Events lists waiting Acquires this entry resolved (granted, timed out,
	// cancelled), so the node can answer their callers.
	Events []Result
	// Changes lists what this entry did to each key, in order (changes.go).
	// Empty in the Events of a Result and in remembered results.
	Changes []Change
}

// Token returns the highest fencing token among the keys.
func (r *Result) Token() uint64 {
	var m uint64
	for _, t := range r.Tokens {
		m = max(m, t)
	}
	return m
}

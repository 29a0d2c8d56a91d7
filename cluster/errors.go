package cluster

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// Errors of a node. connectError maps them, and the outcomes of the lock
// table, to Connect codes: the one place where that mapping lives.
var (
	// ErrNoLeader: no leader is known or reachable within the time allowed.
	ErrNoLeader = errors.New("no leader reachable")
	// ErrShuttingDown: the node is shutting down; try another node.
	ErrShuttingDown = errors.New("node is shutting down")
	// ErrOutcomeUnknown: a write may or may not have happened; ask
	// GetRequestOutcome with its request id.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrInvalidArgument wraps every validation error; the message names
	// the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: a request id or member that is not known.
	ErrNotFound = errors.New("not found")
	// ErrNoOtherVoter: leadership cannot be handed over because the leader
	// is the only voter.
	ErrNoOtherVoter = errors.New("no other voter to hand leadership to")
)

// resultError turns a lock-table outcome into an error, or nil for success
// and pending.
func resultError(r *fsm.Result) error {
	switch r.Code {
	case fsm.CodeOK, fsm.CodePending:
		return nil
	default:
		return &outcomeError{r: r}
	}
}

// outcomeError is a lock-table outcome that is not a success.
type outcomeError struct{ r *fsm.Result }

func (e *outcomeError) Error() string { return outcomeMessage(e.r.Code, e.r.Key, e.r.Msg) }

// outcomeMessage is the message of an outcome code; the busy and timed-out
// messages are the two fixed by DESIGN.md, which callers match on.
func outcomeMessage(code fsm.Code, key, msg string) string {
	switch code {
	case fsm.CodeBusy:
		return fsm.BusyMessage(key)
	case fsm.CodeTimedOut:
		return fsm.MsgTimedOut
	case fsm.CodeNotHeld:
		return fmt.Sprintf("lock on key %q is not held by this owner (or the fencing token is no longer current)", key)
	case fsm.CodeCancelled:
		return "the acquire was cancelled before it was granted"
	case fsm.CodeInvalid, fsm.CodeExhausted:
		return msg
	}
	return code.String()
}

// outcomeCodes maps lock-table outcomes to Connect codes (DESIGN.md
// section 6).
var outcomeCodes = map[fsm.Code]connect.Code{
	fsm.CodeBusy:      connect.CodeAborted,
	fsm.CodeTimedOut:  connect.CodeDeadlineExceeded,
	fsm.CodeNotHeld:   connect.CodeFailedPrecondition,
	fsm.CodeCancelled: connect.CodeCanceled,
	fsm.CodeInvalid:   connect.CodeInvalidArgument,
	fsm.CodeExhausted: connect.CodeResourceExhausted,
}

// codeName returns the Connect code name of an outcome ("aborted"), for
// RequestOutcome.error_code.
func codeName(code fsm.Code) string {
	if c, ok := outcomeCodes[code]; ok {
		return c.String()
	}
	return ""
}

// connectError maps any error of a handler to a *connect.Error.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	var oe *outcomeError
	switch {
	case errors.As(err, &oe):
		return connect.NewError(outcomeCodes[oe.r.Code], errors.New(oe.Error()))
	case errors.Is(err, ErrInvalidArgument):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, ErrNoOtherVoter):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrShuttingDown), errors.Is(err, ErrOutcomeUnknown),
		errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// argError is a validation error whose message starts with the field name;
// it matches ErrInvalidArgument.
type argError struct{ msg string }

func (e *argError) Error() string        { return e.msg }
func (e *argError) Is(target error) bool { return target == ErrInvalidArgument }

func invalidArg(format string, args ...any) error {
	return &argError{msg: fmt.Sprintf(format, args...)}
}

// notFoundError is a lookup failure whose message names the field; it
// matches ErrNotFound.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// Errors of a node. Handlers return them (wrapped with %w, or as the
// typed errors below); the error boundary (errorBoundary, on every
// handler) is the one place that turns them into Connect codes.
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
	// ErrNotVoter: leadership can only go to a voter.
	ErrNotVoter = errors.New("not a voter")
	// ErrUnauthenticated: no bearer token, or one that is not known.
	ErrUnauthenticated = errors.New("missing or unknown bearer token")
	// ErrPermissionDenied: the token (or certificate) does not allow the
	// call.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrClusterHasData: a restore without force into a cluster that holds
	// locks, waiters or remembered request ids (already_exists).
	ErrClusterHasData = errors.New("the cluster holds data")
	// ErrNotLeader: a call that only the leader takes, and does not forward
	// (a restore's upload), reached another node; the message and the
	// leader headers name the leader (failed_precondition: nothing was
	// done).
	ErrNotLeader = errors.New("not the leader")
	// ErrResourceExhausted: a bound of this node was reached (watches:
	// ErrTooManyWatches, ErrWatchCutOff); the message names it.
	ErrResourceExhausted = errors.New("resource exhausted")

	// errNotReady: this node cannot take a write now, and did not try (no
	// leader known, or it leads but has not taken office yet).
	errNotReady = errors.New("leader not ready")
	// errPeerUnavailable: the leader could not be reached, or answered that
	// it cannot take the call now.
	errPeerUnavailable = errors.New("leader unavailable")
)

// transient reports whether a failed attempt to reach the leader may be
// made again at once: the leader changed, is not known yet, or could not
// be reached. It is the one list of such errors (retryLeader uses it; the
// boundary maps the same errors to unavailable).
func transient(err error) bool {
	switch {
	case errors.Is(err, errNotReady), errors.Is(err, errPeerUnavailable),
		errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrAbortedByRestore):
		return true
	}
	return false
}

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
	case fsm.CodeInvalid, fsm.CodeExhausted, fsm.CodeDenied, fsm.CodeWrongMode:
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
	fsm.CodeDenied:    connect.CodePermissionDenied,
	fsm.CodeWrongMode: connect.CodeFailedPrecondition,
}

// codeName returns the Connect code name of an outcome ("aborted"), for
// RequestOutcome.error_code.
func codeName(code fsm.Code) string {
	if c, ok := outcomeCodes[code]; ok {
		return c.String()
	}
	return ""
}

// codeOf is the mapping of errors to Connect codes. ok is false for an
// error it does not know: an internal error, whose text is not for callers.
func codeOf(err error) (code connect.Code, ok bool) {
	var ce *connect.Error
	var oe *outcomeError
	switch {
	case errors.As(err, &oe):
		return outcomeCodes[oe.r.Code], true
	case errors.As(err, &ce): // a definite answer another node gave
		return ce.Code(), true
	case errors.Is(err, ErrInvalidArgument), errors.Is(err, ErrNotVoter):
		return connect.CodeInvalidArgument, true
	case errors.Is(err, ErrNotFound):
		return connect.CodeNotFound, true
	case errors.Is(err, ErrNoOtherVoter), errors.Is(err, ErrVersionTooLow), errors.Is(err, ErrNotLeader):
		return connect.CodeFailedPrecondition, true
	case errors.Is(err, ErrResourceExhausted), errors.Is(err, ErrTooManyWatches), errors.Is(err, ErrWatchCutOff):
		return connect.CodeResourceExhausted, true
	case errors.Is(err, ErrClusterHasData):
		return connect.CodeAlreadyExists, true
	case errors.Is(err, ErrUnauthenticated):
		return connect.CodeUnauthenticated, true
	case errors.Is(err, ErrPermissionDenied):
		return connect.CodePermissionDenied, true
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrShuttingDown), errors.Is(err, ErrOutcomeUnknown),
		errors.Is(err, raft.ErrRaftShutdown), transient(err):
		return connect.CodeUnavailable, true
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled, true
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded, true
	}
	return connect.CodeInternal, false
}

// toConnect turns any error into the *connect.Error a caller receives. An
// internal error reaches the caller as a generic message with a
// correlation id; its text goes to the node's log under that id.
func (n *Node) toConnect(procedure string, err error) *connect.Error {
	code, known := codeOf(err)
	if !known {
		id := correlationID()
		n.log.Error("internal error", "procedure", procedure, "correlation_id", id, "err", err)
		return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error (correlation id %s; the node's log has the details)", id))
	}
	var ce *connect.Error
	var oe *outcomeError
	if errors.As(err, &ce) && ce.Code() == code && !errors.As(err, &oe) {
		return ce // another node's definite answer, passed on as it came
	}
	return connect.NewError(code, err)
}

func correlationID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errorBoundary is the interceptor that maps every handler's error to its
// Connect code (inside the metrics interceptor, so the metrics count the
// code callers see).
func (n *Node) errorBoundary() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			resp, err := next(ctx, req)
			if err != nil {
				return nil, n.toConnect(req.Spec().Procedure, err)
			}
			return resp, nil
		}
	}
}

// writeError answers a plain HTTP request (outside connect's handlers)
// with the Connect error of err.
func (n *Node) writeError(w http.ResponseWriter, r *http.Request, err error) {
	_ = connect.NewErrorWriter().Write(w, r, n.toConnect(r.URL.Path, err))
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

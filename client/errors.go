package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
)

// Errors of the client. Every error a call returns matches at most one of
// them with errors.Is; the server's own error (a *connect.Error) stays
// reachable with errors.As, so connect.CodeOf still works.
var (
	// ErrLockHeld: a key is held by another owner and the Acquire did not
	// wait (wait timeout 0). The error's text is the server's message,
	// `Failed to acquire lock for key "<key>"`, naming the first busy key.
	ErrLockHeld = errors.New("lock held by another owner")
	// ErrWaitTimeout: the Acquire waited for its whole wait timeout without
	// being granted, and holds nothing. (A grant whose answer was lost on
	// the way is released by the cluster, and a retry that finds it so with
	// no wait left ends with this too: another reader may have seen it held
	// meanwhile.) Its text is fixed by the API.
	//lint:ignore ST1005 the text is the API's wait-timeout message (DESIGN.md section 2), which callers match on
	ErrWaitTimeout = errors.New("Timed-out acquiring lock.")
	// ErrLockLost: a lock can no longer be guaranteed. Its conservative
	// deadline passed without a successful refresh, or a refresh found it
	// no longer held. Execute returns it when the lock was lost while fn
	// ran; Lock.Err returns it once Lock.Done is closed for that reason.
	ErrLockLost = errors.New("lock lost")
	// ErrNotHeld: the server says the keys are not held by this owner (a
	// refresh of an expired lock, or a release with a stale fencing token).
	ErrNotHeld = errors.New("lock not held by this owner")
	// ErrReleased: Lock.Err after Lock.Release; the lock was given up on
	// purpose.
	ErrReleased = errors.New("lock released")
	// ErrNoLeader: the call's context ended while every attempt so far had
	// failed to reach a leader (no endpoint answered, or those that did had
	// no leader). The error also matches the context's error.
	ErrNoLeader = errors.New("no leader reachable")
	// ErrInvalidArgument: the request was refused as malformed; the text
	// names the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: a member id (RemoveMember, TransferLeadership) that the
	// cluster does not know.
	ErrNotFound = errors.New("not found")
	// ErrLimit: a server limit was reached (too many locks or waiters).
	ErrLimit = errors.New("server limit reached")
	// ErrUnauthenticated: the node wants a bearer token (WithBearerToken)
	// and got none, or one it does not know.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the token does not allow this call on these keys.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrWrongMode: an Acquire disagrees with how a key is used now (a
	// semaphore on a key used as a read-write lock or with another limit,
	// an exclusive or shared lock on a semaphore key, other permits than
	// the owner holds), or the cluster cannot take shared and semaphore
	// locks yet (a member runs an older version). The text says which.
	ErrWrongMode = errors.New("wrong lock mode")
	// ErrClusterHasData: a restore without RestoreOptions.Force into a
	// cluster that holds locks, waiters or remembered request ids.
	ErrClusterHasData = errors.New("the cluster holds data")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client closed")
)

// Internal outcomes of one attempt, never returned to callers.
var (
	// errRetry marks an attempt whose request may or may not have been
	// applied, or that found no leader: it is sent again, with the same
	// request id.
	errRetry = errors.New("retryable")
	// errWithdrawn: the server withdrew a waiting Acquire (code canceled),
	// so nothing is held and the Acquire is issued again with a new id.
	errWithdrawn = errors.New("the waiting acquire was withdrawn by the server")
)

// waitTimeoutMessage and the busy message are the two texts fixed by the API.
const waitTimeoutMessage = "Timed-out acquiring lock."

// wireErrors maps the Connect codes a server answers with to the client's
// errors: the one place where this mapping lives. Codes not listed are
// returned as the server sent them. Unavailable is retried; a
// deadline_exceeded whose text is not the wait-timeout message is the
// server noticing the attempt's own deadline, and is retried too.
var wireErrors = map[connect.Code]error{
	connect.CodeAborted:            ErrLockHeld,
	connect.CodeDeadlineExceeded:   ErrWaitTimeout,
	connect.CodeFailedPrecondition: ErrNotHeld,
	connect.CodeInvalidArgument:    ErrInvalidArgument,
	connect.CodeNotFound:           ErrNotFound,
	connect.CodeResourceExhausted:  ErrLimit,
	connect.CodeCanceled:           errWithdrawn,
	connect.CodeUnauthenticated:    ErrUnauthenticated,
	connect.CodePermissionDenied:   ErrPermissionDenied,
	connect.CodeUnavailable:        errRetry,
	connect.CodeAlreadyExists:      ErrClusterHasData,
}

// serverError is a definite answer of the server: it matches one sentinel
// and unwraps to the *connect.Error.
type serverError struct {
	kind error
	ce   *connect.Error
}

func (e *serverError) Error() string {
	switch e.kind {
	case ErrLockHeld, ErrWaitTimeout:
		return e.ce.Message() // the exact text callers match on
	}
	msg := e.ce.Message()
	switch {
	case msg == "":
		return e.kind.Error()
	case strings.HasPrefix(msg, e.kind.Error()):
		return msg // the server already says what kind of error it is
	}
	return e.kind.Error() + ": " + msg
}

func (e *serverError) Is(target error) bool { return target == e.kind }
func (e *serverError) Unwrap() error        { return e.ce }

// retryError is an attempt that may be retried; it remembers why.
type retryError struct{ cause error }

func (e *retryError) Error() string        { return e.cause.Error() }
func (e *retryError) Is(target error) bool { return target == errRetry }
func (e *retryError) Unwrap() error        { return e.cause }

// attemptError classifies the error of one attempt. timedOut says the
// attempt's own timeout (not the caller's context) ended it.
func attemptError(err error, timedOut bool) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if timedOut || !errors.As(err, &ce) || !connect.IsWireError(err) {
		// No answer from a server: refused, reset, timed out. The request
		// may or may not have been applied.
		return &retryError{cause: err}
	}
	kind, ok := wireErrors[ce.Code()]
	switch {
	case !ok:
		return fmt.Errorf("server error: %w", err)
	case kind == errRetry:
		return &retryError{cause: err}
	case kind == ErrWaitTimeout && ce.Message() != waitTimeoutMessage:
		return &retryError{cause: err}
	}
	return &serverError{kind: kind, ce: ce}
}

// endError is what a call returns when its context ended before a
// definite answer: ErrNoLeader (with the context's error) when the last
// completed attempt failed to reach a leader, else the context's error.
func endError(ctx context.Context, last error) error {
	if last != nil {
		return fmt.Errorf("%w: %w (last error: %v)", ErrNoLeader, ctx.Err(), last)
	}
	return ctx.Err()
}

func isRetry(err error) bool { return errors.Is(err, errRetry) }

func asConnect(err error, target **connect.Error) bool { return errors.As(err, target) }

package fence

import "errors"

// Errors of the package. Refusals wrap ErrFenced, so errors.Is(err,
// ErrFenced) tells "a newer holder has written" from a failure.
var (
	// ErrFenced: the write was refused because a higher fencing token has
	// already been accepted for the resource. The caller is no longer the
	// holder; it must not retry with the same token.
	ErrFenced = errors.New("fenced off: a newer lock holder has written")
	// ErrNoToken: the token is 0 or absent (raftlock never issues 0), so
	// the caller did not pass its token along.
	ErrNoToken = errors.New("fencing token is missing")
	// ErrBadToken: the token is not a decimal uint64, or does not fit the
	// storage (BIGINT columns hold at most 2^63-1).
	ErrBadToken = errors.New("fencing token is malformed")
	// ErrNoRow: the row to claim does not exist.
	ErrNoRow = errors.New("fenced row does not exist")
)

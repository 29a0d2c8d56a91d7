package fsm

import "errors"

// Errors of command validation and decoding. Validation errors are wrapped
// with the name of the field ("keys[2]: key is empty").
var (
	// ErrNoKeys: a request that needs keys names none.
	ErrNoKeys = errors.New("at least one key is required")
	// ErrTooManyKeys: more than MaxKeys distinct keys.
	ErrTooManyKeys = errors.New("too many keys")
	// ErrEmptyKey: a key is the empty string.
	ErrEmptyKey = errors.New("key is empty")
	// ErrKeyTooLong: a key is longer than MaxKeyLen bytes.
	ErrKeyTooLong = errors.New("key is too long")
	// ErrKeyNotUTF8: a key is not valid UTF-8.
	ErrKeyNotUTF8 = errors.New("key is not valid UTF-8")
	// ErrKeyHasNUL: a key contains a NUL byte.
	ErrKeyHasNUL = errors.New("key contains a NUL byte")
	// ErrOwnerTooLong: an owner id is longer than MaxOwnerLen bytes.
	ErrOwnerTooLong = errors.New("owner id is too long")
	// ErrOwnerNotUTF8: an owner id is not valid UTF-8.
	ErrOwnerNotUTF8 = errors.New("owner id is not valid UTF-8")
	// ErrRequestIDTooLong: a request id is longer than MaxRequestIDLen bytes.
	ErrRequestIDTooLong = errors.New("request id is too long")
	// ErrNegativeDuration: a duration is below zero.
	ErrNegativeDuration = errors.New("duration must not be negative")
	// ErrDurationTooLong: a duration is above its limit.
	ErrDurationTooLong = errors.New("duration is too long")
	// ErrUnknownMode: an Acquire names a mode this build does not know.
	ErrUnknownMode = errors.New("unknown mode")
	// ErrNotSemaphore: permits or a limit on a request that is not a
	// semaphore request.
	ErrNotSemaphore = errors.New("only semaphore requests take permits and a limit")
	// ErrLimitOutOfRange: a semaphore limit outside 1 to MaxLimit.
	ErrLimitOutOfRange = errors.New("semaphore limit out of range")
	// ErrPermitsOutOfRange: permits outside 1 to the semaphore's limit.
	ErrPermitsOutOfRange = errors.New("permits out of range")
	// ErrOwnerRequired: a shared or semaphore hold without an owner id.
	ErrOwnerRequired = errors.New("an owner id is required")
	// ErrRequestIDReused: a request id was seen before with a different
	// request.
	ErrRequestIDReused = errors.New("request id was used before for a different request")

	// ErrUnsupportedVersion: an encoded command or snapshot has a version
	// this build does not know.
	ErrUnsupportedVersion = errors.New("unsupported encoding version")
	// ErrCorrupt: an encoded command or snapshot is malformed.
	ErrCorrupt = errors.New("malformed encoding")

	// ErrRestore: a table read from a backup cannot be prepared as asked
	// (PrepareRestore: an index below its own, a version this build does
	// not know).
	ErrRestore = errors.New("cannot prepare the restore")
)

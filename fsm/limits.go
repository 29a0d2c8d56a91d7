package fsm

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Limits of a command. They are part of the state machine's definition: a
// command over a limit is rejected (CodeInvalid) identically on every replica.
const (
	// MaxKeys is the most keys one request may name (after de-duplication).
	MaxKeys = 64
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 512
	// MaxOwnerLen is the longest owner id, in bytes.
	MaxOwnerLen = 256
	// MaxRequestIDLen is the longest request id, in bytes.
	MaxRequestIDLen = 128
	// MaxExpire is the longest time to live of a lock.
	MaxExpire = 7 * 24 * time.Hour
	// MaxWait is the longest wait timeout of an Acquire.
	MaxWait = time.Hour
	// MaxLimit is the largest permit limit of a semaphore. A holder's
	// permits are numbered slots (0 to limit-1) kept with its hold and its
	// request's record, so the limit bounds what one grant stores.
	MaxLimit = 1000
)

// ValidateMode checks the mode fields of an Acquire: shared and semaphore
// holds need a non-empty owner (a release must say whose hold it ends); a
// semaphore needs a limit of 1 to MaxLimit and 1 to limit permits; the other
// modes take neither. The error names the field.
func ValidateMode(mode Mode, permits, limit uint32, owner string) error {
	switch mode {
	case ModeExclusive, ModeShared:
		if permits != 0 {
			return fmt.Errorf("permits: %w (the request is %s)", ErrNotSemaphore, mode)
		}
		if limit != 0 {
			return fmt.Errorf("limit: %w (the request is %s)", ErrNotSemaphore, mode)
		}
	case ModeSemaphore:
		if limit == 0 || limit > MaxLimit {
			return fmt.Errorf("limit: %w (%d, must be 1 to %d)", ErrLimitOutOfRange, limit, MaxLimit)
		}
		if permits == 0 || permits > limit {
			return fmt.Errorf("permits: %w (%d, must be 1 to the limit %d)", ErrPermitsOutOfRange, permits, limit)
		}
	default:
		return fmt.Errorf("mode: %w (%d)", ErrUnknownMode, mode)
	}
	if mode != ModeExclusive && owner == "" {
		return fmt.Errorf("owner_id: %w (for a %s hold)", ErrOwnerRequired, mode)
	}
	return nil
}

// NormalizeKeys checks keys against the key rules and returns them sorted and
// de-duplicated in a new slice. The error names the offending element as
// "keys[i]" (the index in the caller's order).
func NormalizeKeys(keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("keys: %w", ErrNoKeys)
	}
	for i, k := range keys {
		if err := ValidateKey(k); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	out := slices.Clone(keys)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxKeys {
		return nil, fmt.Errorf("keys: %w (%d distinct keys, at most %d)", ErrTooManyKeys, len(out), MaxKeys)
	}
	return out, nil
}

// ValidateKey checks one key: 1 to MaxKeyLen bytes of UTF-8 without NUL.
func ValidateKey(k string) error {
	switch {
	case k == "":
		return ErrEmptyKey
	case len(k) > MaxKeyLen:
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrKeyTooLong, len(k), MaxKeyLen)
	case !utf8.ValidString(k):
		return ErrKeyNotUTF8
	}
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return ErrKeyHasNUL
		}
	}
	return nil
}

// ValidateOwner checks an owner id: 0 to MaxOwnerLen bytes of UTF-8.
func ValidateOwner(o string) error {
	if len(o) > MaxOwnerLen {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrOwnerTooLong, len(o), MaxOwnerLen)
	}
	if !utf8.ValidString(o) {
		return ErrOwnerNotUTF8
	}
	return nil
}

// ValidateRequestID checks a request id: 0 to MaxRequestIDLen bytes.
func ValidateRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrRequestIDTooLong, len(id), MaxRequestIDLen)
	}
	return nil
}

// ValidateExpire checks a time to live: 0 (never expires) to MaxExpire.
func ValidateExpire(d time.Duration) error {
	if d < 0 {
		return ErrNegativeDuration
	}
	if d > MaxExpire {
		return fmt.Errorf("%w (%s, at most %s)", ErrDurationTooLong, d, MaxExpire)
	}
	return nil
}

// ValidateWait checks a wait timeout: 0 (fail at once) to MaxWait.
func ValidateWait(d time.Duration) error {
	if d < 0 {
		return ErrNegativeDuration
	}
	if d > MaxWait {
		return fmt.Errorf("%w (%s, at most %s)", ErrDurationTooLong, d, MaxWait)
	}
	return nil
}

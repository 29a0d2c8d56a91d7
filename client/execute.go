package client

import (
	"context"
	"errors"
	"fmt"
	"os"
)

type lockKey struct{}

// LockFromContext returns the Lock that Execute holds while fn runs, from
// the context Execute passed to fn; use it to read the fencing token.
func LockFromContext(ctx context.Context) (*Lock, bool) {
	l, ok := ctx.Value(lockKey{}).(*Lock)
	return l, ok
}

// Execute runs fn while holding a lock on keys, and releases the lock in
// every case: when fn returns, fails, panics (the panic goes on after the
// release) or ctx ends. It returns fn's error unchanged, or an error
// matching ErrLockLost (and wrapping fn's error, if any) when the lock
// was lost while fn ran.
//
// Defaults: an owner unique to this call (so the lock is not re-entrant
// across calls), a wait of DefaultExecuteWait (5 s), a time to live of
// DefaultExpire (60 s), renewed every third of it while fn runs. The wait
// bounds only the wait for the keys, never fn. Acquire failures are
// returned as Acquire returns them (ErrLockHeld, ErrWaitTimeout, ...), and
// then fn does not run.
//
// fn's context is cancelled when ctx ends or the lock can no longer be
// guaranteed (see Lock.Done); context.Cause then tells why. fn should stop
// touching the protected resource at once, and pass the fencing token
// (LockFromContext) to it so a resource can refuse a late write.
func (c *Client) Execute(ctx context.Context, keys []string, fn func(ctx context.Context) error, opts ...LockOption) (err error) {
	o := lockOptions{expire: DefaultExpire, wait: DefaultExecuteWait}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.ownerSet {
		o.owner = executeOwner()
	}
	o.autoRefresh = true
	l, err := c.acquire(ctx, keys, o)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(context.WithValue(ctx, lockKey{}, l))
	defer cancel(nil)
	go func() {
		select {
		case <-l.Done():
			cancel(l.Err())
		case <-fctx.Done():
		}
	}()

	panicked := true
	defer func() {
		var lost error // the lock was lost while fn ran (not released by fn itself)
		if lerr := l.Err(); errors.Is(lerr, ErrLockLost) {
			lost = lerr
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.cleanupTimeout)
		if rerr := l.Release(rctx); rerr != nil && lost == nil {
			c.log.Warn("execute: release failed; the lock lasts until it expires", "keys", l.keys, "owner", l.owner, "err", rerr)
		}
		rcancel()
		if panicked {
			return // the panic continues
		}
		if lost != nil {
			if err != nil {
				err = fmt.Errorf("%w; fn returned: %w", lost, err)
			} else {
				err = lost
			}
		}
	}()
	err = fn(fctx)
	panicked = false
	return err
}

// executeOwner returns an owner unique to one Execute call, readable in
// listings: "exec:<host>:<pid>:<random>".
func executeOwner() string {
	host, _ := os.Hostname()
	if len(host) > 64 {
		host = host[:64]
	}
	return fmt.Sprintf("exec:%s:%d:%s", host, os.Getpid(), newID()[:16])
}

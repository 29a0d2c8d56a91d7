package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// Lock is a lock held on a set of keys, as returned by Acquire.
//
// Holding a lock is never a certainty in a distributed system: a process
// can pause, a network can split. The client therefore keeps a
// conservative deadline (Deadline) by its own monotonic clock, which ends
// before the server can let anyone else take the keys, and closes Done
// when that deadline passes without a successful refresh, or when a
// refresh finds the lock gone. Past that point, only the fencing token
// (Token) protects a resource: pass it along with every write, and have
// the resource reject tokens lower than the highest it has seen.
//
// A Lock is safe for concurrent use.
type Lock struct {
	c      *Client
	keys   []string
	tokens []uint64
	token  uint64
	owner  string
	rid    string        // request id of the Acquire that granted it
	expire time.Duration // as asked; 0: never expires
	mode   Mode
	limit  int                 // semaphore only
	slots  map[string][]uint32 // semaphore only: slots per key
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	ttl      time.Duration // as the server stated it; 0: never expires
	lastSent time.Time     // when the last successful acquire or refresh was sent
	deadline time.Time     // zero when ttl is 0
	timer    *time.Timer
	done     chan struct{}
	err      error
	released bool // a Release succeeded on the server
}

// Keys returns the locked keys, sorted and without duplicates.
func (l *Lock) Keys() []string { return slices.Clone(l.keys) }

// Owner returns the lock's owner ("" for an anonymous lock).
func (l *Lock) Owner() string { return l.owner }

// RequestID returns the request id the grant is recorded under: the one
// given with WithRequestID (or a random one), or, if the server withdrew
// the first attempt's wait and the client asked again, that id with "#1",
// "#2", ... appended.
func (l *Lock) RequestID() string { return l.rid }

// Token returns the lock's fencing token: the highest token among its
// keys. Tokens of a key strictly increase with every new grant, across
// leader changes and restarts, so a resource that remembers the highest
// token it has seen can refuse a late write from an earlier holder.
func (l *Lock) Token() uint64 { return l.token }

// Tokens returns the fencing token of each key. The keys granted together
// share one token; a key this owner already held keeps its older token.
func (l *Lock) Tokens() map[string]uint64 {
	m := make(map[string]uint64, len(l.keys))
	for i, k := range l.keys {
		m[k] = l.tokens[i]
	}
	return m
}

// Deadline returns the client's conservative deadline: the moment the
// last successful Acquire or Refresh was sent, plus the time to live the
// server stated, minus the safety margin, by the client's monotonic clock.
// The server counts the time to live from when it granted or refreshed,
// which is later than the send, in cluster time, which never runs ahead
// of a leader's clock; so until Deadline nobody else can hold the keys.
// The zero time means the lock never expires (WithExpire(0)).
func (l *Lock) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Done returns a channel that is closed when the lock can no longer be
// guaranteed: its deadline passed without a successful refresh, a
// refresh found it no longer held, it was released, or the Client was
// closed. Err tells which. For a lock that never expires (WithExpire(0))
// there is no deadline: Done closes only on Release, Close, or a Refresh
// that finds the lock gone (say, after an administrative ForceRelease).
func (l *Lock) Done() <-chan struct{} { return l.done }

// Err returns nil while Done is open. Afterwards it returns an error
// matching ErrLockLost (with the reason; also ErrNotHeld when the server
// said so), or ErrReleased after Release.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Refresh extends the lock by its time to live from now and moves the
// deadline accordingly. It retries until ctx ends. When the server says
// the lock is no longer held, Refresh closes Done and returns an error
// matching ErrLockLost and ErrNotHeld. After Done is closed it returns
// Err without asking the server.
func (l *Lock) Refresh(ctx context.Context, opts ...CallOption) error {
	if err := l.Err(); err != nil {
		return err
	}
	return l.refresh(ctx, callRequestID(opts))
}

// Release frees the lock's keys, only if they still carry this lock's
// fencing tokens: a late Release never frees a newer holder's lock. It
// stops the automatic refresh and closes Done first, then asks the server,
// retrying until ctx ends. Release returns nil once the keys are freed (or
// were freed by an earlier Release), and an error matching ErrNotHeld when
// the lock had already expired or been taken over. Calling it again after
// an error retries. Re-entrant acquires are not counted: one Release frees
// the keys for every handle of the same owner.
func (l *Lock) Release(ctx context.Context, opts ...CallOption) error {
	l.fail(ErrReleased)
	l.mu.Lock()
	done := l.released
	l.mu.Unlock()
	if done {
		return nil
	}
	rid := callRequestID(opts)
	groups := groupByToken(l.keys, l.tokens)
	tokens := make([]uint64, 0, len(groups))
	for token := range groups {
		tokens = append(tokens, token)
	}
	slices.Sort(tokens)
	for i, token := range tokens {
		id := rid
		if i > 0 {
			id = fmt.Sprintf("%s/%d", rid, i+1)
		}
		if err := l.c.releaseToken(ctx, groups[token], l.owner, token, id); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	return nil
}

func groupByToken(keys []string, tokens []uint64) map[uint64][]string {
	g := map[uint64][]string{}
	for i, k := range keys {
		g[tokens[i]] = append(g[tokens[i]], k)
	}
	return g
}

// margin is the part of a time to live the client does not count on.
func (c *Client) margin(ttl time.Duration) time.Duration {
	return min(c.cfg.safetyMargin+ttl/1000, ttl/3)
}

// ttlOf is the shortest time to live the server stated for the keys; 0
// when none of them expires.
func ttlOf(locks []*raftlockv1.Lock) time.Duration {
	var ttl time.Duration
	for _, lk := range locks {
		if lk.ExpiresIn != nil {
			d := max(lk.ExpiresIn.AsDuration(), 0)
			if ttl == 0 || d < ttl {
				ttl = d
			}
			if d == 0 {
				return time.Nanosecond // already due: a deadline in the past
			}
		}
	}
	return ttl
}

// Acquire locks every key, all or nothing, and returns the held lock.
//
// Defaults: the anonymous owner, a time to live of DefaultExpire (60 s),
// no waiting, no automatic refresh; see WithOwner, WithExpire, WithWait,
// WithRequestID and WithAutoRefresh. When a key is busy, Acquire fails at
// once with ErrLockHeld, or with a wait timeout waits in a fair (FIFO)
// queue and fails with ErrWaitTimeout when the wait ends.
//
// Acquire retries across failed nodes and leader changes with the same
// request id, so it acquires at most once. If ctx ends while the outcome
// is unknown, Acquire returns the context's error (with ErrNoLeader when
// no leader could be reached) and cleans up in the background: it
// withdraws the request and, if it was granted after all, releases what
// it granted, so nothing is left held.
func (c *Client) Acquire(ctx context.Context, keys []string, opts ...LockOption) (*Lock, error) {
	o := lockOptions{expire: DefaultExpire}
	for _, opt := range opts {
		opt(&o)
	}
	return c.acquire(ctx, keys, o)
}

// maxRequestID is the server's limit on a request id's length.
const maxRequestID = 128

func (c *Client) acquire(ctx context.Context, keys []string, o lockOptions) (*Lock, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: keys: at least one key is required", ErrInvalidArgument)
	}
	rid := o.requestID
	if rid == "" {
		rid = newID()
	}
	first, reissues := rid, 0
	wait := o.wait
	waitEnd := time.Now().Add(wait)
	for {
		req := &raftlockv1.AcquireRequest{Keys: keys, OwnerId: o.owner, RequestId: rid}
		o.setMode(req)
		if o.expire > 0 {
			req.Expire = durationpb.New(o.expire)
		}
		if wait > 0 {
			req.WaitTimeout = durationpb.New(wait)
		}
		var resp *raftlockv1.AcquireResponse
		var sent time.Time // when this request id was first sent
		tries := 0         // of this request id: the nodes tell a later try from a stale earlier one
		err := c.call(ctx, "acquire", wait, func(actx context.Context, s *stub) (http.Header, error) {
			if sent.IsZero() {
				sent = time.Now()
			}
			tries++
			creq := connect.NewRequest(req)
			creq.Header().Set(attemptHeader, strconv.Itoa(min(tries, maxTries)))
			r, err := s.lock.Acquire(actx, creq)
			if err != nil {
				return nil, err
			}
			resp = r.Msg
			return r.Header(), nil
		})
		switch {
		case err == nil:
			return c.newLock(ctx, resp, o, sent)
		case errors.Is(err, errWithdrawn):
			// The server withdrew the waiter of this id (it saw an
			// earlier attempt's connection go away): nothing is held
			// under it. Ask again with a new id for what is left of the
			// wait.
			c.log.Debug("acquire withdrawn by the server; asking again with a new request id", "request_id", rid)
			if o.wait > 0 {
				if wait = time.Until(waitEnd); wait <= 0 {
					return nil, ErrWaitTimeout
				}
			}
			// The new id is derived from the caller's, so that a caller who
			// looks up outcomes by its id can find the re-issues too.
			reissues++
			if rid = fmt.Sprintf("%s#%d", first, reissues); len(rid) > maxRequestID {
				rid = newID()
			}
			continue
		case ctx.Err() != nil && !sent.IsZero():
			c.abandon(rid)
		case errors.Is(err, ErrNotHeld):
			// failed_precondition on an Acquire: the request disagrees with
			// how a key is used, or the cluster cannot take its mode yet.
			var se *serverError
			if errors.As(err, &se) {
				err = &serverError{kind: ErrWrongMode, ce: se.ce}
			}
		}
		return nil, err
	}
}

// newLock makes the Lock of a granted Acquire sent at sent.
func (c *Client) newLock(ctx context.Context, resp *raftlockv1.AcquireResponse, o lockOptions, sent time.Time) (*Lock, error) {
	l := &Lock{
		c: c, token: resp.FencingToken, owner: o.owner, rid: resp.RequestId, expire: o.expire,
		done: make(chan struct{}), lastSent: sent, mode: o.mode,
	}
	if o.mode == Semaphore {
		l.limit, l.slots = o.limit, map[string][]uint32{}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for _, lk := range resp.Locks {
		l.keys = append(l.keys, lk.Key)
		l.tokens = append(l.tokens, lk.FencingToken)
		if l.slots != nil {
			l.slots[lk.Key] = lk.Slots
		}
	}
	l.ttl = ttlOf(resp.Locks)
	if l.ttl > 0 {
		l.deadline = sent.Add(l.ttl - c.margin(l.ttl))
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.releaseInBackground(l.keys, l.tokens, l.owner)
		return nil, ErrClosed
	}
	c.locks[l] = struct{}{}
	c.mu.Unlock()

	if l.ttl > 0 && !time.Now().Before(l.deadline) {
		// A long wait used up the deadline counted from the send: refresh
		// once, to count from now (extend arms the deadline timer).
		if err := l.refresh(ctx, newID()); err != nil {
			l.fail(fmt.Errorf("%w: %w", ErrLockLost, err))
			c.releaseInBackground(l.keys, l.tokens, l.owner)
			return nil, fmt.Errorf("acquire: granted too late to be used, and the refresh failed: %w", err)
		}
	} else if l.ttl > 0 {
		l.mu.Lock()
		l.timer = time.AfterFunc(time.Until(l.deadline), l.checkDeadline)
		l.mu.Unlock()
	}
	if o.autoRefresh && l.ttl > 0 {
		c.background(l.keep)
	}
	return l, nil
}

// checkDeadline runs when the deadline timer fires.
func (l *Lock) checkDeadline() {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	if left := time.Until(l.deadline); left > 0 || l.deadline.IsZero() {
		if left > 0 {
			l.timer.Reset(left) // a refresh moved it
		}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.fail(fmt.Errorf("%w: no successful refresh before the conservative deadline", ErrLockLost))
}

// fail closes Done with err, once; later calls change nothing.
func (l *Lock) fail(err error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = err
	close(l.done)
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	l.cancel()
	l.c.mu.Lock()
	delete(l.c.locks, l)
	l.c.mu.Unlock()
	if errors.Is(err, ErrLockLost) && !errors.Is(err, ErrClosed) {
		l.c.log.Warn("lock lost", "keys", l.keys, "owner", l.owner, "token", l.token, "err", err)
	}
}

// extend records a successful refresh sent at sent.
func (l *Lock) extend(sent time.Time, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if sent.After(l.lastSent) {
		l.lastSent = sent
	}
	l.ttl = ttl
	if ttl == 0 {
		l.deadline = time.Time{}
		if l.timer != nil {
			l.timer.Stop()
		}
		return
	}
	if d := sent.Add(ttl - l.c.margin(ttl)); d.After(l.deadline) {
		l.deadline = d
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(time.Until(l.deadline), l.checkDeadline)
	} else {
		l.timer.Reset(time.Until(l.deadline))
	}
}

// refresh sends one Refresh (retried with its request id until ctx ends).
func (l *Lock) refresh(ctx context.Context, rid string) error {
	req := &raftlockv1.RefreshRequest{Keys: l.keys, OwnerId: l.owner, RequestId: rid}
	if l.expire > 0 {
		// Always say the time to live: a re-entrant Acquire of the same
		// owner may have changed the one the server keeps.
		req.Expire = durationpb.New(l.expire)
	}
	var resp *raftlockv1.RefreshResponse
	var sent time.Time
	err := l.c.call(ctx, "refresh", 0, func(actx context.Context, s *stub) (http.Header, error) {
		if sent.IsZero() {
			sent = time.Now()
		}
		r, err := s.lock.Refresh(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		resp = r.Msg
		return r.Header(), nil
	})
	if err != nil {
		if errors.Is(err, ErrNotHeld) {
			l.fail(fmt.Errorf("%w: %w", ErrLockLost, err))
			return l.Err()
		}
		return err
	}
	if len(resp.Locks) != len(l.keys) {
		return fmt.Errorf("refresh: the server described %d keys, want %d", len(resp.Locks), len(l.keys))
	}
	for i, lk := range resp.Locks {
		if lk.Key != l.keys[i] || lk.FencingToken != l.tokens[i] {
			// Same owner, other grant: an anonymous lock that expired and
			// was taken by another anonymous caller.
			l.fail(fmt.Errorf("%w: %w: key %q now carries fencing token %d, not %d", ErrLockLost, ErrNotHeld, lk.Key, lk.FencingToken, l.tokens[i]))
			return l.Err()
		}
	}
	l.extend(sent, ttlOf(resp.Locks))
	return nil
}

// keep refreshes the lock every third of its time to live until Done.
func (l *Lock) keep() {
	backoff := l.c.cfg.minBackoff
	for {
		l.mu.Lock()
		next, deadline, ttl := l.lastSent.Add(l.ttl/3), l.deadline, l.ttl
		l.mu.Unlock()
		if ttl == 0 || !l.pause(time.Until(next)) {
			return
		}
		ctx, cancel := context.WithDeadline(l.ctx, deadline)
		err := l.refresh(ctx, newID())
		cancel()
		if err == nil {
			backoff = l.c.cfg.minBackoff
			continue
		}
		if l.Err() != nil {
			return
		}
		l.c.log.Debug("refresh failed; retrying until the deadline", "keys", l.keys, "err", err)
		if !l.pause(jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, l.c.cfg.maxBackoff)
	}
}

// pause waits d; it reports false if Done closed first.
func (l *Lock) pause(d time.Duration) bool {
	if d <= 0 {
		return l.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// held reports whether a live Lock of this client holds key for owner
// under token.
func (c *Client) held(owner, key string, token uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for l := range c.locks {
		if l.owner != owner {
			continue
		}
		if i := slices.Index(l.keys, key); i >= 0 && l.tokens[i] == token {
			return true
		}
	}
	return false
}

// abandon cleans up, in the background and within the cleanup timeout,
// after an Acquire whose outcome was unknown when its caller gave up: it
// withdraws the request and, if the request was granted after all,
// releases what it granted.
func (c *Client) abandon(rid string) {
	if !c.cfg.abandonCleanup {
		return
	}
	c.background(func() {
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), backgroundKey{}, true), c.cfg.cleanupTimeout)
		defer cancel()
		// A cancel that reaches the leader before the Acquire does leaves a
		// tombstone there, so the Acquire, if it arrives later, is refused:
		// one answer is final.
		out, err := c.cancelAcquire(ctx, rid)
		if err != nil {
			c.log.Warn("could not withdraw an abandoned acquire; if it was granted it lasts until it expires", "request_id", rid, "err", err)
			return
		}
		if out.State == raftlockv1.RequestState_REQUEST_STATE_SUCCEEDED {
			c.releaseGrant(ctx, out)
		}
	})
}

// releaseGrant frees what a granted Acquire took: the keys that carry its
// token (the highest), unless a live Lock of this client holds them under
// that token. Keys with older tokens were already held by the owner
// before (re-entrant) and are left alone.
func (c *Client) releaseGrant(ctx context.Context, out *raftlockv1.RequestOutcome) {
	var keys []string
	for i, k := range out.Keys {
		if i < len(out.FencingTokens) && out.FencingTokens[i] == out.FencingToken && !c.held(out.OwnerId, k, out.FencingToken) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	if err := c.releaseToken(ctx, keys, out.OwnerId, out.FencingToken, newID()); err != nil && !errors.Is(err, ErrNotHeld) {
		c.log.Warn("could not release the grant of an abandoned acquire; it lasts until it expires", "keys", keys, "err", err)
		return
	}
	c.log.Info("released the grant of an abandoned acquire", "keys", keys, "token", out.FencingToken)
}

// releaseInBackground releases keys under their tokens within the cleanup
// timeout.
func (c *Client) releaseInBackground(keys []string, tokens []uint64, owner string) {
	c.background(func() {
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), backgroundKey{}, true), c.cfg.cleanupTimeout)
		defer cancel()
		for token, ks := range groupByToken(keys, tokens) {
			if err := c.releaseToken(ctx, ks, owner, token, newID()); err != nil && !errors.Is(err, ErrNotHeld) {
				c.log.Warn("background release failed; the lock lasts until it expires", "keys", ks, "err", err)
			}
		}
	})
}

// background runs fn on its own goroutine, which Close waits for. Once
// Close has begun, fn runs anyway but is not waited for.
func (c *Client) background(fn func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		go fn()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		fn()
	}()
}

func (c *Client) cancelAcquire(ctx context.Context, rid string) (*raftlockv1.RequestOutcome, error) {
	var out *raftlockv1.RequestOutcome
	err := c.call(ctx, "cancel acquire", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.CancelAcquire(actx, connect.NewRequest(&raftlockv1.CancelAcquireRequest{RequestId: rid}))
		if err != nil {
			return nil, err
		}
		out = r.Msg.GetOutcome()
		return r.Header(), nil
	})
	if out == nil {
		out = &raftlockv1.RequestOutcome{}
	}
	return out, err
}

// releaseToken frees keys held by owner under token, exactly once.
func (c *Client) releaseToken(ctx context.Context, keys []string, owner string, token uint64, rid string) error {
	req := &raftlockv1.ReleaseRequest{Keys: keys, OwnerId: owner, RequestId: rid, FencingToken: &token}
	return c.call(ctx, "release", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.Release(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Header(), nil
	})
}

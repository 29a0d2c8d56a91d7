package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/fsm"
)

// API limits beyond the lock table's own (fsm.MaxKeys and friends).
const (
	// DefaultListLimit is the page size of ListLocks when none is asked.
	DefaultListLimit = 1000
	// MaxListLimit is the largest page of ListLocks.
	MaxListLimit = 10000
)

// lockService implements raftlock.v1.LockService on a node.
type lockService struct{ n *Node }

var _ raftlockv1connect.LockServiceHandler = (*lockService)(nil)

// Acquire grants keys, or waits for them; see waiting.go for how a waiting
// Acquire is answered and what happens when its caller goes away.
func (s *lockService) Acquire(ctx context.Context, req *connect.Request[raftlockv1.AcquireRequest]) (*connect.Response[raftlockv1.AcquireResponse], error) {
	m := req.Msg
	c, err := commandFor(fsm.OpAcquire, m.Keys, m.OwnerId, m.RequestId)
	if err != nil {
		return nil, err
	}
	if c.Expire, err = duration("expire", m.Expire, fsm.ValidateExpire); err != nil {
		return nil, err
	}
	if c.Wait, err = duration("wait_timeout", m.WaitTimeout, fsm.ValidateWait); err != nil {
		return nil, err
	}
	if err := s.n.setMode(ctx, c, m); err != nil {
		return nil, err
	}
	r, err := s.n.acquire(ctx, c, m.RequestId != "", tryOf(req.Header()))
	if err == nil {
		err = resultError(r)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&raftlockv1.AcquireResponse{FencingToken: r.Token(), Locks: s.locksOf(r, r.Now, c.Mode, c.Limit), RequestId: c.RequestID}), nil
}

func (s *lockService) Release(ctx context.Context, req *connect.Request[raftlockv1.ReleaseRequest]) (*connect.Response[raftlockv1.ReleaseResponse], error) {
	m := req.Msg
	c, err := commandFor(fsm.OpRelease, m.Keys, m.OwnerId, m.RequestId)
	if err != nil {
		return nil, err
	}
	if m.FencingToken != nil {
		c.HasToken, c.Token = true, *m.FencingToken
	}
	r, err := s.commit(ctx, c)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&raftlockv1.ReleaseResponse{Released: r.Released}), nil
}

func (s *lockService) ReleaseAll(ctx context.Context, req *connect.Request[raftlockv1.ReleaseAllRequest]) (*connect.Response[raftlockv1.ReleaseAllResponse], error) {
	m := req.Msg
	if err := fsm.ValidateOwner(m.OwnerId); err != nil {
		return nil, invalidArg("owner_id: %v", err)
	}
	rid, err := requestID(m.RequestId)
	if err != nil {
		return nil, err
	}
	r, err := s.commit(ctx, &fsm.Command{Op: fsm.OpReleaseAll, Owner: m.OwnerId, RequestID: rid, Keys: callerPrefixes(ctx)})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&raftlockv1.ReleaseAllResponse{ReleasedCount: uint32(r.Count)}), nil
}

func (s *lockService) Refresh(ctx context.Context, req *connect.Request[raftlockv1.RefreshRequest]) (*connect.Response[raftlockv1.RefreshResponse], error) {
	m := req.Msg
	c, err := commandFor(fsm.OpRefresh, m.Keys, m.OwnerId, m.RequestId)
	if err != nil {
		return nil, err
	}
	if c.Expire, err = duration("expire", m.Expire, fsm.ValidateExpire); err != nil {
		return nil, err
	}
	r, err := s.commit(ctx, c)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&raftlockv1.RefreshResponse{Locks: s.locksOf(r, r.Now, fsm.ModeExclusive, 0)}), nil
}

func (s *lockService) ForceRelease(ctx context.Context, req *connect.Request[raftlockv1.ForceReleaseRequest]) (*connect.Response[raftlockv1.ForceReleaseResponse], error) {
	m := req.Msg
	c, err := commandFor(fsm.OpForceRelease, m.Keys, "", m.RequestId)
	if err != nil {
		return nil, err
	}
	r, err := s.commit(ctx, c)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&raftlockv1.ForceReleaseResponse{ReleasedCount: uint32(r.Count)}), nil
}

// CancelAcquire withdraws a waiting Acquire by its request id. A token
// limited to key prefixes may withdraw only requests within them: the lock
// table decides that on the state the cancel applies to (cluster version 2;
// before it, this node checks its own table after a read barrier).
func (s *lockService) CancelAcquire(ctx context.Context, req *connect.Request[raftlockv1.CancelAcquireRequest]) (*connect.Response[raftlockv1.CancelAcquireResponse], error) {
	rid := req.Msg.RequestId
	if rid == "" {
		return nil, invalidArg("request_id: required")
	}
	if err := fsm.ValidateRequestID(rid); err != nil {
		return nil, invalidArg("request_id: %v", err)
	}
	c := &fsm.Command{Op: fsm.OpCancelWait, RequestID: rid}
	if scope := callerPrefixes(ctx); scope != nil {
		if s.n.clusterVersion() >= fsm.Version2 {
			c.Keys = scope
		} else if err := s.outcomeVisible(ctx, scope, rid); err != nil {
			return nil, err
		}
	}
	r, err := s.n.propose(ctx, c, nil)
	if err == nil && r.Code == fsm.CodeDenied {
		err = fmt.Errorf("%w: %s", ErrPermissionDenied, r.Msg)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&raftlockv1.CancelAcquireResponse{Outcome: outcomeProto(r)}), nil
}

func (s *lockService) GetLock(ctx context.Context, req *connect.Request[raftlockv1.GetLockRequest]) (*connect.Response[raftlockv1.GetLockResponse], error) {
	if err := fsm.ValidateKey(req.Msg.Key); err != nil {
		return nil, invalidArg("key: %v", err)
	}
	now, err := s.n.readBarrier(ctx)
	if err != nil {
		return nil, err
	}
	resp := &raftlockv1.GetLockResponse{}
	s.n.fsm.Read(func(t *fsm.Table) {
		if l, ok := t.Get(req.Msg.Key); ok {
			resp.Lock = lockProto(l, now)
		}
	})
	return connect.NewResponse(resp), nil
}

func (s *lockService) ListLocks(ctx context.Context, req *connect.Request[raftlockv1.ListLocksRequest]) (*connect.Response[raftlockv1.ListLocksResponse], error) {
	m := req.Msg
	limit := int(m.Limit)
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		return nil, invalidArg("limit: %d is above the maximum of %d", limit, MaxListLimit)
	}
	if len(m.Prefix) > fsm.MaxKeyLen {
		return nil, invalidArg("prefix: longer than %d bytes", fsm.MaxKeyLen)
	}
	if err := fsm.ValidateOwner(m.OwnerId); err != nil {
		return nil, invalidArg("owner_id: %v", err)
	}
	now, err := s.n.readBarrier(ctx)
	if err != nil {
		return nil, err
	}
	resp := &raftlockv1.ListLocksResponse{}
	s.n.fsm.Read(func(t *fsm.Table) {
		locks, more := t.List(fsm.ListOptions{Prefix: m.Prefix, ByOwner: m.OwnerFilter, Owner: m.OwnerId, After: m.PageToken, Limit: limit})
		for _, l := range locks {
			resp.Locks = append(resp.Locks, lockProto(l, now))
		}
		if more {
			resp.NextPageToken = locks[len(locks)-1].Key
		}
	})
	return connect.NewResponse(resp), nil
}

// GetRequestOutcome reads what became of a request id, linearizably. A
// token limited to key prefixes sees only requests within them, decided
// after the read barrier, on the state the answer comes from.
func (s *lockService) GetRequestOutcome(ctx context.Context, req *connect.Request[raftlockv1.GetRequestOutcomeRequest]) (*connect.Response[raftlockv1.GetRequestOutcomeResponse], error) {
	rid := req.Msg.RequestId
	if rid == "" {
		return nil, invalidArg("request_id: required")
	}
	if err := fsm.ValidateRequestID(rid); err != nil {
		return nil, invalidArg("request_id: %v", err)
	}
	if _, err := s.n.readBarrier(ctx); err != nil {
		return nil, err
	}
	r, ok := s.n.localOutcome(rid)
	if ok && !keysWithin(r.Keys, callerPrefixes(ctx)) {
		return nil, fmt.Errorf("%w: may not see request %q", ErrPermissionDenied, rid)
	}
	out := &raftlockv1.RequestOutcome{}
	if ok {
		out = outcomeProto(&r)
	}
	return connect.NewResponse(&raftlockv1.GetRequestOutcomeResponse{Outcome: out}), nil
}

// outcomeVisible checks, after a read barrier, that the request rid (if
// this node's table knows it) touches only keys within scope.
func (s *lockService) outcomeVisible(ctx context.Context, scope []string, rid string) error {
	if _, err := s.n.readBarrier(ctx); err != nil {
		return err
	}
	if r, ok := s.n.localOutcome(rid); ok && !keysWithin(r.Keys, scope) {
		return fmt.Errorf("%w: may not see request %q", ErrPermissionDenied, rid)
	}
	return nil
}

// commit proposes a command that does not wait and turns a failure, or an
// outcome other than success, into the call's error.
func (s *lockService) commit(ctx context.Context, c *fsm.Command) (*fsm.Result, error) {
	r, err := s.n.propose(ctx, c, nil)
	if err == nil {
		err = resultError(r)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// commandFor validates the fields every keyed request shares and returns
// the command with keys normalised and a request id (the caller's, or a
// new one).
func commandFor(op fsm.Op, keys []string, owner, rid string) (*fsm.Command, error) {
	norm, err := fsm.NormalizeKeys(keys)
	if err != nil {
		return nil, invalidArg("%v", err)
	}
	if err := fsm.ValidateOwner(owner); err != nil {
		return nil, invalidArg("owner_id: %v", err)
	}
	if rid, err = requestID(rid); err != nil {
		return nil, err
	}
	return &fsm.Command{Op: op, Keys: norm, Owner: owner, RequestID: rid}, nil
}

func requestID(rid string) (string, error) {
	if rid == "" {
		return newRequestID(), nil
	}
	if err := fsm.ValidateRequestID(rid); err != nil {
		return "", invalidArg("request_id: %v", err)
	}
	return rid, nil
}

// durationLimits are the maxima of the request durations, for messages.
var durationLimits = map[string]time.Duration{"expire": fsm.MaxExpire, "wait_timeout": fsm.MaxWait}

func duration(field string, d *durationpb.Duration, check func(time.Duration) error) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalidArg("%s: %v", field, err)
	}
	if d.Seconds > math.MaxInt64/int64(time.Second) || d.Seconds < math.MinInt64/int64(time.Second) {
		// Beyond what a time.Duration holds (292 years): say what was sent,
		// not the saturated value.
		return 0, invalidArg("%s: %ds is above the maximum of %s", field, d.Seconds, durationLimits[field])
	}
	v := d.AsDuration()
	if err := check(v); err != nil {
		return 0, invalidArg("%s: %v", field, err)
	}
	return v, nil
}

// locksOf describes the caller's hold on each key of a result, with the
// mode and queue length read from this node's table (mode and limit when
// the key is no longer held: a retry's remembered answer).
func (s *lockService) locksOf(r *fsm.Result, now int64, mode fsm.Mode, limit uint32) []*raftlockv1.Lock {
	out := make([]*raftlockv1.Lock, len(r.Keys))
	s.n.fsm.Read(func(t *fsm.Table) {
		for i, k := range r.Keys {
			l := fsm.LockInfo{Key: k, Owner: r.Owner, Mode: mode, Limit: limit}
			if i < len(r.Tokens) {
				l.Token, l.Deadline = r.Tokens[i], r.Deadlines[i]
			}
			cur, ok := t.Get(k)
			if ok {
				l.Waiters, l.Mode, l.Limit = cur.Waiters, cur.Mode, cur.Limit
			}
			out[i] = lockProto(l, now)
			out[i].Slots = ownSlots(r, i, cur)
		}
	})
	return out
}

func lockProto(l fsm.LockInfo, now int64) *raftlockv1.Lock {
	return &raftlockv1.Lock{Key: l.Key, OwnerId: l.Owner, FencingToken: l.Token, Waiters: uint32(l.Waiters),
		ExpiresIn: expiresIn(l.Deadline, now), Mode: modeProto(l.Mode), Limit: l.Limit, Holders: holdersProto(l.Holders, now)}
}

func outcomeProto(r *fsm.Result) *raftlockv1.RequestOutcome {
	o := &raftlockv1.RequestOutcome{
		Kind: r.Op.String(), Keys: r.Keys, OwnerId: r.Owner, FencingToken: r.Token(), FencingTokens: r.Tokens,
		Released: r.Released, ReleasedCount: uint32(r.Count),
	}
	switch r.Code {
	case fsm.CodePending:
		o.State = raftlockv1.RequestState_REQUEST_STATE_PENDING
	case fsm.CodeOK:
		o.State = raftlockv1.RequestState_REQUEST_STATE_SUCCEEDED
	case fsm.CodeCancelled:
		o.State = raftlockv1.RequestState_REQUEST_STATE_CANCELLED
	default:
		o.State = raftlockv1.RequestState_REQUEST_STATE_FAILED
		o.ErrorCode, o.ErrorMessage = codeName(r.Code), outcomeMessage(r.Code, r.Key, r.Msg)
	}
	return o
}

// newRequestID returns a server-chosen request id for calls that came
// without one, so the node's own retries stay exactly-once.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "srv-" + hex.EncodeToString(b[:])
}

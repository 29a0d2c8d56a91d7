package client

import (
	"context"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// FenceStatus is what CheckFence found.
type FenceStatus struct {
	// Current is true when the token is still the key's current grant: the
	// key is held under exactly that token and its lease has not run out.
	Current bool
	// Lock describes the key as it is now (holder, current token); nil when
	// the key is free.
	Lock *LockInfo
}

// CheckFence asks the cluster whether token is still the current grant of
// key. The read is linearizable (the leader confirms its leadership with a
// quorum first: one ReadIndex round, no log entry), so a true answer means
// the token was current at some moment during the call. It may no longer
// be when the caller acts on it; a resource that must never accept a stale
// write keeps the highest token it has seen instead (package fence), and
// CheckFence serves resources that cannot, or a last look before an
// irreversible act.
func (c *Client) CheckFence(ctx context.Context, key string, token uint64) (FenceStatus, error) {
	if c.isClosed() {
		return FenceStatus{}, ErrClosed
	}
	if token == 0 {
		return FenceStatus{}, fmt.Errorf("%w: fencing token is required (tokens are never 0)", ErrInvalidArgument)
	}
	var out FenceStatus
	err := c.call(ctx, "check fence", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.CheckFence(actx, connect.NewRequest(&raftlockv1.CheckFenceRequest{Key: key, FencingToken: token}))
		if err != nil {
			return nil, err
		}
		out = FenceStatus{Current: r.Msg.Current}
		if r.Msg.Lock != nil {
			li := lockInfo(r.Msg.Lock)
			out.Lock = &li
		}
		return r.Header(), nil
	})
	return out, err
}

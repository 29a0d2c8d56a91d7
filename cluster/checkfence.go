package cluster

import (
	"context"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/fsm"
)

// CheckFence tells whether a fencing token is still the current grant of a
// key. It is a linearizable read like GetLock (readBarrier: one ReadIndex
// round, no log entry). A lock whose deadline has passed in cluster time
// is reported as it is (the next entry expires it) but not as current:
// its holder's lease is over, whether or not the expiry entry has been
// applied yet.
func (s *lockService) CheckFence(ctx context.Context, req *connect.Request[raftlockv1.CheckFenceRequest]) (*connect.Response[raftlockv1.CheckFenceResponse], error) {
	m := req.Msg
	if err := fsm.ValidateKey(m.Key); err != nil {
		return nil, invalidArg("key: %v", err)
	}
	if m.FencingToken == 0 {
		return nil, invalidArg("fencing_token: required (tokens are never 0)")
	}
	now, err := s.n.readBarrier(ctx)
	if err != nil {
		return nil, err
	}
	resp := &raftlockv1.CheckFenceResponse{}
	s.n.fsm.Read(func(t *fsm.Table) {
		if l, ok := t.Get(m.Key); ok {
			resp.Lock = lockProto(l, now)
			resp.Current = l.Token == m.FencingToken && (l.Deadline == 0 || l.Deadline > now)
		}
	})
	return connect.NewResponse(resp), nil
}

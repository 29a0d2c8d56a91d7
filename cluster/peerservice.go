package cluster

import (
	"context"

	"connectrpc.com/connect"

	peerv1 "github.com/raftlock/raftlock/api/gen/raftlock/peer/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/peer/v1/peerv1connect"
	"github.com/raftlock/raftlock/fsm"
)

// peerService is the leader's side of forwarding (forward.go is the
// follower's): it commits commands and answers read indexes for other
// nodes, and tells any node its supported version.
type peerService struct{ n *Node }

var _ peerv1connect.PeerServiceHandler = (*peerService)(nil)

// Propose stamps and commits a forwarded command; only a leader in office
// takes it.
func (s *peerService) Propose(ctx context.Context, req *connect.Request[peerv1.ProposeRequest]) (*connect.Response[peerv1.ProposeResponse], error) {
	o := s.n.leading()
	if o == nil {
		return nil, errNotReady
	}
	if _, err := fsm.Decode(req.Msg.Command); err != nil {
		return nil, invalidArg("command: %v", err)
	}
	if err := s.n.admitVersion(req.Msg.Command); err != nil {
		return nil, err
	}
	r, err := s.n.applyLocal(o, req.Msg.Command)
	if err != nil {
		return nil, err
	}
	resp := resultToV1(r)
	if resp.Result, err = r.AppendBinary(nil); err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// ReadIndex confirms leadership and returns the commit index and cluster
// time.
func (s *peerService) ReadIndex(ctx context.Context, req *connect.Request[peerv1.ReadIndexRequest]) (*connect.Response[peerv1.ReadIndexResponse], error) {
	o := s.n.leading()
	if o == nil {
		return nil, errNotReady
	}
	index, now, err := s.n.localReadIndex(o)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&peerv1.ReadIndexResponse{Index: index, Now: now}), nil
}

// Version reports what this build can apply, and the cluster id this node
// knows (clusterid.go).
func (s *peerService) Version(context.Context, *connect.Request[peerv1.VersionRequest]) (*connect.Response[peerv1.VersionResponse], error) {
	return connect.NewResponse(&peerv1.VersionResponse{Id: s.n.cfg.ID, SupportedVersion: fsm.SupportedVersion, ClusterId: s.n.clusterID.get()}), nil
}

// resultToV1 and resultFromV1 are the result as version 1 nodes send and
// read it (ProposeResponse fields 1 to 13), kept so that followers and
// leaders of both versions understand each other during a rolling upgrade.
// A version 2 node sends the whole result beside them and reads only that
// when it is there. Remove them once no cluster runs version 1.
func resultToV1(r *fsm.Result) *peerv1.ProposeResponse {
	return &peerv1.ProposeResponse{
		Code: uint32(r.Code), Key: r.Key, Msg: r.Msg, Keys: r.Keys, Owner: r.Owner, Tokens: r.Tokens,
		Deadlines: r.Deadlines, Released: r.Released, Count: uint32(r.Count), Now: r.Now, Index: r.Index,
		Duplicate: r.Duplicate, RequestId: r.RequestID,
	}
}

func resultFromV1(m *peerv1.ProposeResponse) *fsm.Result {
	return &fsm.Result{
		Code: fsm.Code(m.Code), Key: m.Key, Msg: m.Msg, Keys: m.Keys, Owner: m.Owner, Tokens: m.Tokens,
		Deadlines: m.Deadlines, Released: m.Released, Count: int(m.Count), Now: m.Now, Index: m.Index,
		Duplicate: m.Duplicate, RequestID: m.RequestId,
	}
}

package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/fsm"
)

// clusterService implements raftlock.v1.ClusterService on a node.
type clusterService struct{ n *Node }

var _ raftlockv1connect.ClusterServiceHandler = (*clusterService)(nil)

// Status describes this node's view of the cluster.
func (s *clusterService) Status(ctx context.Context, _ *connect.Request[raftlockv1.StatusRequest]) (*connect.Response[raftlockv1.StatusResponse], error) {
	return connect.NewResponse(s.n.Status()), nil
}

// Status describes this node's view of the cluster (the answer of
// ClusterService/Status).
func (n *Node) Status() *raftlockv1.StatusResponse {
	leaderAddr, leaderID := n.Leader()
	resp := &raftlockv1.StatusResponse{
		Id: n.cfg.ID, Address: n.cfg.Advertise, Role: strings.ToLower(n.raft.State().String()),
		LeaderId: leaderID, LeaderAddress: leaderAddr, Term: n.raft.CurrentTerm(),
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.Applied(),
	}
	resp.Ready = leaderAddr != "" && resp.AppliedIndex >= resp.CommitIndex
	resp.SupportedVersion, resp.ClusterId = fsm.SupportedVersion, n.clusterID.get()
	n.fsm.Read(func(t *fsm.Table) {
		st := t.Stats()
		resp.Locks, resp.Waiters, resp.ClusterVersion = uint64(st.Locks), uint64(st.Waiters), t.Version()
	})
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			v, _ := n.versions.get(string(srv.ID))
			resp.Members = append(resp.Members, &raftlockv1.Member{
				Id: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter,
				Leader: string(srv.ID) == leaderID, SupportedVersion: v,
			})
		}
	}
	return resp
}

// leaderAddr returns where a membership call must go: "" when this node
// leads, else the leader's address. A call that was already forwarded once
// is not forwarded again.
func (s *clusterService) leaderAddr(h interface{ Get(string) string }) (string, error) {
	if s.n.leading() != nil {
		return "", nil
	}
	addr, _ := s.n.Leader()
	if addr == "" || addr == s.n.cfg.Advertise || h.Get(forwardedHeader) != "" {
		return "", ErrNoLeader
	}
	return addr, nil
}

// forwarded copies a call for the leader. The leader sees this node's
// certificate (with TLS), and the caller's token, if any, goes along.
func forwarded[T any](req *connect.Request[T]) *connect.Request[T] {
	fwd := connect.NewRequest(req.Msg)
	fwd.Header().Set(forwardedHeader, "1")
	if a := req.Header().Get("Authorization"); a != "" {
		fwd.Header().Set("Authorization", a)
	}
	return fwd
}

func (s *clusterService) AddMember(ctx context.Context, req *connect.Request[raftlockv1.AddMemberRequest]) (*connect.Response[raftlockv1.AddMemberResponse], error) {
	m := req.Msg
	if m.Id == "" {
		return nil, invalidArg("id: required")
	}
	if _, _, err := net.SplitHostPort(m.Address); err != nil {
		return nil, invalidArg("address: %v", err)
	}
	addr, err := s.leaderAddr(req.Header())
	if err != nil {
		return nil, err
	}
	if addr != "" {
		return s.n.peers.clusterClient(addr).AddMember(ctx, forwarded(req))
	}
	if err := s.n.admitMember(ctx, m.Id, m.Address, m.SupportedVersion); err != nil {
		return nil, err
	}
	cf := s.n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, err
	}
	voter := m.Voter == nil || *m.Voter
	for _, srv := range cf.Configuration().Servers {
		if string(srv.ID) == m.Id && string(srv.Address) == m.Address && (srv.Suffrage == raft.Voter) == voter {
			return connect.NewResponse(&raftlockv1.AddMemberResponse{}), nil
		}
	}
	var f raft.IndexFuture
	if voter {
		f = s.n.raft.AddVoter(raft.ServerID(m.Id), raft.ServerAddress(m.Address), 0, s.n.cfg.ApplyTimeout)
	} else {
		f = s.n.raft.AddNonvoter(raft.ServerID(m.Id), raft.ServerAddress(m.Address), 0, s.n.cfg.ApplyTimeout)
	}
	if err := f.Error(); err != nil {
		return nil, err
	}
	s.n.log.Info("member added", "id", m.Id, "address", m.Address, "voter", voter)
	return connect.NewResponse(&raftlockv1.AddMemberResponse{}), nil
}

func (s *clusterService) RemoveMember(ctx context.Context, req *connect.Request[raftlockv1.RemoveMemberRequest]) (*connect.Response[raftlockv1.RemoveMemberResponse], error) {
	if req.Msg.Id == "" {
		return nil, invalidArg("id: required")
	}
	addr, err := s.leaderAddr(req.Header())
	if err != nil {
		return nil, err
	}
	if addr != "" {
		return s.n.peers.clusterClient(addr).RemoveMember(ctx, forwarded(req))
	}
	if _, ok := s.n.member(req.Msg.Id); !ok {
		return nil, notFound("id: no member %q", req.Msg.Id)
	}
	if err := s.n.raft.RemoveServer(raft.ServerID(req.Msg.Id), 0, s.n.cfg.ApplyTimeout).Error(); err != nil {
		return nil, err
	}
	s.n.log.Info("member removed", "id", req.Msg.Id)
	return connect.NewResponse(&raftlockv1.RemoveMemberResponse{}), nil
}

func (s *clusterService) TransferLeadership(ctx context.Context, req *connect.Request[raftlockv1.TransferLeadershipRequest]) (*connect.Response[raftlockv1.TransferLeadershipResponse], error) {
	addr, err := s.leaderAddr(req.Header())
	if err != nil {
		return nil, err
	}
	if addr != "" {
		return s.n.peers.clusterClient(addr).TransferLeadership(ctx, forwarded(req))
	}
	if c := req.Msg.IfLeaderId; c != "" && c != s.n.cfg.ID {
		// Leadership already moved away from the node the caller saw:
		// a retry of a transfer that happened, or a race with an election.
		return connect.NewResponse(&raftlockv1.TransferLeadershipResponse{LeaderId: s.n.cfg.ID, LeaderAddress: s.n.cfg.Advertise}), nil
	}
	var f raft.Future
	if id := req.Msg.Id; id != "" {
		srv, ok := s.n.member(id)
		if !ok {
			return nil, invalidArg("id: %q is not a member; leadership can only go to a voter", id)
		}
		if srv.Suffrage != raft.Voter {
			return nil, fmt.Errorf("%w: id: member %q is not a voter; leadership can only go to a voter", ErrNotVoter, id)
		}
		if id == s.n.cfg.ID {
			return connect.NewResponse(&raftlockv1.TransferLeadershipResponse{LeaderId: id, LeaderAddress: s.n.cfg.Advertise}), nil
		}
		f = s.n.raft.LeadershipTransferToServer(srv.ID, srv.Address)
	} else {
		other, err := s.n.hasOtherVoter()
		if err != nil {
			return nil, err
		}
		if !other {
			return nil, ErrNoOtherVoter
		}
		f = s.n.raft.LeadershipTransfer()
	}
	if err := f.Error(); err != nil {
		return nil, err
	}
	// Wait (briefly) until this node learns who leads now.
	deadline := time.Now().Add(s.n.cfg.ApplyTimeout)
	for {
		a, id := s.n.Leader()
		if (a != "" && id != s.n.cfg.ID) || time.Now().After(deadline) {
			return connect.NewResponse(&raftlockv1.TransferLeadershipResponse{LeaderId: id, LeaderAddress: a}), nil
		}
		if err := s.n.pause(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

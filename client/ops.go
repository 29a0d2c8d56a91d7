package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// LockInfo describes a held key, as Get and List report it.
type LockInfo struct {
	// Key is the locked key.
	Key string
	// Owner holds the key; "" for an anonymous lock.
	Owner string
	// Token is the fencing token of the grant.
	Token uint64
	// Expires is false for a lock that never expires.
	Expires bool
	// ExpiresIn is the time left before the lock expires, in cluster time,
	// as of the read; zero when Expires is false.
	ExpiresIn time.Duration
	// Waiters is how many Acquire calls wait in the key's queue.
	Waiters int
	// Mode is how the key is held; Limit is a semaphore's limit.
	Mode  Mode
	Limit int
	// Holders lists a shared or semaphore key's holders in grant order
	// (Owner is then "" and Token the highest of theirs).
	Holders []Holder
}

func lockInfo(lk *raftlockv1.Lock) LockInfo {
	li := LockInfo{Key: lk.Key, Owner: lk.OwnerId, Token: lk.FencingToken, Waiters: int(lk.Waiters),
		Mode: modeOf(lk.Mode), Limit: int(lk.Limit), Holders: holdersOf(lk.Holders)}
	if lk.ExpiresIn != nil {
		li.Expires, li.ExpiresIn = true, lk.ExpiresIn.AsDuration()
	}
	return li
}

// Release frees each listed key held by exactly owner (the empty owner
// frees only anonymous locks); a key held by anyone else is left alone.
// It reports true only if every key was held by owner and is now free.
// Retries reuse the request id, so the release happens once. Prefer
// Lock.Release, which also checks the fencing token.
func (c *Client) Release(ctx context.Context, keys []string, owner string, opts ...CallOption) (bool, error) {
	if c.isClosed() {
		return false, ErrClosed
	}
	req := &raftlockv1.ReleaseRequest{Keys: keys, OwnerId: owner, RequestId: callRequestID(opts)}
	var released bool
	err := c.call(ctx, "release", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.Release(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		released = r.Msg.Released
		return r.Header(), nil
	})
	return released, err
}

// ReleaseWithToken frees keys held by owner only if each still carries
// fencing token token (all or nothing), so a late or repeated release can
// never free a newer holder's lock. It fails with ErrNotHeld otherwise.
// Lock.Release does this for a lock this process acquired; this form is
// for a token kept elsewhere (lockctl release --fencing-token).
func (c *Client) ReleaseWithToken(ctx context.Context, keys []string, owner string, token uint64, opts ...CallOption) error {
	if c.isClosed() {
		return ErrClosed
	}
	return c.releaseToken(ctx, keys, owner, token, callRequestID(opts))
}

// ReleaseAll frees every lock held by owner (the empty owner: every
// anonymous lock) and returns how many it freed. Retries reuse the
// request id.
func (c *Client) ReleaseAll(ctx context.Context, owner string, opts ...CallOption) (int, error) {
	if c.isClosed() {
		return 0, ErrClosed
	}
	req := &raftlockv1.ReleaseAllRequest{OwnerId: owner, RequestId: callRequestID(opts)}
	var n int
	err := c.call(ctx, "release all", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.ReleaseAll(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		n = int(r.Msg.ReleasedCount)
		return r.Header(), nil
	})
	return n, err
}

// ForceRelease frees the keys whoever holds them, and returns how many
// were held. It is an administrative action: the holders are not told,
// and learn it at their next refresh.
func (c *Client) ForceRelease(ctx context.Context, keys []string, opts ...CallOption) (int, error) {
	if c.isClosed() {
		return 0, ErrClosed
	}
	req := &raftlockv1.ForceReleaseRequest{Keys: keys, RequestId: callRequestID(opts)}
	var n int
	err := c.call(ctx, "force release", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.ForceRelease(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		n = int(r.Msg.ReleasedCount)
		return r.Header(), nil
	})
	return n, err
}

// Get describes key, or returns nil when it is free. The read is
// linearizable: it reflects every write acknowledged before the call.
func (c *Client) Get(ctx context.Context, key string) (*LockInfo, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	var out *LockInfo
	err := c.call(ctx, "get", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.lock.GetLock(actx, connect.NewRequest(&raftlockv1.GetLockRequest{Key: key}))
		if err != nil {
			return nil, err
		}
		out = nil
		if r.Msg.Lock != nil {
			li := lockInfo(r.Msg.Lock)
			out = &li
		}
		return r.Header(), nil
	})
	return out, err
}

// ListFilter selects the locks List returns. The zero value lists every
// lock.
type ListFilter struct {
	// Prefix keeps only keys that start with it.
	Prefix string
	// ByOwner keeps only locks of Owner (the empty Owner then means
	// anonymous locks).
	ByOwner bool
	// Owner is the owner ByOwner filters by.
	Owner string
	// Limit returns at most this many locks; 0: all of them.
	Limit int
}

// List returns the held locks that match f, in key order, reading page
// after page. Each page is a linearizable read; the pages together are
// not one snapshot.
func (c *Client) List(ctx context.Context, f ListFilter) ([]LockInfo, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("%w: limit must not be negative", ErrInvalidArgument)
	}
	var out []LockInfo
	page := ""
	for {
		req := &raftlockv1.ListLocksRequest{Prefix: f.Prefix, OwnerId: f.Owner, OwnerFilter: f.ByOwner, PageToken: page}
		if f.Limit > 0 {
			req.Limit = uint32(min(f.Limit-len(out), 10000))
		}
		var resp *raftlockv1.ListLocksResponse
		err := c.call(ctx, "list", 0, func(actx context.Context, s *stub) (http.Header, error) {
			r, err := s.lock.ListLocks(actx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			resp = r.Msg
			return r.Header(), nil
		})
		if err != nil {
			return nil, err
		}
		for _, lk := range resp.Locks {
			out = append(out, lockInfo(lk))
		}
		page = resp.NextPageToken
		if page == "" || (f.Limit > 0 && len(out) >= f.Limit) {
			return out, nil
		}
	}
}

// Status is one node's view of the cluster.
type Status struct {
	// ID and Address are the answering node's.
	ID      string `json:"id"`
	Address string `json:"address"`
	// Role is "leader", "follower", "candidate" or "shutdown".
	Role string `json:"role"`
	// LeaderID and LeaderAddress name the leader the node knows; empty if
	// none.
	LeaderID      string `json:"leader_id"`
	LeaderAddress string `json:"leader_address"`
	// Term is the node's Raft term.
	Term uint64 `json:"term"`
	// CommitIndex and AppliedIndex are the node's Raft commit index and
	// the last index its lock table applied.
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// Members is the cluster's membership as the node knows it.
	Members []Member `json:"members"`
	// Ready: the node knows a leader and has applied its commit index.
	Ready bool `json:"ready"`
	// Locks and Waiters count the node's lock table.
	Locks   uint64 `json:"locks"`
	Waiters uint64 `json:"waiters"`
	// ClusterVersion is the log version the cluster has agreed on (0 from
	// a node too old to say: version 1); SupportedVersion the highest the
	// answering node's build can apply. A rolling upgrade is complete when
	// ClusterVersion equals every member's SupportedVersion.
	ClusterVersion   uint32 `json:"cluster_version"`
	SupportedVersion uint32 `json:"supported_version"`
	// ClusterID names the cluster (derived from its founding members;
	// backups carry it), "" while a node that joined has not learned it.
	ClusterID string `json:"cluster_id,omitempty"`
}

// Member is a node of the cluster.
type Member struct {
	// ID is the node's id (its --id).
	ID string `json:"id"`
	// Address is the node's advertised host:port.
	Address string `json:"address"`
	// Voter is false for a non-voting member.
	Voter bool `json:"voter"`
	// Leader marks the leader.
	Leader bool `json:"leader"`
	// SupportedVersion is the highest log version the member said it can
	// apply, as the answering node last heard (0: not heard yet, or a
	// version 1 build).
	SupportedVersion uint32 `json:"supported_version"`
}

func statusOf(m *raftlockv1.StatusResponse) *Status {
	st := &Status{
		ID: m.Id, Address: m.Address, Role: m.Role, LeaderID: m.LeaderId, LeaderAddress: m.LeaderAddress,
		Term: m.Term, CommitIndex: m.CommitIndex, AppliedIndex: m.AppliedIndex, Ready: m.Ready,
		Locks: m.Locks, Waiters: m.Waiters, ClusterVersion: m.ClusterVersion, SupportedVersion: m.SupportedVersion, ClusterID: m.ClusterId,
	}
	for _, mb := range m.Members {
		st.Members = append(st.Members, Member{ID: mb.Id, Address: mb.Address, Voter: mb.Voter, Leader: mb.Leader, SupportedVersion: mb.SupportedVersion})
	}
	return st
}

// Status returns the cluster's status as the leader sees it (as the first
// node that answers sees it, when no leader is known yet). The client
// learns the leader and the members' addresses from the answer.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	var st *Status
	err := c.call(ctx, "status", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.cluster.Status(actx, connect.NewRequest(&raftlockv1.StatusRequest{}))
		if err != nil {
			return nil, err
		}
		st = statusOf(r.Msg)
		return r.Header(), nil
	})
	if err != nil {
		return nil, err
	}
	c.learn(st)
	return st, nil
}

// NodeStatus returns the status of the node at addr ("host:port"),
// whether or not it is one of the client's endpoints. It makes one
// attempt, bounded by ctx and the attempt timeout.
func (c *Client) NodeStatus(ctx context.Context, addr string) (*Status, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	_, addr, err := parseEndpoint(addr)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.attemptTimeout)
	defer cancel()
	r, err := c.stubFor(addr).cluster.Status(actx, connect.NewRequest(&raftlockv1.StatusRequest{}))
	if err != nil {
		if aerr := attemptError(err, false); !isRetry(aerr) {
			return nil, aerr
		}
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	st := statusOf(r.Msg)
	c.learn(st)
	return st, nil
}

func (c *Client) learn(st *Status) {
	var addrs []string
	for _, m := range st.Members {
		addrs = append(addrs, m.Address)
	}
	c.route.learn(st.LeaderAddress, addrs)
}

// AddMember adds the node id at address (its advertised host:port) to the
// cluster, as a voter or not. Adding a member that is already there with
// the same address and role changes nothing, so retries are safe.
func (c *Client) AddMember(ctx context.Context, id, address string, voter bool, opts ...MemberOption) error {
	if c.isClosed() {
		return ErrClosed
	}
	req := &raftlockv1.AddMemberRequest{Id: id, Address: address, Voter: &voter}
	for _, o := range opts {
		o(req)
	}
	return c.call(ctx, "add member", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.cluster.AddMember(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Header(), nil
	})
}

// MemberOption changes an AddMember call.
type MemberOption func(*raftlockv1.AddMemberRequest)

// WithSupportedVersion says which log versions the node being added can
// apply (its build's; `lockctl status` on it shows it). Without it the
// leader asks the node itself, and refuses to add a node it cannot reach
// while the cluster is past version 1.
func WithSupportedVersion(v uint32) MemberOption {
	return func(r *raftlockv1.AddMemberRequest) { r.SupportedVersion = v }
}

// RemoveMember removes the node id from the cluster. It fails with
// ErrNotFound for an id the cluster does not know, except on a retry
// after an attempt whose outcome was unknown, where the member being gone
// is taken as success.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	if c.isClosed() {
		return ErrClosed
	}
	tried := false
	return c.call(ctx, "remove member", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.cluster.RemoveMember(actx, connect.NewRequest(&raftlockv1.RemoveMemberRequest{Id: id}))
		if err != nil {
			if tried && connect.CodeOf(err) == connect.CodeNotFound && connect.IsWireError(err) {
				var ce *connect.Error
				_ = asConnect(err, &ce)
				return ce.Meta(), nil
			}
			tried = true
			return nil, err
		}
		return r.Header(), nil
	})
}

// TransferLeadership asks the leader to hand leadership to the voter id,
// or to the most up-to-date voter when id is empty, and returns the new
// leader's id and address.
//
// Retries are safe: handing leadership to id twice changes nothing, and
// with an empty id the client first asks who leads and makes the transfer
// conditional on that node still leading, so a retry after a lost answer
// does not move leadership a second time. If another node took over in
// between, the call succeeds without a transfer and reports that leader.
func (c *Client) TransferLeadership(ctx context.Context, id string) (leaderID, leaderAddress string, err error) {
	if c.isClosed() {
		return "", "", ErrClosed
	}
	req := &raftlockv1.TransferLeadershipRequest{Id: id}
	if id == "" {
		for req.IfLeaderId == "" { // during an election nobody knows yet
			st, err := c.Status(ctx)
			if err != nil {
				return "", "", err
			}
			if req.IfLeaderId = st.LeaderID; req.IfLeaderId != "" {
				break
			}
			select {
			case <-ctx.Done():
				return "", "", fmt.Errorf("raftlock: transfer leadership: %w (%w)", ErrNoLeader, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	err = c.call(ctx, "transfer leadership", 0, func(actx context.Context, s *stub) (http.Header, error) {
		r, err := s.cluster.TransferLeadership(actx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		leaderID, leaderAddress = r.Msg.LeaderId, r.Msg.LeaderAddress
		return r.Header(), nil
	})
	if err == nil && leaderAddress != "" {
		c.route.learn(leaderAddress, nil)
	}
	return leaderID, leaderAddress, err
}

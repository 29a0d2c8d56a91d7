package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/raftlock/raftlock/api/gen/raftlock/peer/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/peer/v1/peerv1connect"
	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/fsm"
)

// forwardedHeader marks a call one node forwarded to another, so a node
// that is not the leader either answers unavailable rather than forward it
// again.
const forwardedHeader = "Raftlock-Forwarded"

// errPeerUnavailable: the leader could not be reached, or answered that it
// cannot take the call now. The call may be retried.
var errPeerUnavailable = errors.New("leader unavailable")

// peers holds gRPC clients (over h2c) to other nodes, one HTTP/2
// connection per node, for forwarding.
type peers struct {
	client *http.Client
	scheme string

	mu      sync.Mutex
	peer    map[string]peerv1connect.PeerServiceClient
	cluster map[string]raftlockv1connect.ClusterServiceClient
}

func newPeers(dial Dialer, t *tlsState) *peers {
	protocols := new(http.Protocols)
	scheme := "http"
	tr := &http.Transport{
		Protocols:       protocols,
		DialContext:     dial,
		IdleConnTimeout: 90 * time.Second,
		HTTP2:           &http.HTTP2Config{PingTimeout: 5 * time.Second, SendPingTimeout: 10 * time.Second},
	}
	if t == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP2(true)
		tr.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return t.dialPeer(ctx, dial, addr, "h2")
		}
		scheme = "https"
	}
	return &peers{
		client:  &http.Client{Transport: tr},
		scheme:  scheme,
		peer:    make(map[string]peerv1connect.PeerServiceClient),
		cluster: make(map[string]raftlockv1connect.ClusterServiceClient),
	}
}

func (p *peers) close() { p.client.CloseIdleConnections() }

func (p *peers) peerClient(addr string) peerv1connect.PeerServiceClient {
	return cachedClient(p, p.peer, addr, peerv1connect.NewPeerServiceClient)
}

func (p *peers) clusterClient(addr string) raftlockv1connect.ClusterServiceClient {
	return cachedClient(p, p.cluster, addr, raftlockv1connect.NewClusterServiceClient)
}

// cachedClient returns the client for addr from cache, making it with
// newClient (a generated connect constructor) the first time.
func cachedClient[C any](p *peers, cache map[string]C, addr string, newClient func(connect.HTTPClient, string, ...connect.ClientOption) C) C {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := cache[addr]
	if !ok {
		c = newClient(p.client, p.scheme+"://"+addr, connect.WithGRPC())
		cache[addr] = c
	}
	return c
}

// peerError classifies a failed call to another node: unreachable, or
// unavailable, is retryable (errPeerUnavailable); a definite answer (such
// as invalid_argument) is returned as it came.
func peerError(addr string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		switch ce.Code() {
		case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeCanceled:
		default:
			return ce
		}
	}
	return fmt.Errorf("%w: %s: %v", errPeerUnavailable, addr, err)
}

func (p *peers) propose(ctx context.Context, addr string, encoded []byte) (*fsm.Result, error) {
	req := connect.NewRequest(&peerv1.ProposeRequest{Command: encoded})
	req.Header().Set(forwardedHeader, "1")
	resp, err := p.peerClient(addr).Propose(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, peerError(addr, err)
	}
	m := resp.Msg
	return &fsm.Result{
		Code: fsm.Code(m.Code), Key: m.Key, Msg: m.Msg, Keys: m.Keys, Owner: m.Owner, Tokens: m.Tokens,
		Deadlines: m.Deadlines, Released: m.Released, Count: int(m.Count), Now: m.Now, Index: m.Index,
		Duplicate: m.Duplicate, RequestID: m.RequestId,
	}, nil
}

func (p *peers) readIndex(ctx context.Context, addr string) (uint64, int64, error) {
	req := connect.NewRequest(&peerv1.ReadIndexRequest{})
	req.Header().Set(forwardedHeader, "1")
	resp, err := p.peerClient(addr).ReadIndex(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		return 0, 0, peerError(addr, err)
	}
	return resp.Msg.Index, resp.Msg.Now, nil
}

func (p *peers) addMember(ctx context.Context, addr, id, address string) error {
	_, err := p.clusterClient(addr).AddMember(ctx, connect.NewRequest(&raftlockv1.AddMemberRequest{Id: id, Address: address}))
	return err
}

// peerService is the leader's side of forwarding.
type peerService struct{ n *Node }

var _ peerv1connect.PeerServiceHandler = (*peerService)(nil)

func (s *peerService) Propose(ctx context.Context, req *connect.Request[peerv1.ProposeRequest]) (*connect.Response[peerv1.ProposeResponse], error) {
	o := s.n.currentOffice()
	if o == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errNotReady)
	}
	if _, err := fsm.Decode(req.Msg.Command); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	r, err := s.n.applyLocal(o, req.Msg.Command)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&peerv1.ProposeResponse{
		Code: uint32(r.Code), Key: r.Key, Msg: r.Msg, Keys: r.Keys, Owner: r.Owner, Tokens: r.Tokens,
		Deadlines: r.Deadlines, Released: r.Released, Count: uint32(r.Count), Now: r.Now, Index: r.Index,
		Duplicate: r.Duplicate, RequestId: r.RequestID,
	}), nil
}

func (s *peerService) ReadIndex(ctx context.Context, req *connect.Request[peerv1.ReadIndexRequest]) (*connect.Response[peerv1.ReadIndexResponse], error) {
	o := s.n.currentOffice()
	if o == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errNotReady)
	}
	index, now, err := s.n.localReadIndex(o)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&peerv1.ReadIndexResponse{Index: index, Now: now}), nil
}

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

// peers is the client half of node-to-node calls (peerservice.go answers
// them): gRPC clients over one HTTP/2 connection per node (h2c, or TLS with
// the node certificate), for forwarding commands and read indexes, asking
// versions, and joining.
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

// peerError turns a failed call to another node into the error this node
// acts on: a definite answer (invalid_argument, failed_precondition, ...)
// is kept as the other node gave it; no answer, or an answer that the
// other node cannot take the call now, is errPeerUnavailable, which
// transient reports as worth a retry.
func peerError(ctx context.Context, addr string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
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

// propose hands an encoded command to the leader at addr and returns the
// result of applying it. A version 1 leader answers field by field; a
// newer one sends the whole result in the table's own encoding.
func (p *peers) propose(ctx context.Context, addr string, encoded []byte) (*fsm.Result, error) {
	req := connect.NewRequest(&peerv1.ProposeRequest{Command: encoded})
	req.Header().Set(forwardedHeader, "1")
	resp, err := p.peerClient(addr).Propose(ctx, req)
	if err != nil {
		return nil, peerError(ctx, addr, err)
	}
	m := resp.Msg
	if len(m.Result) > 0 {
		return fsm.DecodeResult(m.Result)
	}
	return resultFromV1(m), nil
}

func (p *peers) readIndex(ctx context.Context, addr string) (uint64, int64, error) {
	req := connect.NewRequest(&peerv1.ReadIndexRequest{})
	req.Header().Set(forwardedHeader, "1")
	resp, err := p.peerClient(addr).ReadIndex(ctx, req)
	if err != nil {
		return 0, 0, peerError(ctx, addr, err)
	}
	return resp.Msg.Index, resp.Msg.Now, nil
}

// version asks the node at addr for the highest log version it supports.
// A node that does not know the call is a version 1 build.
func (p *peers) version(ctx context.Context, addr string) (uint32, error) {
	v, _, err := p.versionInfo(ctx, addr)
	return v, err
}

// versionInfo asks the node at addr for its supported version and the
// cluster id it knows ("" from a node that knows none, or a build before
// cluster ids).
func (p *peers) versionInfo(ctx context.Context, addr string) (uint32, string, error) {
	resp, err := p.peerClient(addr).Version(ctx, connect.NewRequest(&peerv1.VersionRequest{}))
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return fsm.Version1, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	return resp.Msg.SupportedVersion, resp.Msg.ClusterId, nil
}

func (p *peers) addMember(ctx context.Context, addr, id, address string) error {
	_, err := p.clusterClient(addr).AddMember(ctx, connect.NewRequest(&raftlockv1.AddMemberRequest{
		Id: id, Address: address, SupportedVersion: fsm.SupportedVersion,
	}))
	return err
}

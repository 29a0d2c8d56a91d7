package testcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/cluster"
)

// Endpoints reaches a set of nodes over their HTTP API: Status, the
// /debug endpoints of nodes started with --debug (and
// --unsafe-clock-control), and the leader they agree on. A process
// Cluster has one; the Docker backends make their own for the containers'
// host ports.
type Endpoints struct {
	// URLs are the nodes' base URLs (http(s)://host:port), by index.
	URLs []string
	// HTTP sends every call (with TLS and a token where needed). Its
	// timeout, if any, bounds each call.
	HTTP *http.Client
}

// Status asks node i for its view of the cluster
// (raftlock.v1.ClusterService/Status, Connect protocol).
func (e *Endpoints) Status(ctx context.Context, i int) (*raftlockv1.StatusResponse, error) {
	resp, err := raftlockv1connect.NewClusterServiceClient(e.HTTP, e.URLs[i]).Status(ctx, connect.NewRequest(&raftlockv1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// State reads node i's /debug/state (nodes started with --debug).
func (e *Endpoints) State(ctx context.Context, i int) (cluster.DebugState, error) {
	var st cluster.DebugState
	b, err := e.do(ctx, http.MethodGet, e.URLs[i]+"/debug/state")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// SetClock sets node i's wall-clock offset and monotonic rate (1: true
// time) through /debug/clock (nodes started with --unsafe-clock-control).
func (e *Endpoints) SetClock(ctx context.Context, i int, offset time.Duration, rate float64) error {
	_, err := e.do(ctx, http.MethodPost, fmt.Sprintf("%s/debug/clock?offset=%s&rate=%g", e.URLs[i], offset, rate))
	return err
}

// do sends a body-less request and returns the body of a 200 answer.
func (e *Endpoints) do(ctx context.Context, method, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// AgreedLeader returns the index of the leader that every node of among
// that answers Status names, provided that node is among them, answered,
// says it leads and is ready; else ErrNoLeader (with what was seen). Nodes
// that do not answer (stopped, paused, cut off) are not counted.
func (e *Endpoints) AgreedLeader(ctx context.Context, among []int) (int, error) {
	leaderID, answered := "", 0
	byID := map[string]int{}
	statuses := map[int]*raftlockv1.StatusResponse{}
	for _, i := range among {
		st, err := e.Status(ctx, i)
		if err != nil {
			continue
		}
		answered++
		statuses[i], byID[st.Id] = st, i
		if st.LeaderId == "" || (leaderID != "" && st.LeaderId != leaderID) {
			return -1, fmt.Errorf("%w: %s names %q, others %q", ErrNoLeader, st.Id, st.LeaderId, leaderID)
		}
		leaderID = st.LeaderId
	}
	if answered == 0 {
		return -1, fmt.Errorf("%w: no node answered", ErrNoLeader)
	}
	l, ok := byID[leaderID]
	if !ok {
		return -1, fmt.Errorf("%w: the leader named, %s, did not answer", ErrNoLeader, leaderID)
	}
	if st := statuses[l]; st.Role != "leader" || !st.Ready {
		return -1, fmt.Errorf("%w: %s is named leader but is %s (ready: %t)", ErrNoLeader, leaderID, st.Role, st.Ready)
	}
	return l, nil
}

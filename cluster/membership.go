package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// joinLoop asks the cluster at cfg.Join to add this node, until it does.
func (n *Node) joinLoop() {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ApplyTimeout)
		err := n.peers.addMember(ctx, n.cfg.Join, n.cfg.ID, n.cfg.Advertise)
		cancel()
		if err == nil {
			n.log.Info("joined the cluster", "via", n.cfg.Join)
			return
		}
		n.log.Warn("join failed; retrying", "via", n.cfg.Join, "err", err)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
	}
}

// member returns the server with the given id in the latest configuration.
func (n *Node) member(id string) (raft.Server, bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			return srv, true
		}
	}
	return raft.Server{}, false
}

// hasOtherVoter reports whether the latest configuration has a voter other
// than this node.
func (n *Node) hasOtherVoter() (bool, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, err
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter && string(srv.ID) != n.cfg.ID {
			return true, nil
		}
	}
	return false, nil
}

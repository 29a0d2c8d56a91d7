package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// The cluster id names a cluster in its backups (and in Status), so that an
// operator can tell which cluster a backup file came from. It is derived
// from the founding members, the ids and addresses of --initial-cluster (or
// the one node of a cluster that started alone), so the founders agree on
// it without a word; a node that joins learns it from the members it polls
// for their versions (PeerService/Version). Every node keeps it in
// <data-dir>/cluster-id. Two clusters founded with the same member list
// (the same ids at the same addresses) have the same id: like etcd's
// cluster id without an --initial-cluster-token. A restored cluster keeps
// its own id; the backup's is in the restore's log line.

// clusterIDFile holds the cluster id in the data directory.
const clusterIDFile = "cluster-id"

// clusterIdentity is this node's knowledge of its cluster's id.
type clusterIdentity struct {
	path string // <data-dir>/cluster-id

	mu sync.Mutex
	id string // "" until known
}

// loadClusterID reads the data directory's cluster id. A node that is
// founding its cluster now (fresh, not joining), or a founder restarting
// with its --initial-cluster on a data directory from before cluster ids,
// derives it from the founding members and keeps it; any other node learns
// it from the members (adoptClusterID).
func (n *Node) loadClusterID(existing bool) error {
	c := &clusterIdentity{path: filepath.Join(n.cfg.DataDir, clusterIDFile)}
	n.clusterID = c
	b, err := os.ReadFile(c.path)
	switch {
	case err == nil:
		c.id = strings.TrimSpace(string(b))
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cluster id: %w", err)
	case n.cfg.Join != "" || (existing && len(n.cfg.InitialCluster) == 0):
		return nil // learned from the members
	}
	return c.set(deriveClusterID(n.foundingServers()))
}

// foundingServers is the configuration this node bootstraps: the initial
// cluster, or this node alone.
func (n *Node) foundingServers() []raft.Server {
	if len(n.cfg.InitialCluster) == 0 {
		return []raft.Server{{ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.Advertise)}}
	}
	servers := make([]raft.Server, 0, len(n.cfg.InitialCluster))
	for _, p := range n.cfg.InitialCluster {
		servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
	}
	return servers
}

// deriveClusterID is the id of a cluster founded by servers: 16 hex digits
// of a SHA-256 of their ids and addresses, in id order.
func deriveClusterID(servers []raft.Server) string {
	lines := make([]string, 0, len(servers))
	for _, s := range servers {
		lines = append(lines, string(s.ID)+"="+string(s.Address)+"\n")
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte("raftlock cluster\n" + strings.Join(lines, "")))
	return hex.EncodeToString(sum[:8])
}

// get returns the id, "" if not known yet.
func (c *clusterIdentity) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// set keeps id (atomically: a temporary file renamed over the old).
func (c *clusterIdentity) set(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o640); err != nil {
		return fmt.Errorf("cluster id: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("cluster id: %w", err)
	}
	c.id = id
	return nil
}

// adoptClusterID takes a member's answer as this node's cluster id while it
// has none (a node that joined); the configuration of a node alone is its
// own founding one. A node that knows its id never changes it.
func (n *Node) adoptClusterID(fromMember string, cfg raft.Configuration) {
	if n.clusterID.get() != "" {
		return
	}
	id := fromMember
	if id == "" && len(cfg.Servers) == 1 && string(cfg.Servers[0].ID) == n.cfg.ID {
		id = deriveClusterID(cfg.Servers)
	}
	if id == "" {
		return
	}
	if err := n.clusterID.set(id); err != nil {
		n.log.Warn("could not keep the cluster id", "err", err)
		return
	}
	n.log.Info("learned the cluster id", "cluster_id", id)
}

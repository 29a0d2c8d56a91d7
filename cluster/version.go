package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

// Versions and rolling upgrades.
//
// Every build knows the highest log version it can apply
// (fsm.SupportedVersion) and reports it through PeerService/Version. Every
// node asks every member now and then (versionLoop) and remembers the
// answers (Status shows them). The leader raises the cluster version, an
// entry in the log, to the lowest version every voter reports, so it moves
// only up and only when every voter can apply what may follow. Until then:
// commands are encoded in the lowest version that carries them (so old
// nodes can decode them), a request that needs a newer version is refused
// naming the members behind (requireVersion), and a node that supports less
// than the cluster version cannot join (AddMember). A node that meets an
// entry above what it supports stops with a message naming both versions
// (raftfsm's Fatal hook) instead of applying it.

// versionPoll is how often a node asks the members for their versions;
// the leader asks more often while some voter's version is not known.
const (
	versionPoll     = 5 * time.Second
	versionPollFast = 500 * time.Millisecond
)

// ErrVersionTooLow: a request needs a newer cluster version than the
// cluster has, or a node supports less than the cluster version.
var ErrVersionTooLow = errors.New("cluster version too low")

// versionError is ErrVersionTooLow with what the caller needs to know; it
// maps to failed_precondition.
type versionError struct{ msg string }

func (e *versionError) Error() string        { return e.msg }
func (e *versionError) Is(target error) bool { return target == ErrVersionTooLow }

// versions is what this node last learned of the members' supported
// versions.
type versions struct {
	mu        sync.Mutex
	supported map[string]uint32 // member id -> supported version; absent: unknown
	proposed  uint32            // the highest version this node proposed as leader
}

func newVersions() *versions { return &versions{supported: map[string]uint32{}} }

func (v *versions) get(id string) (uint32, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.supported[id]
	return s, ok
}

func (v *versions) set(id string, s uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.supported[id] = s
}

// clusterVersion is the cluster version as this node's table has applied it.
func (n *Node) clusterVersion() uint32 {
	var v uint32
	n.fsm.Read(func(t *fsm.Table) { v = t.Version() })
	return v
}

// versionLoop asks the members for their versions and, on the leader,
// raises the cluster version when every voter supports more.
func (n *Node) versionLoop() {
	n.versions.set(n.cfg.ID, fsm.SupportedVersion)
	for {
		wait := versionPoll
		n.mu.Lock()
		officeCh := n.officeCh
		n.mu.Unlock()
		if !n.pollVersions() {
			wait = versionPollFast
		}
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(wait):
		case <-officeCh: // this node took office (or left it): a new leader raises the version at once
		}
	}
}

// pollVersions asks every other member for its version and, if this node
// leads, raises the cluster version. It reports whether every voter's
// version is known and the cluster version is as high as they allow.
func (n *Node) pollVersions() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == n.cfg.ID {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, clusterID, err := n.peers.versionInfo(ctx, string(srv.Address))
		cancel()
		if err == nil {
			n.versions.set(string(srv.ID), v)
			n.adoptClusterID(clusterID, f.Configuration()) // clusterid.go
		}
	}
	n.adoptClusterID("", f.Configuration())
	target, known := n.votersSupport(f.Configuration())
	if !known {
		return false
	}
	cur := n.clusterVersion()
	if target <= cur {
		return true
	}
	o := n.leading()
	if o == nil {
		return false // the leader raises it; look again soon
	}
	n.versions.mu.Lock()
	n.versions.proposed = max(n.versions.proposed, target)
	n.versions.mu.Unlock()
	if _, err := n.applyLocal(o, (&fsm.Command{Op: fsm.OpSetVersion, ClusterVersion: target}).Encode(nil)); err != nil {
		n.log.Warn("could not raise the cluster version", "to", target, "err", err)
		return false
	}
	n.log.Info("cluster version raised", "from", cur, "to", target)
	return true
}

// votersSupport returns the lowest version the voters of cfg support, and
// whether every voter's version is known.
func (n *Node) votersSupport(cfg raft.Configuration) (uint32, bool) {
	lowest := fsm.SupportedVersion
	for _, srv := range cfg.Servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		v, ok := n.versions.get(string(srv.ID))
		if !ok {
			return 0, false
		}
		lowest = min(lowest, v)
	}
	return lowest, true
}

// admitVersion refuses, on the leader, an encoded command whose version is
// above the cluster version (or the version the leader is raising it to:
// entries after that set_version in the log are applied after it).
func (n *Node) admitVersion(encoded []byte) error {
	if len(encoded) == 0 {
		return nil
	}
	v := uint32(encoded[0])
	if v <= fsm.Version1 || (len(encoded) > 1 && fsm.Op(encoded[1]) == fsm.OpSetVersion) {
		return nil
	}
	n.versions.mu.Lock()
	proposed := n.versions.proposed
	n.versions.mu.Unlock()
	if cur := n.clusterVersion(); v > max(cur, proposed) {
		return &versionError{msg: fmt.Sprintf("the command needs cluster version %d, the cluster is at version %d", v, cur)}
	}
	return nil
}

// requireVersion refuses a request for feature when the cluster version is
// below v, naming the members that hold it back. It refuses only on a table
// that has caught up with the log since the node started (caughtUp): a
// restarted node's table may show an older version for a moment.
func (n *Node) requireVersion(ctx context.Context, feature string, v uint32) error {
	cur := n.clusterVersion()
	if cur >= v {
		return nil
	}
	if err := n.caughtUp(ctx); err != nil {
		return err
	}
	if cur = n.clusterVersion(); cur >= v {
		return nil
	}
	why := "every member supports it; the leader raises the version within seconds"
	if behind := n.membersBehind(v); len(behind) > 0 {
		why = "members behind: " + strings.Join(behind, ", ")
	}
	return &versionError{msg: fmt.Sprintf("%s needs cluster version %d, the cluster is at version %d (%s)", feature, v, cur, why)}
}

// membersBehind names, in order, the members that cannot apply version v
// or have not said what they can ("n3 (supports 1)", "n4 (not heard
// from)").
func (n *Node) membersBehind(v uint32) []string {
	var behind []string
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s, ok := n.versions.get(string(srv.ID))
			switch {
			case !ok:
				behind = append(behind, string(srv.ID)+" (not heard from)")
			case s < v:
				behind = append(behind, fmt.Sprintf("%s (supports %d)", srv.ID, s))
			}
		}
	}
	slices.Sort(behind)
	return behind
}

// admitMember refuses to add a node that cannot apply the log: one whose
// supported version is below the cluster version. A node that joins (--join)
// says its version; for one added by an operator (supported 0) the leader
// asks the node itself, and a version 1 build (which cannot say) counts as
// version 1.
func (n *Node) admitMember(ctx context.Context, id, address string, supported uint32) error {
	cur := n.clusterVersion()
	if supported == 0 && cur > fsm.Version1 {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		v, err := n.peers.version(ctx, address)
		if err != nil {
			return &versionError{msg: fmt.Sprintf("cannot learn which log versions node %s at %s supports (the cluster is at version %d): %v; start it first, or let it join with --join", id, address, cur, err)}
		}
		supported = v
	}
	if supported == 0 {
		supported = fsm.Version1
	}
	if supported < cur {
		return &versionError{msg: fmt.Sprintf("node %s supports log versions up to %d, the cluster is at version %d: upgrade its binary before it joins", id, supported, cur)}
	}
	return nil
}

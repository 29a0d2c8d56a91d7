package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/fsm/backup"
)

// Backups: ClusterService/Snapshot and ClusterService/Restore (issue 19,
// docs/backup.md).
//
// Snapshot: the node called waits until it has applied everything
// committed before the call (readBarrier), has Raft take a snapshot (which
// the FSM rebuilds from the last one and the log, without stopping writes:
// fsm/raftfsm/replay.go), and streams that snapshot's file from its
// snapshot store: a header, the state in chunks, the state's SHA-256.
//
// Restore runs on the leader. It reads the whole upload, checks it
// (fsm/backup: checksums, format and encoding versions, header against
// state) and decodes it before anything changes; refuses a cluster that
// holds data unless forced, and a backup whose cluster version some member
// cannot apply; prepares the table (fsm.Table.PrepareRestore: a new epoch
// of the index, cluster time not going back, waiters dropped); and hands
// it to raft.Restore, which installs it here and ships it to every
// follower. The leader then takes office again, from the restored time.

// Limits and timeouts of backups.
const (
	// snapshotChunk is the state's chunk size in a Snapshot stream.
	snapshotChunk = 1 << 20
	// maxRestoreBytes bounds a restore upload: a backup file's header and
	// its largest state (fsm/backup.MaxStateBytes).
	maxRestoreBytes = backup.MaxStateBytes + backup.MaxHeaderBytes + 64
	// restoreReadTimeout bounds reading a restore upload (the server's
	// ReadTimeout, 30 s, is for ordinary calls).
	restoreReadTimeout = 15 * time.Minute
	// restoreTimeout bounds raft.Restore: installing the state here and
	// waiting until the followers have it too.
	restoreTimeout = 5 * time.Minute
	// restoreEpoch spaces the indexes restored clusters start at.
	restoreEpoch = uint64(1) << 48
	// droppedLogged is how many dropped waiters a restore names in the log
	// one by one (the rest are counted).
	droppedLogged = 100
)

// backups serialises restores on a node and tells the leader loop to take
// office again after one.
type backups struct {
	restoring sync.Mutex
	reoffice  chan struct{} // office.go's leaderLoop reads it
}

func newBackups() *backups { return &backups{reoffice: make(chan struct{}, 1)} }

// requireAdmin is the auth check of the streaming calls, which the unary
// interceptor (auth.go) does not see: with --auth-tokens the caller needs
// the admin verb (or a node certificate).
func (n *Node) requireAdmin(ctx context.Context) error {
	if n.auth == nil {
		return nil
	}
	p, _ := ctx.Value(principalKey{}).(*principal)
	if p == nil {
		return ErrUnauthenticated
	}
	if !p.can(VerbAdmin) {
		return fmt.Errorf("%w: token %q may not %s", ErrPermissionDenied, p.name, VerbAdmin)
	}
	return nil
}

// Snapshot streams a backup of the lock table (see above).
func (s *clusterService) Snapshot(ctx context.Context, _ *connect.Request[raftlockv1.SnapshotRequest], stream *connect.ServerStream[raftlockv1.SnapshotResponse]) error {
	if err := s.n.streamSnapshot(ctx, stream.Send); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err() // the caller went away: whatever Send said
		}
		return s.n.toConnect(raftlockv1connect.ClusterServiceSnapshotProcedure, err)
	}
	return nil
}

func (n *Node) streamSnapshot(ctx context.Context, send func(*raftlockv1.SnapshotResponse) error) error {
	if err := n.requireAdmin(ctx); err != nil {
		return err
	}
	start := time.Now()
	if _, err := n.readBarrier(ctx); err != nil {
		return err
	}
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		return fmt.Errorf("take a snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("open the snapshot: %w", err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, snapshotChunk)
	head, _ := br.Peek(fsm.SnapshotPeekLen)
	info, err := fsm.PeekSnapshot(head)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	h := &raftlockv1.SnapshotHeader{
		ClusterId: n.clusterID.get(), NodeId: n.cfg.ID, Index: meta.Index, Term: meta.Term,
		ClusterTime: durationpb.New(time.Duration(info.Now)), ClusterVersion: info.Version,
		Created: timestamppb.Now(), StateSize: uint64(meta.Size),
	}
	if err := send(&raftlockv1.SnapshotResponse{Header: h}); err != nil {
		return err
	}
	sum := sha256.New()
	buf := make([]byte, snapshotChunk)
	var sent int64
	for {
		k, err := io.ReadFull(br, buf)
		if k > 0 {
			sum.Write(buf[:k])
			if err := send(&raftlockv1.SnapshotResponse{Chunk: buf[:k]}); err != nil {
				return err
			}
			sent += int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read snapshot %s: %w", meta.ID, err)
		}
	}
	if sent != meta.Size {
		return fmt.Errorf("snapshot %s: read %d bytes, its metadata says %d", meta.ID, sent, meta.Size)
	}
	if err := send(&raftlockv1.SnapshotResponse{StateSha256: sum.Sum(nil)}); err != nil {
		return err
	}
	n.log.Info("backup streamed", "index", meta.Index, "term", meta.Term, "bytes", sent, "cluster_version", info.Version,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// restoreUpload gives the Restore route a body limit and a read deadline
// of its own: an upload is a whole backup file, far larger than the
// messages of other calls (which keep their limits: a restore sends its
// file in chunks of at most the message limit).
func (n *Node) restoreUpload(h http.Handler) http.Handler {
	inner := n.checkRequestUpTo(h, maxRestoreBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(restoreReadTimeout))
		inner.ServeHTTP(w, r)
	})
}

// Restore replaces the lock table with an uploaded backup (see above).
func (s *clusterService) Restore(ctx context.Context, stream *connect.ClientStream[raftlockv1.RestoreRequest]) (*connect.Response[raftlockv1.RestoreResponse], error) {
	resp, err := s.n.restore(ctx, stream)
	if err != nil {
		return nil, s.n.toConnect(raftlockv1connect.ClusterServiceRestoreProcedure, err)
	}
	return connect.NewResponse(resp), nil
}

// restoreLeader returns this node's office, or an error naming the leader
// a restore must go to.
func (n *Node) restoreLeader() (*office, error) {
	if o := n.leading(); o != nil {
		return o, nil
	}
	addr, id := n.Leader()
	if addr == "" || addr == n.cfg.Advertise {
		return nil, fmt.Errorf("%w: a restore must go to the leader, and none is ready", errNotReady)
	}
	return nil, fmt.Errorf("%w: a restore must go to the leader, %s at %s", ErrNotLeader, id, addr)
}

func (n *Node) restore(ctx context.Context, stream *connect.ClientStream[raftlockv1.RestoreRequest]) (*raftlockv1.RestoreResponse, error) {
	if err := n.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if _, err := n.restoreLeader(); err != nil {
		return nil, err // before the upload, not after it
	}
	file, force, minIndex, err := receiveRestore(stream)
	if err != nil {
		return nil, err
	}
	h, state, err := backup.Parse(file)
	if err != nil {
		return nil, invalidArg("file: %v", err)
	}
	t, err := backup.Decode(fsm.DefaultConfig(), &h, state)
	if err != nil {
		return nil, invalidArg("file: %v", err)
	}

	n.backups.restoring.Lock()
	defer n.backups.restoring.Unlock()
	o, err := n.restoreLeader()
	if err != nil {
		return nil, err
	}
	if err := n.membersCanApply(h.ClusterVersion); err != nil {
		return nil, err
	}
	var st fsm.Stats
	var now int64
	n.fsm.Read(func(t *fsm.Table) { st, now = t.Stats(), t.Now() })
	if (st.Locks > 0 || st.Waiters > 0 || st.Requests > 0) && !force {
		return nil, fmt.Errorf("%w: it holds %d locks, %d waiters and %d remembered request ids, which a restore would replace; restore with force (lockctl snapshot restore --force) to replace them",
			ErrClusterHasData, st.Locks, st.Waiters, st.Requests)
	}
	from := max(h.Index, t.Index(), n.raft.LastIndex(), minIndex)
	if from/restoreEpoch+1 >= 1<<16 {
		return nil, invalidArg("min_index: %d leaves no epoch above it", from)
	}
	startIndex := (from/restoreEpoch + 1) * restoreEpoch
	rep, err := t.PrepareRestore(fsm.RestoreOptions{Index: startIndex, Now: max(now, o.stamp(n.clock)), Version: n.clusterVersion()})
	if err != nil {
		return nil, invalidArg("file: %v", err)
	}
	n.logDropped(rep.Dropped)
	restored := t.Stats()
	data := t.AppendSnapshot(nil)
	clusterTime, version := t.Now(), t.Version()
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: startIndex - 1, Size: int64(len(data))}
	began := time.Now()
	if err := n.raft.Restore(meta, bytes.NewReader(data), restoreTimeout); err != nil {
		return nil, fmt.Errorf("raft restore: %w", err)
	}
	if applied := n.fsm.Applied(); applied < startIndex {
		return nil, fmt.Errorf("raft restore: the table stands at index %d, not %d", applied, startIndex)
	}
	select { // take office again, from the restored cluster time (office.go)
	case n.backups.reoffice <- struct{}{}:
	default:
	}
	if err := n.waitOffice(ctx, clusterTime); err != nil {
		return nil, err
	}
	n.log.Info("backup restored", "from_cluster_id", h.ClusterID, "from_node", h.NodeID, "from_index", h.Index,
		"from_term", h.Term, "created", h.Created, "start_index", startIndex, "locks", restored.Locks,
		"requests", restored.Requests, "dropped_waiters", len(rep.Dropped), "cluster_time", time.Duration(clusterTime),
		"time_shift", rep.Shift, "cluster_version", version, "forced", force, "took", time.Since(began).Round(time.Millisecond))
	hv1 := &raftlockv1.SnapshotHeader{
		ClusterId: h.ClusterID, NodeId: h.NodeID, Index: h.Index, Term: h.Term,
		ClusterTime: durationpb.New(time.Duration(h.ClusterTime)), ClusterVersion: h.ClusterVersion, StateSize: h.StateSize,
	}
	if !h.Created.IsZero() {
		hv1.Created = timestamppb.New(h.Created)
	}
	return &raftlockv1.RestoreResponse{
		Header: hv1, Index: startIndex, Locks: uint64(restored.Locks), DroppedWaiters: uint64(len(rep.Dropped)),
		Requests: uint64(restored.Requests), ClusterTime: durationpb.New(time.Duration(clusterTime)),
		TimeShift: durationpb.New(rep.Shift), ClusterVersion: version,
	}, nil
}

// receiveRestore reads a restore upload: the whole file, and the options
// of its first message.
func receiveRestore(stream *connect.ClientStream[raftlockv1.RestoreRequest]) (file []byte, force bool, minIndex uint64, err error) {
	first := true
	for stream.Receive() {
		m := stream.Msg()
		if first {
			force, minIndex, first = m.Force, m.MinIndex, false
		} else if m.Force || m.MinIndex != 0 {
			return nil, false, 0, invalidArg("force, min_index: only the first message may set them")
		}
		if len(file)+len(m.Chunk) > maxRestoreBytes {
			return nil, false, 0, invalidArg("chunk: the upload is over the limit of %d bytes for a backup file", maxRestoreBytes)
		}
		file = append(file, m.Chunk...)
	}
	if err := stream.Err(); err != nil {
		return nil, false, 0, err
	}
	if len(file) == 0 {
		return nil, false, 0, invalidArg("chunk: no backup file was sent")
	}
	return file, force, minIndex, nil
}

// membersCanApply refuses a restore of a table at cluster version v while
// some member cannot apply that version (or has not said what it can),
// naming them: every member installs the restored snapshot, in the
// encoding of that version.
func (n *Node) membersCanApply(v uint32) error {
	behind := n.membersBehind(v)
	if len(behind) == 0 {
		return nil
	}
	return &versionError{msg: fmt.Sprintf("the backup is of cluster version %d, which every member must be able to apply; members behind: %s",
		v, strings.Join(behind, ", "))}
}

// logDropped says in the log which waiting acquires a restore dropped.
func (n *Node) logDropped(dropped []fsm.DroppedWaiter) {
	for i, w := range dropped {
		if i == droppedLogged {
			n.log.Warn("restore: more waiting acquires dropped", "count", len(dropped)-droppedLogged)
			break
		}
		n.log.Warn("restore: waiting acquire dropped (its caller waited on the old cluster and is gone)",
			"request_id", w.RequestID, "owner", w.Owner, "keys", w.Keys)
	}
	if len(dropped) > 0 {
		n.log.Warn("restore: the backup's waiters were dropped; their request ids now report cancelled", "dropped", len(dropped))
	}
}

// waitOffice waits until this node has taken office with a cluster time
// base of at least base (after a restore), for up to the apply timeout.
func (n *Node) waitOffice(ctx context.Context, base int64) error {
	timer := time.NewTimer(n.cfg.ApplyTimeout)
	defer timer.Stop()
	for {
		n.mu.Lock()
		o, ch := n.office, n.officeCh
		n.mu.Unlock()
		if o != nil && o.base >= base && n.raft.State() == raft.Leader {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("%w: restored, but the leader did not take office again in time", ErrOutcomeUnknown)
		case <-n.shutdownCh:
			return ErrShuttingDown
		}
	}
}

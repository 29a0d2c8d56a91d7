package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// Backups: ClusterService/Snapshot and Restore (docs/backup.md). The
// client moves bytes; the file format belongs to lockctl and the server
// (fsm/backup), which the client does not import.

// RestoreChunk is the size of the chunks a restore upload is sent in (below
// a node's message limit, 256 KiB by default, also in JSON's base64).
const RestoreChunk = 128 << 10

// SnapshotHeader says where and when a backup's state was taken.
type SnapshotHeader struct {
	// ClusterID is the id of the cluster it came from ("" if the node did
	// not know it).
	ClusterID string `json:"cluster_id"`
	// NodeID is the node that took it.
	NodeID string `json:"node_id"`
	// Index and Term are the Raft index and term of the snapshot: it holds
	// every entry committed up to Index.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// ClusterTime is the lock table's cluster time.
	ClusterTime time.Duration `json:"cluster_time_ns"`
	// ClusterVersion is the lock table's cluster version.
	ClusterVersion uint32 `json:"cluster_version"`
	// Created is when the node took it (its wall clock).
	Created time.Time `json:"created"`
	// StateSize is the length of the state in bytes.
	StateSize uint64 `json:"state_size"`
}

func headerOf(h *raftlockv1.SnapshotHeader) SnapshotHeader {
	out := SnapshotHeader{ClusterID: h.ClusterId, NodeID: h.NodeId, Index: h.Index, Term: h.Term,
		ClusterTime: h.ClusterTime.AsDuration(), ClusterVersion: h.ClusterVersion, StateSize: h.StateSize}
	if h.Created != nil {
		out.Created = h.Created.AsTime()
	}
	return out
}

// Snapshot is a backup streaming from a node: its header, and its state to
// read. Read returns io.EOF only once the whole state has arrived and its
// SHA-256 matched the node's; a stream that ends early, carries more than
// its header announced, or whose checksum differs fails instead. Close it
// when done.
type Snapshot struct {
	// Header is the first message of the stream.
	Header SnapshotHeader

	stream *connect.ServerStreamForClient[raftlockv1.SnapshotResponse]
	cancel context.CancelFunc
	buf    []byte
	sum    hash.Hash
	got    uint64
	err    error // sticky: io.EOF at the end
}

// Snapshot asks a node for a backup of the lock table (the admin
// permission is needed with tokens): the leader if the client knows it,
// else each endpoint in turn, until one sends a header. The state is as of
// a committed index at or after the call.
func (c *Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	var last error
	for range max(1, c.route.size()) {
		addr := c.route.pick()
		sctx, cancel := context.WithCancel(ctx)
		stream, err := c.stubFor(addr).cluster.Snapshot(sctx, connect.NewRequest(&raftlockv1.SnapshotRequest{}))
		if err == nil {
			if stream.Receive() && stream.Msg().Header != nil {
				return &Snapshot{Header: headerOf(stream.Msg().Header), stream: stream, cancel: cancel, sum: sha256.New()}, nil
			}
			err = stream.Err()
			if err == nil {
				err = errors.New("the stream did not start with a header")
			}
			stream.Close()
		}
		cancel()
		aerr := attemptError(err, false)
		if !isRetry(aerr) {
			return nil, plainError(aerr)
		}
		c.route.failed(addr, "")
		last = fmt.Errorf("%s: %w", addr, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("snapshot: no node sent one: %w", last)
}

// Read reads the next bytes of the state.
func (s *Snapshot) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// next receives the next message: a chunk into buf, or the checksum that
// ends the stream.
func (s *Snapshot) next() error {
	if !s.stream.Receive() {
		if err := s.stream.Err(); err != nil {
			return fmt.Errorf("snapshot stream: %w", plainError(attemptError(err, false)))
		}
		return fmt.Errorf("snapshot stream ended after %d of %d bytes, without its checksum", s.got, s.Header.StateSize)
	}
	m := s.stream.Msg()
	if sum := m.StateSha256; sum != nil {
		switch {
		case s.got != s.Header.StateSize:
			return fmt.Errorf("snapshot stream ended after %d of %d bytes", s.got, s.Header.StateSize)
		case !bytes.Equal(sum, s.sum.Sum(nil)):
			return fmt.Errorf("snapshot stream: state checksum mismatch (the node says %x, the bytes received hash to %x)", sum, s.sum.Sum(nil))
		}
		return io.EOF
	}
	s.got += uint64(len(m.Chunk))
	if s.got > s.Header.StateSize {
		return fmt.Errorf("snapshot stream: more than the %d bytes its header announced", s.Header.StateSize)
	}
	s.sum.Write(m.Chunk)
	s.buf = m.Chunk
	return nil
}

// Close ends the stream (early, if the state was not read to the end).
func (s *Snapshot) Close() error {
	s.cancel()
	return s.stream.Close()
}

// RestoreOptions change a restore.
type RestoreOptions struct {
	// Force restores into a cluster that holds locks, waiters or
	// remembered request ids, replacing them.
	Force bool
	// MinIndex makes the restored log start above this index too (for a
	// backup older than the cluster that was lost: the highest fencing
	// token a resource saw).
	MinIndex uint64
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	// Header is the restored backup's.
	Header SnapshotHeader `json:"header"`
	// Index is where the restored cluster's log stands: every new fencing
	// token is above it.
	Index uint64 `json:"index"`
	// Locks, Requests and DroppedWaiters count the holds and remembered
	// request ids restored, and the waiters dropped.
	Locks          uint64 `json:"locks"`
	Requests       uint64 `json:"requests"`
	DroppedWaiters uint64 `json:"dropped_waiters"`
	// ClusterTime is the restored cluster's time; TimeShift how far
	// deadlines moved with it (remaining times are kept).
	ClusterTime time.Duration `json:"cluster_time_ns"`
	TimeShift   time.Duration `json:"time_shift_ns"`
	// ClusterVersion is the restored cluster's version.
	ClusterVersion uint32 `json:"cluster_version"`
}

// Restore uploads a backup file (as lockctl snapshot save wrote it) to the
// leader, which checks it whole and restores it (the admin permission is
// needed with tokens). It goes to the leader the client knows, or the
// first endpoint, and follows the node's answer to the leader when that
// node does not lead (it refuses before reading the file). A restore that
// reached the leader is not retried: a retry after a lost answer would
// meet the restored data (refused) or, forced, restore twice.
func (c *Client) Restore(ctx context.Context, file []byte, o RestoreOptions) (*RestoreResult, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	addr := c.route.pick()
	for hops := 0; ; hops++ {
		res, hint, err := c.restoreAt(ctx, addr, file, o)
		if err == nil {
			c.route.succeeded(addr, addr)
			return res, nil
		}
		var ce *connect.Error
		if hops < 3 && errors.As(err, &ce) && ce.Code() == connect.CodeFailedPrecondition && hint != "" && hint != addr {
			addr = hint // that node does not lead, and did nothing
			continue
		}
		return nil, fmt.Errorf("restore on %s: %w", addr, plainError(attemptError(err, false)))
	}
}

// restoreAt makes one upload to addr; on an error it returns the leader the
// node named.
func (c *Client) restoreAt(ctx context.Context, addr string, file []byte, o RestoreOptions) (*RestoreResult, string, error) {
	stream := c.stubFor(addr).cluster.Restore(ctx)
	for off := 0; off == 0 || off < len(file); off += RestoreChunk {
		m := &raftlockv1.RestoreRequest{Chunk: file[off:min(off+RestoreChunk, len(file))]}
		if off == 0 {
			m.Force, m.MinIndex = o.Force, o.MinIndex
		}
		if err := stream.Send(m); err != nil {
			break // the node ended the call: CloseAndReceive says why
		}
	}
	resp, err := stream.CloseAndReceive()
	if err != nil {
		var ce *connect.Error
		hint := ""
		if errors.As(err, &ce) {
			hint = ce.Meta().Get(leaderHeader)
		}
		return nil, hint, err
	}
	m := resp.Msg
	out := &RestoreResult{Index: m.Index, Locks: m.Locks, Requests: m.Requests, DroppedWaiters: m.DroppedWaiters,
		ClusterTime: m.ClusterTime.AsDuration(), TimeShift: m.TimeShift.AsDuration(), ClusterVersion: m.ClusterVersion}
	if m.Header != nil {
		out.Header = headerOf(m.Header)
	}
	return out, "", nil
}

// plainError is the error of a backup call as the node said it: a
// failed_precondition there is a version or leadership matter, never the
// "not held" of a lock call (ErrNotHeld).
func plainError(err error) error {
	var ce *connect.Error
	if errors.Is(err, ErrNotHeld) && errors.As(err, &ce) {
		return ce
	}
	if r, ok := err.(*retryError); ok {
		return r.cause
	}
	return err
}

// size is how many endpoints the router knows.
func (r *router) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.addrs)
}

package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// Watches: LockService/Watch as an iterator that survives node failures.
// The iterator keeps the index of the last complete message it delivered
// and, when a stream breaks (the node died, shut down, was cut off, the
// leader changed — any node serves a watch), opens a new one on the next
// node from that index: no event is delivered twice or skipped. When the
// node no longer remembers that index, the new stream starts with a
// snapshot whose Resync is true: drop what you built and start from it.

// EventKind is what happened to a key.
type EventKind int

// The kinds of event.
const (
	EventUnknown EventKind = iota
	// EventAcquired: Owner took the key under Token (a re-entrant acquire
	// keeps its token).
	EventAcquired
	// EventReleased: the holder Owner released the key.
	EventReleased
	// EventExpired: the holder Owner's lease ran out.
	EventExpired
	// EventHandedOff: the waiter Owner got the key from the queue
	// (Previous: the holder before it in the same entry, if any).
	EventHandedOff
	// EventWaiterJoined: an Acquire by Owner joined the key's queue.
	EventWaiterJoined
	// EventWaiterLeft: a waiter left without the key (Reason).
	EventWaiterLeft
	// EventForceReleased: an administrator freed Owner's hold.
	EventForceReleased
	// EventRefreshed: Owner's lease was extended (Expire from now).
	EventRefreshed
)

var eventNames = [...]string{"unknown", "acquired", "released", "expired", "handed_off", "waiter_joined", "waiter_left", "force_released", "refreshed"}

func (k EventKind) String() string {
	if k >= 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// MarshalText writes the kind's name (for JSON output).
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Why a waiter left a queue without the key (Event.Reason).
const (
	LeftTimedOut  = "timed_out" // its wait timeout passed
	LeftCancelled = "cancelled" // it was withdrawn (CancelAcquire)
	LeftAbandoned = "abandoned" // its caller went away
)

// Event is one change of one key, from one applied log entry.
type Event struct {
	// Index is the Raft index of the entry; ClusterTime its cluster time.
	Index       uint64        `json:"index"`
	ClusterTime time.Duration `json:"cluster_time_ns"`
	Key         string        `json:"key"`
	Kind        EventKind     `json:"kind"`
	// Owner is the holder, the new holder (handed off) or the waiter.
	Owner string `json:"owner_id"`
	// Token is the hold's fencing token (0 for waiter events).
	Token uint64 `json:"fencing_token,omitempty"`
	Mode  Mode   `json:"-"`
	// Reason says why a waiter left (LeftTimedOut, LeftCancelled,
	// LeftAbandoned).
	Reason string `json:"reason,omitempty"`
	// Expire is the lease from ClusterTime (acquired, handed off,
	// refreshed; 0: never expires) or the wait timeout (waiter joined).
	Expire time.Duration `json:"expire_ns,omitempty"`
	// RequestID is the Acquire's request id.
	RequestID string `json:"request_id,omitempty"`
	// Previous is the holder whose hold ended in the same entry before a
	// hand-off.
	Previous string `json:"previous_owner_id,omitempty"`
}

// WatchedKey is a key of a snapshot: its lock (Held false: free, with
// waiters) and its queue.
type WatchedKey struct {
	Key     string
	Held    bool
	Lock    LockInfo
	Waiters []Waiter
}

// Waiter is an Acquire in a key's queue.
type Waiter struct {
	Owner     string
	RequestID string
	Mode      Mode
	Permits   int
	WaitLeft  time.Duration
}

// WatchUpdate is one step of a watch: a snapshot, a batch of events, or a
// heartbeat. Index is the applied index it brings the watcher to.
type WatchUpdate struct {
	Index       uint64
	ClusterTime time.Duration
	// Snapshot is set when the stream (re)started from the current state;
	// Keys are the watched keys held or waited for, in key order.
	Snapshot bool
	Keys     []WatchedKey
	// Resync is set on a snapshot that replaces what the watcher knew: the
	// index it resumed from was too old, or the table was restored.
	Resync bool
	// Reason: "too_old" or "restored" for a resync.
	Reason string
	// Events, in log order.
	Events []Event
	// Heartbeat: nothing the watch selects changed up to Index.
	Heartbeat bool
}

// WatchOption changes what a watch selects or where it starts.
type WatchOption func(*raftlockv1.WatchRequest)

// WatchKey watches one key instead of a prefix (pass "" as the prefix).
func WatchKey(key string) WatchOption { return func(r *raftlockv1.WatchRequest) { r.Key = key } }

// WatchOwner watches only the events and keys of one owner.
func WatchOwner(owner string) WatchOption {
	return func(r *raftlockv1.WatchRequest) { r.OwnerId, r.OwnerFilter = owner, true }
}

// WatchFrom resumes after index (the Index of an update seen before)
// instead of starting with a snapshot.
func WatchFrom(index uint64) WatchOption {
	return func(r *raftlockv1.WatchRequest) { r.FromIndex = index }
}

// WatchNoWaiters leaves waiter events and queues out.
func WatchNoWaiters() WatchOption {
	return func(r *raftlockv1.WatchRequest) { r.ExcludeWaiters = true }
}

// Watch streams the changes of the locks under prefix (see the top of this
// file): a snapshot first (unless WatchFrom), then events in log order and
// heartbeats. It reconnects on its own, to any node, and ends only when
// ctx ends, the client closes, or a node refuses the watch (bad argument,
// permission): then it yields the error once and stops. Stop early by
// breaking out of the loop.
func (c *Client) Watch(ctx context.Context, prefix string, opts ...WatchOption) iter.Seq2[WatchUpdate, error] {
	req := &raftlockv1.WatchRequest{Prefix: prefix}
	for _, o := range opts {
		o(req)
	}
	return func(yield func(WatchUpdate, error) bool) {
		backoff := c.cfg.minBackoff
		from := req.FromIndex
		for {
			if c.isClosed() {
				yield(WatchUpdate{}, ErrClosed)
				return
			}
			addr := c.route.pick()
			r := proto.Clone(req).(*raftlockv1.WatchRequest)
			r.FromIndex = from
			delivered, stop, err := c.watchOnce(ctx, addr, r, &from, yield)
			if stop {
				return
			}
			if ctx.Err() != nil {
				yield(WatchUpdate{}, ctx.Err())
				return
			}
			aerr := attemptError(err, false)
			var ce *connect.Error
			if errors.As(err, &ce) && !retryableWatch(ce.Code()) {
				yield(WatchUpdate{}, plainError(aerr))
				return
			}
			c.route.failed(addr, "")
			c.log.Debug("watch stream broke; resuming", "node", addr, "from_index", from, "err", err)
			if delivered {
				backoff = c.cfg.minBackoff
			}
			if err := sleep(ctx, c.done, jitter(backoff)); err != nil {
				yield(WatchUpdate{}, err)
				return
			}
			backoff = min(2*backoff, c.cfg.maxBackoff)
		}
	}
}

// retryableWatch tells which refusals another try (on another node, from
// the same index) may get past.
func retryableWatch(code connect.Code) bool {
	switch code {
	case connect.CodeInvalidArgument, connect.CodePermissionDenied, connect.CodeUnauthenticated, connect.CodeUnimplemented:
		return false
	}
	return true
}

// watchOnce runs one stream until it breaks. from is updated after every
// complete update delivered. stop is true when the consumer stopped.
func (c *Client) watchOnce(ctx context.Context, addr string, req *raftlockv1.WatchRequest, from *uint64, yield func(WatchUpdate, error) bool) (delivered, stop bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.stubFor(addr).lock.Watch(sctx, connect.NewRequest(req))
	if err != nil {
		return false, false, err
	}
	defer stream.Close()
	var snap *WatchUpdate // a snapshot being assembled from its chunks
	for stream.Receive() {
		m := stream.Msg()
		var u WatchUpdate
		switch k := m.Kind.(type) {
		case *raftlockv1.WatchResponse_Snapshot:
			s := k.Snapshot
			if snap == nil {
				snap = &WatchUpdate{Snapshot: true, Index: s.Index, ClusterTime: s.ClusterTime.AsDuration(), Resync: s.Resync, Reason: resetReason(s.Reason)}
			}
			for _, wk := range s.Keys {
				snap.Keys = append(snap.Keys, watchedKey(wk))
			}
			if s.More {
				continue
			}
			u, snap = *snap, nil
		case *raftlockv1.WatchResponse_Events:
			for _, e := range k.Events.Events {
				if e.Index <= *from {
					continue // never twice, whatever a node sends
				}
				u.Events = append(u.Events, eventOf(e))
			}
			if len(u.Events) == 0 {
				continue
			}
			u.Index, u.ClusterTime = u.Events[len(u.Events)-1].Index, u.Events[len(u.Events)-1].ClusterTime
		case *raftlockv1.WatchResponse_Heartbeat:
			if k.Heartbeat.Index < *from {
				continue
			}
			u = WatchUpdate{Heartbeat: true, Index: k.Heartbeat.Index, ClusterTime: k.Heartbeat.ClusterTime.AsDuration()}
		default:
			continue
		}
		*from = max(*from, u.Index)
		if u.Snapshot {
			*from = u.Index // a snapshot is the new starting point
		}
		delivered = true
		if !yield(u, nil) {
			return true, true, nil
		}
	}
	err = stream.Err()
	if err == nil {
		err = errors.New("the watch stream ended")
	}
	return delivered, false, err
}

func resetReason(r raftlockv1.WatchResetReason) string {
	switch r {
	case raftlockv1.WatchResetReason_WATCH_RESET_REASON_TOO_OLD:
		return "too_old"
	case raftlockv1.WatchResetReason_WATCH_RESET_REASON_RESTORED:
		return "restored"
	}
	return ""
}

func watchedKey(wk *raftlockv1.WatchedKey) WatchedKey {
	k := WatchedKey{Key: wk.Key, Held: wk.Lock != nil}
	if wk.Lock != nil {
		k.Lock = lockInfo(wk.Lock)
	}
	for _, w := range wk.Waiters {
		k.Waiters = append(k.Waiters, Waiter{Owner: w.OwnerId, RequestID: w.RequestId, Mode: modeOf(w.Mode), Permits: int(w.Permits), WaitLeft: w.WaitLeft.AsDuration()})
	}
	return k
}

var leftNames = map[raftlockv1.WaiterLeftReason]string{
	raftlockv1.WaiterLeftReason_WAITER_LEFT_REASON_TIMED_OUT: LeftTimedOut,
	raftlockv1.WaiterLeftReason_WAITER_LEFT_REASON_CANCELLED: LeftCancelled,
	raftlockv1.WaiterLeftReason_WAITER_LEFT_REASON_ABANDONED: LeftAbandoned,
}

func eventOf(e *raftlockv1.WatchEvent) Event {
	ev := Event{Index: e.Index, ClusterTime: e.ClusterTime.AsDuration(), Key: e.Key, Kind: EventKind(e.Kind), Owner: e.OwnerId,
		Token: e.FencingToken, Mode: modeOf(e.Mode), Reason: leftNames[e.Reason], RequestID: e.RequestId, Previous: e.PreviousOwnerId}
	if int(ev.Kind) >= len(eventNames) {
		ev.Kind = EventUnknown
	}
	if e.Expire != nil {
		ev.Expire = e.Expire.AsDuration()
	}
	return ev
}

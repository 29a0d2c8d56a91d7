package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/fsm"
)

// Watch limits (docs/security.md lists them).
const (
	// DefaultWatchBuffer is how many selected events may wait to be sent to
	// one watch stream (Config.WatchBuffer) before it is cut off.
	DefaultWatchBuffer = 4096
	// DefaultMaxWatches is how many watch streams one node serves at once
	// (Config.MaxWatches).
	DefaultMaxWatches = 1024
	// watchHistory is how many recent changes a node keeps so that a watch
	// can resume from an index without a snapshot.
	watchHistory = 20_000
	// watchChunk is the most keys in one snapshot message, and the number
	// of events past which an events message ends (at the end of an entry:
	// one entry's events are never split).
	watchChunk = 500
	// watchBarrierTimeout bounds the wait of a first snapshot for the
	// writes committed before the call.
	watchBarrierTimeout = 2 * time.Second
	// watchCutGrace is how long a cut-off stream has to take its last
	// messages and the error before its connection is closed.
	watchCutGrace = 10 * time.Second
)

// Errors of watches.
var (
	// ErrTooManyWatches: the node serves its maximum of watch streams.
	ErrTooManyWatches = errors.New("too many watches")
	// ErrWatchCutOff: a watch stream fell too far behind.
	ErrWatchCutOff = errors.New("watch cut off")
)

// Watch streams lock changes: a snapshot first (unless it resumes), then
// events of applied entries in log order, and heartbeats. See watchhub.go
// for how the entries reach it. The unary interceptors (auth, errors,
// metrics) do not see streams, so Watch checks and maps by itself.
func (s *lockService) Watch(ctx context.Context, req *connect.Request[raftlockv1.WatchRequest], stream *connect.ServerStream[raftlockv1.WatchResponse]) error {
	err := s.n.watch(ctx, req.Msg, stream.Send)
	if err == nil || ctx.Err() != nil {
		return nil // the caller went away
	}
	return s.n.toConnect(raftlockv1connect.LockServiceWatchProcedure, err)
}

// authorizeWatch is the auth check of Watch, a stream the unary
// interceptor does not see: the read verb, and a prefix or key within the
// token's prefixes, as ListLocks (principal.authorize).
func (n *Node) authorizeWatch(ctx context.Context, m *raftlockv1.WatchRequest) error {
	if n.auth == nil {
		return nil
	}
	p, _ := ctx.Value(principalKey{}).(*principal)
	if p == nil {
		return ErrUnauthenticated
	}
	return p.authorize(m)
}

func watchSelectorOf(m *raftlockv1.WatchRequest, scope []string) (watchSelector, error) {
	switch {
	case m.Key != "" && m.Prefix != "":
		return watchSelector{}, invalidArg("key, prefix: set at most one")
	case len(m.Prefix) > fsm.MaxKeyLen:
		return watchSelector{}, invalidArg("prefix: longer than %d bytes", fsm.MaxKeyLen)
	}
	if m.Key != "" {
		if err := fsm.ValidateKey(m.Key); err != nil {
			return watchSelector{}, invalidArg("key: %v", err)
		}
	}
	if err := fsm.ValidateOwner(m.OwnerId); err != nil {
		return watchSelector{}, invalidArg("owner_id: %v", err)
	}
	return watchSelector{prefix: m.Prefix, key: m.Key, byOwner: m.OwnerFilter, owner: m.OwnerId, noWaiters: m.ExcludeWaiters, scope: scope}, nil
}

type cutKey struct{}

// watchConn prepares the HTTP side of a watch stream: no read deadline (a
// stream lives for hours; the server's ReadTimeout would end it), and a
// way for the hub to close a stream whose client does not read.
func watchConn(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != raftlockv1connect.LockServiceWatchProcedure {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		cut := func() { _ = rc.SetWriteDeadline(time.Now().Add(watchCutGrace)) }
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), cutKey{}, cut)))
	})
}

func (n *Node) watch(ctx context.Context, m *raftlockv1.WatchRequest, send func(*raftlockv1.WatchResponse) error) error {
	if err := n.authorizeWatch(ctx, m); err != nil {
		return err
	}
	sel, err := watchSelectorOf(m, callerPrefixes(ctx))
	if err != nil {
		return err
	}
	w, resumed, err := n.watches.subscribe(sel, m.FromIndex, n.raft.LastIndex())
	if err != nil {
		return fmt.Errorf("%w: this node serves its maximum of %d watches at once; watch through another node, or later", err, n.cfg.MaxWatches)
	}
	defer n.watches.unsubscribe(w)
	if cut, ok := ctx.Value(cutKey{}).(func()); ok {
		n.watches.mu.Lock()
		w.onCut = cut
		n.watches.mu.Unlock()
	}
	idle(ctx) // a stream mostly waits: it holds no admission slot (admission.go)

	ws := &watchStream{n: n, w: w, send: send, noWaiters: m.ExcludeWaiters, pos: m.FromIndex}
	if !resumed {
		// The first snapshot holds every write committed before the call
		// (a ReadIndex, as ListLocks), so a watch opened on a follower
		// right after a write sees it. Without a leader the node's own
		// state serves: a watch is for seeing, and events follow.
		bctx, cancel := context.WithTimeout(ctx, watchBarrierTimeout)
		_, _ = n.readBarrier(bctx)
		cancel()
		reason := raftlockv1.WatchResetReason_WATCH_RESET_REASON_UNSPECIFIED
		if m.FromIndex != 0 {
			reason = raftlockv1.WatchResetReason_WATCH_RESET_REASON_TOO_OLD
		}
		if err := ws.snapshot(reason); err != nil {
			return err
		}
	}
	hb := time.NewTicker(n.cfg.WatchHeartbeat)
	defer hb.Stop()
	for {
		beat := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.shutdownCh:
			return ErrShuttingDown
		case <-w.wake:
		case <-hb.C:
			beat = true
		}
		q, cut, reset, last, lastNow := n.watches.take(w)
		switch {
		case cut:
			return fmt.Errorf("%w: %w: more than %d events were waiting to be sent (the client reads too slowly); watch again from index %d",
				ErrResourceExhausted, ErrWatchCutOff, n.cfg.WatchBuffer, ws.pos)
		case reset:
			if err := ws.snapshot(raftlockv1.WatchResetReason_WATCH_RESET_REASON_RESTORED); err != nil {
				return err
			}
			continue
		}
		if err := ws.events(q); err != nil {
			return err
		}
		ws.pos = max(ws.pos, last)
		if beat {
			if err := send(&raftlockv1.WatchResponse{Kind: &raftlockv1.WatchResponse_Heartbeat{Heartbeat: &raftlockv1.WatchHeartbeat{
				Index: ws.pos, ClusterTime: durationpb.New(time.Duration(lastNow))}}}); err != nil {
				return err
			}
		}
	}
}

// watchStream is one Watch call's sending side.
type watchStream struct {
	n         *Node
	w         *watcher
	send      func(*raftlockv1.WatchResponse) error
	noWaiters bool
	pos       uint64 // every selected event up to pos has been sent
}

// snapshot sends the current state of the selected keys, in chunks.
func (ws *watchStream) snapshot(reason raftlockv1.WatchResetReason) error {
	sel := &ws.w.sel
	var (
		keys  []fsm.KeyState
		index uint64
		now   int64
	)
	ws.n.fsm.Read(func(t *fsm.Table) {
		keys = t.State(fsm.StateOptions{Prefix: sel.prefix, Key: sel.key, ByOwner: sel.byOwner, Owner: sel.owner, NoWaiters: sel.noWaiters})
		index, now = t.Index(), t.Now()
	})
	ws.n.watches.dropUpTo(ws.w, index)
	ws.n.watches.resets.Inc()
	var out []*raftlockv1.WatchedKey
	for _, k := range keys {
		if !keysWithin([]string{k.Key}, sel.scope) {
			continue
		}
		wk := &raftlockv1.WatchedKey{Key: k.Key}
		if k.Held {
			wk.Lock = lockProto(k.Lock, now)
		}
		for _, w := range k.Waiters {
			wk.Waiters = append(wk.Waiters, &raftlockv1.Waiter{OwnerId: w.Owner, RequestId: w.RequestID, Mode: modeProto(w.Mode),
				Permits: w.Permits, WaitLeft: durationpb.New(time.Duration(max(w.Deadline-now, 0)))})
		}
		out = append(out, wk)
	}
	ws.pos = index
	reset := reason != raftlockv1.WatchResetReason_WATCH_RESET_REASON_UNSPECIFIED
	for first := true; first || len(out) > 0; first = false {
		n := min(len(out), watchChunk)
		snap := &raftlockv1.WatchSnapshot{Index: index, ClusterTime: durationpb.New(time.Duration(now)), Keys: out[:n],
			Resync: reset, Reason: reason, More: len(out) > n}
		out = out[n:]
		if err := ws.send(&raftlockv1.WatchResponse{Kind: &raftlockv1.WatchResponse_Snapshot{Snapshot: snap}}); err != nil {
			return err
		}
	}
	return nil
}

// events sends the selected changes of the entries after pos, in batches.
func (ws *watchStream) events(q []*watchEntry) error {
	var batch []*raftlockv1.WatchEvent
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := ws.send(&raftlockv1.WatchResponse{Kind: &raftlockv1.WatchResponse_Events{Events: &raftlockv1.WatchEvents{Events: batch}}})
		batch = nil
		return err
	}
	for _, e := range q {
		if e.index <= ws.pos {
			continue
		}
		for i := range e.changes {
			c := &e.changes[i]
			if !ws.w.sel.selects(c) {
				continue
			}
			batch = append(batch, eventProto(e, c))
		}
		ws.pos = e.index
		// A message ends only at an entry's end, so the index of its last
		// event is one a client may resume after.
		if len(batch) >= watchChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

var changeKinds = [...]raftlockv1.WatchEventKind{
	fsm.ChangeAcquired:      raftlockv1.WatchEventKind_WATCH_EVENT_KIND_ACQUIRED,
	fsm.ChangeReleased:      raftlockv1.WatchEventKind_WATCH_EVENT_KIND_RELEASED,
	fsm.ChangeExpired:       raftlockv1.WatchEventKind_WATCH_EVENT_KIND_EXPIRED,
	fsm.ChangeHandedOff:     raftlockv1.WatchEventKind_WATCH_EVENT_KIND_HANDED_OFF,
	fsm.ChangeWaiterJoined:  raftlockv1.WatchEventKind_WATCH_EVENT_KIND_WAITER_JOINED,
	fsm.ChangeWaiterLeft:    raftlockv1.WatchEventKind_WATCH_EVENT_KIND_WAITER_LEFT,
	fsm.ChangeForceReleased: raftlockv1.WatchEventKind_WATCH_EVENT_KIND_FORCE_RELEASED,
	fsm.ChangeRefreshed:     raftlockv1.WatchEventKind_WATCH_EVENT_KIND_REFRESHED,
}

var leftReasons = [...]raftlockv1.WaiterLeftReason{
	fsm.LeftTimedOut:  raftlockv1.WaiterLeftReason_WAITER_LEFT_REASON_TIMED_OUT,
	fsm.LeftCancelled: raftlockv1.WaiterLeftReason_WAITER_LEFT_REASON_CANCELLED,
	fsm.LeftAbandoned: raftlockv1.WaiterLeftReason_WAITER_LEFT_REASON_ABANDONED,
}

func eventProto(e *watchEntry, c *fsm.Change) *raftlockv1.WatchEvent {
	ev := &raftlockv1.WatchEvent{
		Index: e.index, ClusterTime: durationpb.New(time.Duration(e.now)), Key: c.Key, OwnerId: c.Owner,
		FencingToken: c.Token, Mode: modeProto(c.Mode), RequestId: c.RequestID, PreviousOwnerId: c.Previous,
		Limit: c.Limit, Permits: c.Permits,
	}
	if int(c.Kind) < len(changeKinds) {
		ev.Kind = changeKinds[c.Kind]
	}
	if int(c.Reason) < len(leftReasons) {
		ev.Reason = leftReasons[c.Reason]
	}
	switch c.Kind {
	case fsm.ChangeAcquired, fsm.ChangeHandedOff, fsm.ChangeRefreshed, fsm.ChangeWaiterJoined:
		if c.Deadline > 0 {
			ev.Expire = durationpb.New(time.Duration(c.Deadline - e.now))
		}
	}
	return ev
}

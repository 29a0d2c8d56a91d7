package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/fsm"
)

// Waiting Acquires, and the rule that no key is held by a caller that is
// gone.
//
// The protocol. A handler whose Acquire may wait subscribes to its request
// id in the hub *before* proposing it, so the answer cannot be missed. If the
// table queues the Acquire (pending), the handler waits. The answer arrives
// through Raft's apply goroutine: raftfsm calls Node.observe with each
// applied entry's Result, whose Events list the waiting Acquires that entry
// granted, timed out or withdrew; observe hands each to hub.publish, which
// delivers it to the subscriptions of its request id. Every node applies
// every entry, so the handler is answered by its own node, whichever node
// leads. Every second the handler also reads the outcome from its own table
// (a follower that installed a snapshot skipped the entries in between, and
// their events).
//
// The rule. Each handling of an Acquire is an attempt with a random id the
// table records (cluster version 2). When the handler ends without handing
// a grant to a live caller — the caller's deadline passed, it disconnected,
// the forward to the leader failed mid-flight, the outcome stayed unknown,
// the node is shutting down — it abandons its attempt: an abandon entry
// withdraws the waiter or, if a grant happened meanwhile, releases what the
// grant took (fsm.OpAbandon). The abandon is proposed in the background and
// retried until it is committed or the node stops. A caller that retried
// elsewhere with the same request id carries a newer attempt, so the first
// node's abandon changes nothing. On shutdown the abandons wait a moment
// first, so that callers' retries elsewhere take their requests over.
// Before version 2 the attempt is not recorded: a departed caller's waiter
// is still withdrawn (cancel_wait), but a grant made meanwhile is not
// released.

// acquire commits an Acquire and, when the table queues it, waits for its
// outcome. Whatever it returns other than a grant to a live caller, it
// abandons the attempt. named says the caller chose the request id: then
// even an Acquire that never left this node is abandoned, so the id's
// answer is final (cancelled) for whoever asks about it later. Whether the
// Acquire carries its attempt is decided from a table that has caught up
// with the log (caughtUp): the table of a node that just restarted may
// still show version 1, and an attempt left out there would leave a grant
// made meanwhile to a gone caller unreleased.
func (n *Node) acquire(ctx context.Context, c *fsm.Command, named bool, try uint8) (_ *fsm.Result, err error) {
	attempt := n.newAttempt(try)
	var sent bool
	var r *fsm.Result
	defer func() {
		// A definite refusal (busy, timed out, cancelled) holds nothing; an
		// error or a grant the caller is no longer there for may hold keys.
		if (sent || named) && (err != nil || (r.Code == fsm.CodeOK && ctx.Err() != nil)) {
			n.abandons.add(c, attempt, sent)
		}
	}()
	if err = n.caughtUp(ctx); err != nil {
		return nil, err
	}
	if n.clusterVersion() >= fsm.Version2 {
		c.Attempt = attempt
	}
	var sub *subscription
	if c.Wait > 0 {
		sub = n.hub.subscribe(c.RequestID)
		defer n.hub.unsubscribe(sub)
	}
	if r, err = n.propose(ctx, c, &sent); err != nil {
		return nil, err
	}
	if r.Code == fsm.CodePending {
		idle(ctx) // waiting costs no CPU: let another call in
		if r, err = n.awaitOutcome(ctx, sub, c.Wait); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// departedBeforeStart is the interceptor that applies the rule to an
// Acquire whose caller was gone before its handler could run (its deadline
// passed while connect read the request: connect then answers without
// calling the handler): a caller-chosen request id is abandoned all the
// same, so its answer is final (cancelled) wherever it is asked.
func (n *Node) departedBeforeStart() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if m, ok := req.Any().(*raftlockv1.AcquireRequest); ok && ctx.Err() != nil && m.RequestId != "" && fsm.ValidateRequestID(m.RequestId) == nil {
				c := &fsm.Command{Op: fsm.OpAcquire, RequestID: m.RequestId, Wait: m.GetWaitTimeout().AsDuration()}
				n.abandons.add(c, n.newAttempt(tryOf(req.Header())), false)
			}
			return next(ctx, req)
		}
	}
}

// awaitOutcome waits until the waiting Acquire of s is resolved on this
// node's lock table. If no resolution arrives within the wait plus a grace
// period (no leader to time it out), the outcome is reported unknown.
func (n *Node) awaitOutcome(ctx context.Context, s *subscription, wait time.Duration) (*fsm.Result, error) {
	guard := time.NewTimer(wait + 4*n.cfg.ElectionTimeout + n.cfg.ApplyTimeout)
	defer guard.Stop()
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case ev := <-s.ch:
			return &ev, nil
		case <-recheck.C:
			if r, ok := n.localOutcome(s.rid); ok && r.Code != fsm.CodePending {
				return &r, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-guard.C:
			return nil, fmt.Errorf("%w: the acquire with request id %q was not resolved in time, and is being withdrawn; ask GetRequestOutcome", ErrOutcomeUnknown, s.rid)
		case <-n.shutdownCh:
			return nil, fmt.Errorf("%w: the acquire with request id %q still waits; retry it elsewhere with the same request id", ErrShuttingDown, s.rid)
		}
	}
}

func (n *Node) localOutcome(rid string) (r fsm.Result, ok bool) {
	n.fsm.Read(func(t *fsm.Table) { r, ok = t.Outcome(rid) })
	return r, ok
}

// observe receives every applied result (on the apply goroutine): the
// journal, the metrics and the hub see it.
func (n *Node) observe(r *fsm.Result) {
	if n.cfg.Journal != nil {
		n.journal(r)
	}
	n.met.observe(r)
	n.watches.publish(r)
	for _, ev := range r.Events {
		n.hub.publish(ev)
	}
}

// Limits of the background abandons.
const (
	// maxAbandons is the most abandons in flight on a node; past it, a
	// departed caller's waiter is left to its wait timeout (and counted).
	maxAbandons = 4096
	// abandonPatience is how long a node keeps trying to commit one abandon.
	abandonPatience = 2 * time.Minute
	// shutdownGrace is how long a stopping node waits before abandoning the
	// attempts of the callers it sent away, so their retries elsewhere take
	// the requests over first.
	shutdownGrace = time.Second
)

// abandons commits the abandons of departed callers in the background.
type abandons struct {
	n *Node

	mu       sync.Mutex
	inFlight int           // abandons started and not finished
	idle     chan struct{} // closed while inFlight is 0
}

func newAbandons(n *Node) *abandons {
	idle := make(chan struct{})
	close(idle)
	return &abandons{n: n, idle: idle}
}

// add abandons the Acquire c in the background. sent says c may have
// reached a leader: then the abandon acts for what c carried, its attempt
// (cluster version 2) or, without one, its waiter (cancel_wait: before
// version 2 a grant cannot be told from a live one). An Acquire that never
// left this node (a caller-chosen request id) is abandoned as attempt once
// the node has caught up and knows whether the cluster records attempts:
// the abandon leaves a tombstone, so the id's answer is final.
func (a *abandons) add(c *fsm.Command, attempt uint64, sent bool) {
	if sent && c.Attempt == 0 && c.Wait == 0 {
		return // nothing waits, and a grant cannot be told from a live one
	}
	a.mu.Lock()
	if a.inFlight >= maxAbandons {
		a.mu.Unlock()
		a.n.met.abandonsDropped.Inc()
		a.n.log.Warn("too many abandoned acquires in flight; this one is left to its wait timeout", "request_id", c.RequestID)
		return
	}
	if a.inFlight == 0 {
		a.idle = make(chan struct{})
	}
	a.inFlight++
	a.mu.Unlock()
	go func() {
		defer a.finish()
		a.run(c, attempt, sent)
	}()
}

func (a *abandons) finish() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight--; a.inFlight == 0 {
		close(a.idle)
	}
}

// command is the entry that abandons c (see add); nil: nothing to do. For
// an Acquire that was not sent it waits until the node has caught up.
func (a *abandons) command(ctx context.Context, c *fsm.Command, attempt uint64, sent bool) (*fsm.Command, error) {
	if !sent {
		if err := a.n.caughtUp(ctx); err != nil {
			return nil, err
		}
		if a.n.clusterVersion() >= fsm.Version2 {
			return &fsm.Command{Op: fsm.OpAbandon, RequestID: c.RequestID, Attempt: attempt}, nil
		}
	} else if c.Attempt != 0 {
		return &fsm.Command{Op: fsm.OpAbandon, RequestID: c.RequestID, Attempt: c.Attempt}, nil
	}
	if c.Wait == 0 {
		return nil, nil
	}
	return &fsm.Command{Op: fsm.OpCancelWait, RequestID: c.RequestID}, nil
}

func (a *abandons) run(c *fsm.Command, attempt uint64, sent bool) {
	n := a.n
	ctx, cancel := context.WithTimeout(context.Background(), abandonPatience)
	defer cancel()
	go func() { // Raft going down ends the attempts
		select {
		case <-n.raftDown:
			cancel()
		case <-ctx.Done():
		}
	}()
	select {
	case <-n.shutdownCh:
		sleepCtx(ctx, shutdownGrace) // let the caller's retry take the request over first
	default:
	}
	for {
		cmd, err := a.command(ctx, c, attempt, sent)
		if err == nil && cmd == nil {
			return
		}
		if err == nil {
			if _, err = n.proposeAbandon(ctx, cmd); err == nil {
				n.met.abandons.Inc()
				return
			}
		}
		if ctx.Err() != nil || !sleepCtx(ctx, 100*time.Millisecond) {
			n.log.Warn("could not withdraw the acquire of a departed caller", "request_id", c.RequestID, "err", err)
			return
		}
	}
}

// proposeAbandon is propose for an abandon: it keeps going while the node
// shuts down gracefully (the abandon must reach the log before Raft stops).
func (n *Node) proposeAbandon(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	encoded := cmd.Encode(nil)
	if o := n.leading(); o != nil {
		return n.applyLocal(o, encoded)
	}
	addr, err := n.leaderToForwardTo()
	if err != nil {
		return nil, err
	}
	return n.peers.propose(ctx, addr, encoded)
}

// wait waits until no abandon is in flight, or ctx ends.
func (a *abandons) wait(ctx context.Context) {
	a.mu.Lock()
	idle := a.idle
	a.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// hub delivers the resolution of waiting Acquires (granted, timed out,
// cancelled), as the lock table reports them in Result.Events, to the
// handlers waiting on their request ids.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

// subscription receives the event of one request id. Its channel holds one
// event; a request id is resolved only once.
type subscription struct {
	rid string
	ch  chan fsm.Result
}

func newHub() *hub { return &hub{subs: make(map[string]map[*subscription]struct{})} }

// subscribe must happen before the command that may queue the waiter is
// proposed, so the event cannot be missed.
func (h *hub) subscribe(rid string) *subscription {
	s := &subscription{rid: rid, ch: make(chan fsm.Result, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[rid]
	if set == nil {
		set = make(map[*subscription]struct{})
		h.subs[rid] = set
	}
	set[s] = struct{}{}
	return s
}

func (h *hub) unsubscribe(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.subs[s.rid]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, s.rid)
		}
	}
}

// publish hands an event to every subscriber of its request id. It never
// blocks: it runs on the goroutine that applies Raft entries.
func (h *hub) publish(ev fsm.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[ev.RequestID] {
		select {
		case s.ch <- ev:
		default:
		}
	}
}

// Incarnations. Each start of a node draws a new incarnation (kept in
// <data-dir>/incarnation), and every attempt the node makes carries it in
// its high 32 bits. A node that crashed could not abandon the attempts of
// the callers it was serving; when it starts again, it abandons every
// attempt of its previous incarnation at once (fsm.OpAbandonNode): their
// waiters are withdrawn. Grants are not released: one made before the
// crash may have reached its caller (a follower answers a forwarded
// Acquire as soon as the leader does), and the cluster cannot tell which;
// a grant nobody received ends when it expires, which is why locks should
// have one. (A node that never comes back leaves its waiters to their wait
// timeouts.)

// incarnationFile holds the node's current incarnation, in hex.
const incarnationFile = "incarnation"

// newIncarnation reads the previous incarnation of the node in dataDir (0:
// none) and records a new one, different and never 0, durably.
func newIncarnation(dataDir string) (prev, cur uint32, err error) {
	path := filepath.Join(dataDir, incarnationFile)
	if b, err := os.ReadFile(path); err == nil {
		v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
		if perr != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, perr)
		}
		prev = uint32(v)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, err
	}
	for cur == 0 || cur == prev {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cur = binary.BigEndian.Uint32(b[:])
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, 0, err
	}
	_, err = fmt.Fprintf(f, "%08x\n", cur)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("record the node's incarnation: %w", err)
	}
	return prev, cur, nil
}

// newAttempt makes the attempt id of one handling of an Acquire on this
// node (fsm.Attempt): its incarnation, the caller's try of the request id
// (the Raftlock-Attempt header; 0 when it does not say), and a counter.
func (n *Node) newAttempt(try uint8) uint64 {
	return fsm.Attempt(n.incarnation, try, n.attempts.Add(1))
}

// attemptHeader carries the caller's try of a request id (1 for the first).
const attemptHeader = "Raftlock-Attempt"

// tryOf reads the try a caller says a call is (0 when it does not say, or
// says nonsense; above 255 counts as 255).
func tryOf(h http.Header) uint8 {
	v, err := strconv.Atoi(h.Get(attemptHeader))
	if err != nil || v < 0 {
		return 0
	}
	return uint8(min(v, 255))
}

// abandonPrevious abandons the attempts of the node's previous
// incarnation, once the node has caught up with the log (so it knows the
// cluster version: before version 2 nothing carried attempts).
func (n *Node) abandonPrevious() {
	if n.prevIncarnation == 0 {
		return
	}
	cmd := &fsm.Command{Op: fsm.OpAbandonNode, Attempt: uint64(n.prevIncarnation) << 32}
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ApplyTimeout)
		ready := n.caughtUp(ctx) == nil
		var r *fsm.Result
		var err error
		if ready && n.clusterVersion() < fsm.Version2 {
			cancel()
			return
		}
		if ready {
			r, err = n.propose(ctx, cmd, nil)
		}
		cancel()
		if ready && err == nil {
			n.log.Info("abandoned the acquires of this node's previous run", "incarnation", fmt.Sprintf("%08x", n.prevIncarnation), "requests", r.Count)
			return
		}
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
	}
}

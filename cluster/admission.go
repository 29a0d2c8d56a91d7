package cluster

import (
	"context"
	"net/http"
	"sync"
)

// Admission control. A burst of thousands of calls (10,000 waiting
// acquires arriving at once) makes as many goroutines runnable at the same
// moment; Raft's heartbeats then wait behind them in the Go scheduler's run
// queue for hundreds of milliseconds, past the leader lease, and the leader
// steps down. So the calls that do work at once are bounded: a call takes a
// slot before connect decodes it and gives it back when it is done or when
// it starts waiting in a queue (a waiting Acquire costs no CPU), and calls
// beyond the bound wait for a slot, blocked, not runnable. Raft's own
// traffic (the Raft streams) and health checks are not counted.

// maxBusyCalls is how many API calls (and forwarded proposals) may be past
// admission and not waiting, per node.
const maxBusyCalls = 256

type admittedKey struct{}

// admitted is a call's slot; release gives it back once.
type admitted struct {
	once    sync.Once
	release func()
}

func (a *admitted) done() { a.once.Do(a.release) }

// admit runs h once a slot is free (or not at all if the caller leaves
// first).
func (n *Node) admit(h http.Handler) http.Handler {
	slots := make(chan struct{}, maxBusyCalls)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		a := &admitted{release: func() { <-slots }}
		defer a.done()
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), admittedKey{}, a)))
	})
}

// idle gives the call's slot back early: it is about to wait without
// working (a queued Acquire).
func idle(ctx context.Context) {
	if a, ok := ctx.Value(admittedKey{}).(*admitted); ok {
		a.done()
	}
}

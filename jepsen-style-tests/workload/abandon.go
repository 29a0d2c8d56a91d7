package workload

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AbandonSuffix names the key of a key set that the abandoning clients use
// (kNNN-ab): its own key, so that callers the history does not record
// never touch the keys the other checkers judge.
const AbandonSuffix = "-ab"

// Abandoned is one acquire whose caller gave up on purpose: a deadline of
// 1-5 ms, or a disconnect 1-5 ms after sending, and that got no grant back
// (a call answered with a grant in time is released, and not counted). It
// waits up to 30 s and never expires, so a grant nobody withdrew would hold
// its key forever.
type Abandoned struct {
	Key, Owner, RequestID string
	// How: "deadline" or "disconnect".
	How string
	// After is the deadline, or the time to the disconnect.
	After time.Duration
	// Node is the index of the endpoint the call went to; At is when it was
	// sent and Until when the caller gave up (the recorder's clock).
	Node      int
	At, Until int64
	// From is the client's own source address ("" when it has none).
	From string
}

// abandoners run beside the recorded clients and keep what they gave up.
type abandoners struct {
	mu   sync.Mutex
	list []Abandoned
}

// Abandoned returns the acquires the abandoning clients gave up so far.
func (w *Workload) Abandoned() []Abandoned {
	w.ab.mu.Lock()
	defer w.ab.mu.Unlock()
	return append([]Abandoned(nil), w.ab.list...)
}

// abandonLoop is one abandoning client: it holds its key set's -ab key
// for a moment (2 s lease), sends one to three acquires for it that it
// abandons, and releases. Only while it holds the key: the abandoned
// acquires must queue, so that a grant can only come after their callers
// left (a grant made at once would race the caller's 1-5 ms departure,
// and whether it reached the caller could not be told).
func (w *Workload) abandonLoop(ctx context.Context, id int, from string, hc *http.Client) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(1000+id)))
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rng.Int64N(int64(4*w.cfg.Interval) + 1))):
		}
		keys := *w.keys.Load()
		key := keys[0] + AbandonSuffix
		holder := fmt.Sprintf("ab-holder-%d-%d", id, seq)
		held := w.call(ctx, hc, w.endpoint(rng), "Acquire", fmt.Sprintf(`{"keys":[%q],"ownerId":%q,"expire":"2s","waitTimeout":"1s","requestId":%q}`, key, holder, holder), nil, 0)
		heldAt := time.Now()
		for j := range 1 + rng.IntN(3) {
			// The holder's lease (2 s) must outlast the call: an abandon
			// that a fault slowed may have let it run out.
			if !held || time.Since(heldAt) > time.Second {
				break
			}
			a := Abandoned{Key: key, Owner: fmt.Sprintf("ab-gone-%d-%d-%d", id, seq, j), Node: rng.IntN(len(w.cfg.Endpoints)),
				After: time.Duration(1+rng.IntN(5)) * time.Millisecond, How: "deadline", At: w.rec.Now(), From: from}
			a.RequestID = a.Owner
			if rng.IntN(2) == 0 {
				a.How = "disconnect"
			}
			body := fmt.Sprintf(`{"keys":[%q],"ownerId":%q,"waitTimeout":"30s","requestId":%q}`, a.Key, a.Owner, a.RequestID)
			var granted bool
			if a.How == "deadline" {
				// Connect-Timeout-Ms: the caller's deadline, in whole ms (at least 1).
				granted = w.call(ctx, hc, w.cfg.Endpoints[a.Node], "Acquire", body, http.Header{"Connect-Timeout-Ms": {strconv.Itoa(max(1, int(a.After/time.Millisecond)))}}, 0)
			} else {
				granted = w.call(ctx, hc, w.cfg.Endpoints[a.Node], "Acquire", body, nil, a.After)
			}
			a.Until = w.rec.Now()
			if granted { // the grant came back in time: the caller has it, and gives it back
				w.call(ctx, hc, w.endpoint(rng), "Release", fmt.Sprintf(`{"keys":[%q],"ownerId":%q,"requestId":%q}`, a.Key, a.Owner, a.RequestID+"-r"), nil, 0)
				continue
			}
			w.ab.mu.Lock()
			w.ab.list = append(w.ab.list, a)
			w.ab.mu.Unlock()
		}
		// Free the key a moment after the last departure, as an unrelated
		// holder would: the node serving a hang-up learns of it from the
		// connection's end, which must be able to arrive first.
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
		_ = w.call(ctx, hc, w.endpoint(rng), "Release", fmt.Sprintf(`{"keys":[%q],"ownerId":%q,"requestId":%q}`, key, holder, holder+"-r"), nil, 0)
	}
}

func (w *Workload) endpoint(rng *rand.Rand) string {
	return w.cfg.Endpoints[rng.IntN(len(w.cfg.Endpoints))]
}

// call posts a Connect JSON call and reports whether it was answered with
// success (a 200 whose headers arrived: the caller saw the answer, even if
// reading the rest was cut); with hangUp > 0 the call is cut that long
// after it starts (the stream is reset: the server sees its caller go
// away).
func (w *Workload) call(ctx context.Context, hc *http.Client, endpoint, method, body string, header http.Header, hangUp time.Duration) bool {
	url := endpoint
	if !strings.Contains(url, "://") {
		url = "http://" + url
		if w.cfg.HTTPClient != nil {
			url = "https://" + endpoint
		}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	if hangUp > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, hangUp)
		defer c2()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/raftlock.v1.LockService/"+method, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

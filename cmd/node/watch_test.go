package main

// Watches (issue 17) against real node processes: what a watcher sees is
// the history of what the test did, in log order, without gap or
// duplicate, across a leader kill and the loss of the node it watched.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// watchLog collects what one watch delivers.
type watchLog struct {
	mu      sync.Mutex
	updates []client.WatchUpdate
	err     error
}

func startWatch(t *testing.T, ctx context.Context, cl *client.Client, prefix string, opts ...client.WatchOption) *watchLog {
	t.Helper()
	w := &watchLog{}
	go func() {
		for u, err := range cl.Watch(ctx, prefix, opts...) {
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.updates = append(w.updates, u)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watchLog) events() []client.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []client.Event
	for _, u := range w.updates {
		out = append(out, u.Events...)
	}
	return out
}

// has reports whether an event of kind on key by owner has arrived.
func (w *watchLog) has(key string, kind client.EventKind, owner string) bool {
	return slices.ContainsFunc(w.events(), func(e client.Event) bool { return e.Key == key && e.Kind == kind && e.Owner == owner })
}

// snapshots counts the snapshots delivered.
func (w *watchLog) snapshots() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, u := range w.updates {
		if u.Snapshot {
			n++
		}
	}
	return n
}

// countOf counts the events of key.
func (w *watchLog) countOf(key string) int {
	n := 0
	for _, e := range w.events() {
		if e.Key == key {
			n++
		}
	}
	return n
}

func eventString(e client.Event) string {
	s := fmt.Sprintf("%s %s", e.Kind, e.Owner)
	if e.Previous != "" {
		s += " from " + e.Previous
	}
	if e.Reason != "" {
		s += " " + e.Reason
	}
	return s
}

// byKey is the events of each key, as "kind owner" strings.
func byKey(evs []client.Event) map[string][]string {
	m := map[string][]string{}
	for _, e := range evs {
		m[e.Key] = append(m[e.Key], eventString(e))
	}
	return m
}

// checkOrder fails unless indexes never go down, and events are never
// repeated (an index, key, kind and owner appear once).
func checkOrder(t *testing.T, name string, evs []client.Event) {
	t.Helper()
	seen := map[string]bool{}
	var last uint64
	for _, e := range evs {
		if e.Index < last {
			t.Fatalf("%s: index %d after %d", name, e.Index, last)
		}
		last = e.Index
		id := fmt.Sprintf("%d/%s/%s/%s/%s", e.Index, e.Key, e.Kind, e.Owner, e.RequestID)
		if seen[id] {
			t.Fatalf("%s: event %s twice", name, id)
		}
		seen[id] = true
	}
}

func postJSON(ctx context.Context, hc *http.Client, url, method, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/raftlock.v1.LockService/"+method, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s %s", method, resp.Status, b)
	}
	return string(b), err
}

// One watch through a follower sees every kind of event the test causes,
// in order; the leader is killed mid-stream, then the node the watch is on:
// the watch resumes on another node, and delivers exactly what a second
// watch on the one node never stopped delivers: no gap, no duplicate,
// indexes in order.
func TestWatchAcrossLeaderKillAndReconnect(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := t.Context()
	leader := c.Leader()
	fol := c.Followers()
	f, other := fol[0], fol[1]

	act, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer act.Close()
	// The watch through the follower f first (then the others, in turn).
	wcl, err := client.New([]string{c.Addr(f), c.Addr(leader), c.Addr(other)}, client.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		client.WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	defer wcl.Close()
	refcl, err := client.New([]string{c.Addr(other)})
	if err != nil {
		t.Fatal(err)
	}
	defer refcl.Close()
	w := startWatch(t, ctx, wcl, "w:")
	ref := startWatch(t, ctx, refcl, "w:")
	c.WaitFor("both watches started", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		ref.mu.Lock()
		defer ref.mu.Unlock()
		return len(w.updates) > 0 && len(ref.updates) > 0
	})

	acquire := func(key, owner string, opts ...client.LockOption) *client.Lock {
		t.Helper()
		l, err := act.Acquire(ctx, []string{key}, append([]client.LockOption{client.WithOwner(owner), client.WithExpire(0)}, opts...)...)
		if err != nil {
			t.Fatalf("acquire %s as %s: %v", key, owner, err)
		}
		return l
	}
	release := func(key, owner string) {
		t.Helper()
		if ok, err := act.Release(ctx, []string{key}, owner); err != nil || !ok {
			t.Fatalf("release %s as %s: %v %v", key, owner, ok, err)
		}
	}
	waitFor := func(key string, kind client.EventKind, owner string) {
		t.Helper()
		c.WaitFor(fmt.Sprintf("the watch to see %s %s %s", key, kind, owner), func() bool { return w.has(key, kind, owner) })
	}

	// A hand-off: a holds, b waits, a releases.
	acquire("w:a", "a")
	got := make(chan error, 1)
	go func() {
		_, err := act.Acquire(ctx, []string{"w:a"}, client.WithOwner("b"), client.WithExpire(0), client.WithWait(time.Minute))
		got <- err
	}()
	waitFor("w:a", client.EventWaiterJoined, "b")
	release("w:a", "a")
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	release("w:a", "b")

	// An expiry: a lock of one second nobody refreshes.
	if _, err := postJSON(ctx, c.HTTPClient(), c.URL(leader), "Acquire", `{"keys":["w:e"],"ownerId":"e","expire":"1s"}`); err != nil {
		t.Fatal(err)
	}
	// A wait that times out.
	acquire("w:t", "t1")
	if _, err := act.Acquire(ctx, []string{"w:t"}, client.WithOwner("t2"), client.WithWait(500*time.Millisecond)); err == nil {
		t.Fatal("t2 was granted w:t, held by t1")
	}
	release("w:t", "t1")
	waitFor("w:e", client.EventExpired, "e")

	// The leader dies mid-stream.
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	// A cancelled wait (CancelAcquire) and an abandoned one (the caller
	// gives up), through the new leader.
	acquire("w:c", "c1")
	go func() {
		_, err := postJSON(ctx, c.HTTPClient(), c.URL(other), "Acquire", `{"keys":["w:c"],"ownerId":"c2","waitTimeout":"60s","requestId":"r-c2"}`)
		got <- err
	}()
	waitFor("w:c", client.EventWaiterJoined, "c2")
	if _, err := postJSON(ctx, c.HTTPClient(), c.URL(other), "CancelAcquire", `{"requestId":"r-c2"}`); err != nil {
		t.Fatal(err)
	}
	<-got // cancelled
	release("w:c", "c1")
	acquire("w:x", "x1")
	actx, cancel := context.WithCancel(ctx)
	go func() {
		// A caller that hangs up (no CancelAcquire): the node withdraws it.
		_, err := postJSON(actx, &http.Client{Transport: &http.Transport{}}, c.URL(other), "Acquire", `{"keys":["w:x"],"ownerId":"x2","waitTimeout":"60s","requestId":"r-x2"}`)
		got <- err
	}()
	waitFor("w:x", client.EventWaiterJoined, "x2")
	cancel()
	<-got
	waitFor("w:x", client.EventWaiterLeft, "x2")
	release("w:x", "x1")

	// The old leader comes back; then the node the watch is on dies.
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame()
	// Events keep coming while the watch's node dies: a resume off by one
	// entry would lose some.
	stop, loaded := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { loaded <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l, err := act.Acquire(ctx, []string{"w:load"}, client.WithOwner("l"), client.WithExpire(0))
			if err != nil {
				t.Error(err)
				return
			}
			if err := l.Release(ctx); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	c.WaitFor("some load", func() bool { return w.has("w:load", client.EventReleased, "l") })
	if err := c.Kill(f); err != nil {
		t.Fatal(err)
	}
	before := w.countOf("w:load")
	c.WaitFor("the watch to resume on another node, under load", func() bool { return w.countOf("w:load") > before+10 })
	close(stop)
	if n := <-loaded; n == 0 {
		t.Fatal("no load ran")
	}
	acquire("w:z", "z")
	release("w:z", "z")
	acquire("w:end", "end")
	waitFor("w:end", client.EventAcquired, "end")
	c.WaitFor("the reference watch to see the end", func() bool { return ref.has("w:end", client.EventAcquired, "end") })

	evs, refEvs := w.events(), ref.events()
	t.Logf("watch %d events, reference %d; last %v / %v", len(evs), len(refEvs), evs[len(evs)-1], refEvs[len(refEvs)-1])
	checkOrder(t, "watch", evs)
	checkOrder(t, "reference watch", refEvs)
	want := map[string][]string{
		"w:a":   {"acquired a", "waiter_joined b", "released a", "handed_off b from a", "released b"},
		"w:e":   {"acquired e", "expired e"},
		"w:t":   {"acquired t1", "waiter_joined t2", "waiter_left t2 timed_out", "released t1"},
		"w:c":   {"acquired c1", "waiter_joined c2", "waiter_left c2 cancelled", "released c1"},
		"w:x":   {"acquired x1", "waiter_joined x2", "waiter_left x2 abandoned", "released x1"},
		"w:z":   {"acquired z", "released z"},
		"w:end": {"acquired end"},
	}
	gotKeys := byKey(evs)
	delete(gotKeys, "w:load") // compared with the reference below
	for k, ws := range want {
		if !slices.Equal(gotKeys[k], ws) {
			t.Errorf("%s: events %q, want %q", k, gotKeys[k], ws)
		}
	}
	if len(gotKeys) != len(want) {
		t.Errorf("events of keys %v, want only %v", gotKeys, want)
	}
	if a, b := fmt.Sprint(evs), fmt.Sprint(refEvs); a != b {
		t.Errorf("the reconnecting watch and the reference differ:\n got %v\nwant %v", evs, refEvs)
	}
	w.mu.Lock()
	for _, u := range w.updates[1:] {
		if u.Snapshot {
			t.Errorf("the watch resynced (%s at %d) instead of resuming", u.Reason, u.Index)
		}
	}
	w.mu.Unlock()
}

// A watch that resumes from an index the node no longer remembers gets a
// snapshot marked resync (too_old) with the current state, then events.
// A watch that resumes from a remembered index gets exactly the events
// after it.
func TestWatchResumeAndTooOld(t *testing.T) {
	// A history of 20,000 changes: 200 entries of 64 keys each, 100
	// acquires and 100 releases, push the first entries out.
	c := testcluster.New(t, 1)
	ctx := t.Context()
	cl, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	l, err := cl.Acquire(ctx, []string{"old:first"}, client.WithOwner("o"), client.WithExpire(0))
	if err != nil {
		t.Fatal(err)
	}
	first := l.Token() // the index of that entry
	// Every protocol streams: gRPC-Web and Connect JSON over HTTP/1.1,
	// gRPC over h2c (the client's default).
	for _, opt := range []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON()} {
		st, err := raftlockv1connect.NewLockServiceClient(&http.Client{}, c.URL(0), opt).Watch(ctx, connect.NewRequest(&raftlockv1.WatchRequest{Prefix: "old:"}))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Receive() || st.Msg().GetSnapshot() == nil || len(st.Msg().GetSnapshot().Keys) != 1 {
			t.Fatalf("watch (%T): %v %v, want a snapshot of old:first", opt, st.Msg(), st.Err())
		}
		st.Close()
	}
	if _, err := cl.Acquire(ctx, []string{"old:second"}, client.WithOwner("o"), client.WithExpire(0)); err != nil {
		t.Fatal(err)
	}
	// Resume right after the first entry: exactly the second follows.
	for u, err := range cl.Watch(ctx, "old:", client.WatchFrom(first)) {
		if err != nil {
			t.Fatal(err)
		}
		if u.Snapshot || len(u.Events) != 1 || u.Events[0].Key != "old:second" || u.Events[0].Kind != client.EventAcquired {
			t.Fatalf("resume after %d: %+v, want the acquire of old:second alone", first, u)
		}
		break
	}
	keys := make([]string, 64)
	for round := range 160 {
		for i := range keys {
			keys[i] = fmt.Sprintf("fill:%d", i)
		}
		l, err := cl.Acquire(ctx, keys, client.WithOwner(fmt.Sprint("f", round)), client.WithExpire(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for u, err := range cl.Watch(ctx, "old:", client.WatchFrom(first)) {
		if err != nil {
			t.Fatal(err)
		}
		if !u.Snapshot || !u.Resync || u.Reason != "too_old" {
			t.Fatalf("resume from %d after 20,000 changes: %+v, want a too_old resync", first, u)
		}
		if len(u.Keys) != 2 || u.Keys[0].Key != "old:first" || u.Keys[1].Key != "old:second" || u.Keys[0].Lock.Owner != "o" {
			t.Fatalf("resync snapshot keys %+v, want old:first and old:second held by o", u.Keys)
		}
		break
	}
}

// A client that opens a watch and does not read is cut off once its
// buffer (--watch-buffer) fills: the node goes on applying, and the stream
// ends with resource_exhausted and a message that says why, once the
// client reads what was already on its way. Other watches are not hurt.
func TestWatchSlowWatcherIsCutOff(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithArgs("--watch-buffer", "64"))
	c.Leader()
	ctx := t.Context()
	cl, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	healthy := startWatch(t, ctx, cl, "slow:")

	// The slow client: Connect JSON over HTTP/1.1, its body left unread.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL(0)+"/raftlock.v1.LockService/Watch", strings.NewReader("\x00\x00\x00\x00\x0d{\"prefix\":\"\"}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+json")
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s", resp.Status)
	}

	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("slow:%d", i)
	}
	round := 0
	c.WaitFor("the node to cut the slow watcher off", func() bool {
		round++
		l, err := cl.Acquire(ctx, keys, client.WithOwner(fmt.Sprint("s", round)), client.WithExpire(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		return metric(t, c, "raftlock_watch_cutoffs_total") >= 1
	})
	// Now read: what was on its way, then the end of the stream with the
	// error.
	br := bufio.NewReader(resp.Body)
	var end string
	for {
		var head [5]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			t.Fatalf("the stream broke without its end message: %v", err)
		}
		n := int(head[1])<<24 | int(head[2])<<16 | int(head[3])<<8 | int(head[4])
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		if head[0]&2 != 0 { // the end-of-stream message
			end = string(body)
			break
		}
	}
	var eos struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(end), &eos); err != nil {
		t.Fatalf("end of stream %q: %v", end, err)
	}
	if eos.Error.Code != "resource_exhausted" || !strings.Contains(eos.Error.Message, "more than 64 events were waiting") {
		t.Fatalf("end of stream: %q, want resource_exhausted saying the client fell behind", end)
	}
	// The healthy watch saw the last round.
	last := fmt.Sprint("s", round)
	c.WaitFor("the healthy watch to see the last round", func() bool { return healthy.has("slow:0", client.EventReleased, last) })
}

// metric reads one counter or gauge from node 0's /metrics.
func metric(t *testing.T, c *testcluster.Cluster, name string) float64 {
	t.Helper()
	resp, err := c.HTTPClient().Get(c.URL(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return scanMetric(resp.Body, name)
}

func scanMetric(r io.Reader, name string) float64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// A backup restore replaces the table: every watch gets a snapshot marked
// resync (restored) with the restored state, on the leader and on a
// follower (which installs the restored snapshot), and goes on with events
// after it.
func TestWatchResyncsOnRestore(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := t.Context()
	leader := c.Leader()
	f := c.Followers()[0]
	cl, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var watches []*watchLog
	for _, i := range []int{leader, f} {
		wc, err := client.New([]string{c.Addr(i)})
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		watches = append(watches, startWatch(t, ctx, wc, ""))
	}
	for _, w := range watches {
		c.WaitFor("the watch's first snapshot", func() bool { return w.snapshots() > 0 })
	}
	if _, err := cl.Acquire(ctx, []string{"before"}, client.WithOwner("o"), client.WithExpire(0)); err != nil {
		t.Fatal(err)
	}
	for _, w := range watches {
		c.WaitFor("the watch to see the first lock", func() bool { return w.has("before", client.EventAcquired, "o") })
	}
	res, err := cl.Restore(ctx, backupOf(t, fsm.Version2), client.RestoreOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Acquire(ctx, []string{"after"}, client.WithOwner("o"), client.WithExpire(0)); err != nil {
		t.Fatal(err)
	}
	for i, w := range watches {
		c.WaitFor("the watch to see the lock after the restore", func() bool { return w.has("after", client.EventAcquired, "o") })
		w.mu.Lock()
		var resync *client.WatchUpdate
		for j := range w.updates {
			if u := &w.updates[j]; j > 0 && u.Snapshot {
				resync = u
			}
		}
		w.mu.Unlock()
		if resync == nil || !resync.Resync || resync.Reason != "restored" || resync.Index < res.Index {
			t.Fatalf("watch %d: resync %+v, want one marked restored at index %d or later", i, resync, res.Index)
		}
		if len(resync.Keys) != 1 || resync.Keys[0].Key != "restored" || resync.Keys[0].Lock.Owner != "keeper" {
			t.Fatalf("watch %d: the resync holds %+v, want the backup's one lock", i, resync.Keys)
		}
	}
}

// Watch is behind the same token rules as ListLocks although the unary
// interceptors do not see streams: a read token scoped to a prefix may
// watch under it (and sees only its keys), not outside it; a token
// without read may not watch; no token is unauthenticated.
func TestWatchNeedsAReadTokenWithinItsPrefix(t *testing.T) {
	const reader, writer = "watch-reader", "watch-writer"
	c := testcluster.New(t, 1, testcluster.WithTokens(
		tokens.Token{Name: "reader", SHA256: tokens.Hash(reader), Prefixes: []string{"app/"}, Verbs: []string{tokens.VerbRead}},
		tokens.Token{Name: "writer", SHA256: tokens.Hash(writer), Verbs: []string{tokens.VerbAcquire}}))
	c.Leader()
	ctx := t.Context()
	trust, err := client.TLSFromFiles(filepath.Join(c.TLSDir(), "ca.crt"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	with := func(secret string) *client.Client {
		opts := []client.Option{client.WithTLS(trust)}
		if secret != "" {
			opts = append(opts, client.WithBearerToken(secret))
		}
		cl, err := client.New(c.Addrs(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	first := func(cl *client.Client, prefix string) (client.WatchUpdate, error) {
		for u, err := range cl.Watch(ctx, prefix) {
			return u, err
		}
		return client.WatchUpdate{}, nil
	}
	for _, tc := range []struct {
		secret, prefix string
		code           connect.Code
	}{
		{"", "app/", connect.CodeUnauthenticated},
		{writer, "", connect.CodePermissionDenied},
		{reader, "other/", connect.CodePermissionDenied},
		{reader, "", connect.CodePermissionDenied},
	} {
		if _, err := first(with(tc.secret), tc.prefix); connect.CodeOf(err) != tc.code {
			t.Errorf("watch %q with token %q: %v, want %s", tc.prefix, tc.secret, err, tc.code)
		}
	}
	w := with(writer)
	for _, k := range []string{"app/1", "other/1"} {
		if _, err := w.Acquire(ctx, []string{k}, client.WithOwner("o"), client.WithExpire(0)); err != nil {
			t.Fatal(err)
		}
	}
	u, err := first(with(reader), "app/")
	if err != nil || !u.Snapshot || len(u.Keys) != 1 || u.Keys[0].Key != "app/1" {
		t.Fatalf("watch app/ with the reader: %+v %v, want a snapshot of app/1 alone", u, err)
	}
}

// Watches hold no admission slot (a node admits 256 busy calls at once):
// with 300 streams open, calls are still served; a node serves at most
// --max-watches streams, and the next is refused with resource_exhausted
// naming the limit.
func TestWatchesHoldNoAdmissionSlotAndAreBounded(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithArgs("--max-watches", "300"))
	c.Leader()
	ctx := t.Context()
	cl, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	wc, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	for range 300 {
		go func() {
			for range wc.Watch(ctx, "busy:") {
			}
		}()
	}
	c.WaitFor("300 watches", func() bool { return metric(t, c, "raftlock_watches") == 300 })
	if _, err := cl.Acquire(ctx, []string{"busy:1"}, client.WithOwner("o"), client.WithExpire(0)); err != nil {
		t.Fatalf("acquire with 300 watches open: %v", err)
	}
	st, err := raftlockv1connect.NewLockServiceClient(&http.Client{}, c.URL(0), connect.WithProtoJSON()).Watch(ctx, connect.NewRequest(&raftlockv1.WatchRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Receive() || connect.CodeOf(st.Err()) != connect.CodeResourceExhausted || !strings.Contains(st.Err().Error(), "maximum of 300 watches") {
		t.Fatalf("the 301st watch: %v, want resource_exhausted naming the maximum of 300", st.Err())
	}
}

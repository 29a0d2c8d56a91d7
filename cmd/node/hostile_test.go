package main

// Hostile and careless callers against real node processes (issue 14):
// callers that give up, stalled handshakes, narrow tokens, floods.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/raftlock/raftlock/cluster/certs"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// firstIP hands each process cluster of this file its own 127.0.0.x range.
var (
	ipMu   sync.Mutex
	nextIP = 121
)

type pcluster struct {
	t      *testing.T
	c      *testcluster.Cluster
	scheme string
	hc     *http.Client
}

// startCluster starts three node processes on their own loopback
// addresses; tlsDir (optional) turns TLS on, extra goes to every node.
func startCluster(t *testing.T, tlsDir string, extra ...string) *pcluster {
	t.Helper()
	return startClusterWith(t, tlsDir, testcluster.WithArgs(extra...))
}

// startClusterWith is startCluster with harness options.
func startClusterWith(t *testing.T, tlsDir string, more ...testcluster.Option) *pcluster {
	t.Helper()
	return newPCluster(t, tlsDir, true, more...)
}

// newPCluster starts the cluster and, if v2, waits until every node is at
// cluster version 2 (nodes of an older build never are).
func newPCluster(t *testing.T, tlsDir string, v2 bool, more ...testcluster.Option) *pcluster {
	t.Helper()
	ipMu.Lock()
	first := nextIP
	nextIP += 3
	ipMu.Unlock()
	addrs, err := testcluster.LoopbackAddrs(first, 3)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]testcluster.Option{testcluster.WithAddrs(addrs...)}, more...)
	if tlsDir != "" {
		opts = append(opts, testcluster.WithTLSDir(tlsDir))
	}
	c := testcluster.New(t, 3, opts...)
	pc := &pcluster{t: t, c: c, scheme: "http", hc: &http.Client{Timeout: 10 * time.Second}}
	if tlsDir != "" {
		tc, err := testcluster.ClientTLS(tlsDir)
		if err != nil {
			t.Fatal(err)
		}
		pc.scheme, pc.hc.Transport = "https", &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64}
	}
	pc.waitLeader()
	testcluster.WaitFor(t, 30*time.Second, "cluster version 2 on every node", func() bool {
		if !v2 || os.Getenv(testcluster.BinaryEnv) != "" {
			return true // an older build has no cluster version
		}
		for i := range 3 {
			st, err := c.Endpoints.Status(context.Background(), i)
			if err != nil || st.ClusterVersion != 2 {
				return false
			}
		}
		return true
	})
	return pc
}

func (pc *pcluster) waitLeader() int {
	pc.t.Helper()
	return pc.c.Leader()
}

func (pc *pcluster) follower() int {
	l := pc.waitLeader()
	return (l + 1) % 3
}

func (pc *pcluster) addr(i int) string { return pc.c.Addr(i) }

// reply is a Connect JSON answer: the status and the decoded body.
type reply struct {
	status int
	body   map[string]any
	raw    string
	err    error
}

func (r reply) code() string { s, _ := r.body["code"].(string); return s }

// post sends a Connect JSON call to node i with optional headers.
func (pc *pcluster) post(i int, method, body string, header ...string) reply {
	pc.t.Helper()
	r := pc.tryPost(i, method, body, header...)
	if r.err != nil {
		pc.t.Fatalf("%s to %s: %v", method, pc.addr(i), r.err)
	}
	return r
}

// tryPost is post that returns a transport error in reply.err.
func (pc *pcluster) tryPost(i int, method, body string, header ...string) reply {
	req, err := http.NewRequest(http.MethodPost, pc.scheme+"://"+pc.addr(i)+"/"+method, strings.NewReader(body))
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k := 0; k+1 < len(header); k += 2 {
		req.Header.Set(header[k], header[k+1])
	}
	resp, err := pc.hc.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func (pc *pcluster) outcome(i int, rid string, header ...string) map[string]any {
	pc.t.Helper()
	r := pc.post(i, "raftlock.v1.LockService/GetRequestOutcome", fmt.Sprintf(`{"requestId":%q}`, rid), header...)
	if r.status != 200 {
		pc.t.Fatalf("GetRequestOutcome %s: %d %s", rid, r.status, r.raw)
	}
	o, _ := r.body["outcome"].(map[string]any)
	return o
}

func (pc *pcluster) lock(i int, key string) map[string]any {
	pc.t.Helper()
	r := pc.post(i, "raftlock.v1.LockService/GetLock", fmt.Sprintf(`{"key":%q}`, key))
	if r.status != 200 {
		pc.t.Fatalf("GetLock %s: %d %s", key, r.status, r.raw)
	}
	l, _ := r.body["lock"].(map[string]any)
	return l
}

// DESIGN.md section 8 (7), issue 14 defect 1: a waiting acquire whose
// caller gave up — its deadline passed at once, or it hung up 0-4 ms after
// sending — never ends up holding the key, through a follower: once the
// holder releases, the key is free, and every such request's outcome is
// cancelled.
func TestAbandonedAcquiresThroughFollowersNeverHoldTheKey(t *testing.T) {
	pc := startCluster(t, "")
	leader := pc.waitLeader()
	if r := pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["ph"],"ownerId":"holder"}`); r.status != 200 {
		t.Fatalf("holder: %d %s", r.status, r.raw)
	}
	const n = 200
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for k := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f := (leader + 1 + k%2) % 3
			body := fmt.Sprintf(`{"keys":["ph"],"ownerId":"w%d","waitTimeout":"30s","requestId":"ph-%d"}`, k, k)
			if k%2 == 0 { // the caller's deadline passes at once
				req, _ := http.NewRequest(http.MethodPost, "http://"+pc.addr(f)+"/raftlock.v1.LockService/Acquire", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Connect-Timeout-Ms", "1")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				return
			}
			// The caller hangs up 0-4 ms after sending.
			c, err := net.Dial("tcp", pc.addr(f))
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(c, "POST /raftlock.v1.LockService/Acquire HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
			c.Close()
		}()
	}
	wg.Wait()
	if r := pc.post(leader, "raftlock.v1.LockService/Release", `{"keys":["ph"],"ownerId":"holder"}`); r.status != 200 {
		t.Fatalf("release: %d %s", r.status, r.raw)
	}
	pending := func() []string {
		var left []string
		for k := range n {
			if o := pc.outcome(leader, fmt.Sprintf("ph-%d", k)); o["state"] != "REQUEST_STATE_CANCELLED" {
				left = append(left, fmt.Sprintf("ph-%d=%v", k, o["state"]))
			}
		}
		return left
	}
	var left []string
	deadline := time.Now().Add(60 * time.Second)
	for left = pending(); len(left) > 0 && time.Now().Before(deadline); left = pending() {
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("%d of %d abandoned acquires are not cancelled: %v", len(left), n, left)
	}
	if l := pc.lock(leader, "ph"); l != nil {
		t.Fatalf("ph is held after every caller gave up: %v", l)
	}
	for i := range 3 { // and every replica agrees
		if l := pc.lock(i, "ph"); l != nil {
			t.Fatalf("node %d: ph held by %v", i, l)
		}
	}
}

// watchLeader polls every node's Status until stop is closed and returns
// what differed from the first (leader, term) it saw, once per node and
// view.
func (pc *pcluster) watchLeader(stop <-chan struct{}) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var first string
		var changes []string
		seen := map[string]bool{}
		for {
			for i := range 3 {
				r := pc.tryPost(i, "raftlock.v1.ClusterService/Status", "{}")
				if r.err != nil || r.status != 200 {
					continue
				}
				view := fmt.Sprintf("leader %v in term %v", r.body["leaderId"], r.body["term"])
				if first == "" {
					first = view
				}
				if view != first && !seen[fmt.Sprint(i, view)] {
					seen[fmt.Sprint(i, view)] = true
					changes = append(changes, fmt.Sprintf("at %s node %d saw %s (first: %s)", time.Now().Format("15:04:05.000"), i, view, first))
				}
			}
			select {
			case <-stop:
				out <- changes
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return out
}

// Issue 14, "load that costs leadership": a burst of 10,000 waiting
// acquires on one key, through the followers, never costs the
// cluster its leader, and every waiter gets its answer (timed out).
func TestBurstOfWaitersKeepsTheLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10,000-caller burst; skipped with -short")
	}
	pc := startCluster(t, "")
	leader := pc.waitLeader()
	if r := pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["hot"],"ownerId":"holder"}`); r.status != 200 {
		t.Fatalf("holder: %d %s", r.status, r.raw)
	}
	stop := make(chan struct{})
	changes := pc.watchLeader(stop)
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BURST_N")); err == nil {
		n = v
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}, Timeout: time.Minute}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"keys":["hot"],"ownerId":"b%d","waitTimeout":"3s","requestId":"burst-%d"}`, k, k)
			resp, err := hc.Post("http://"+pc.addr((leader+1+k%2)%3)+"/raftlock.v1.LockService/Acquire", "application/json", strings.NewReader(body))
			code := "transport error"
			if err == nil {
				var r map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				code, _ = r["code"].(string)
				if resp.StatusCode == 200 {
					code = "ok"
				}
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	if ch := <-changes; len(ch) > 0 {
		t.Errorf("the burst cost the leader: %v", ch)
	}
	t.Logf("answers: %v", codes)
	if codes["deadline_exceeded"] != n {
		t.Errorf("answers %v, want all %d deadline_exceeded (timed out waiting)", codes, n)
	}
}

// tlsDir makes development certificates for the next cluster's addresses.
func tlsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ipMu.Lock()
	first := nextIP
	ipMu.Unlock()
	hosts := []string{"localhost"}
	for i := range 3 {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", first+i))
	}
	if err := certs.DevSet(dir, hosts, time.Hour); err != nil {
		t.Fatal(err)
	}
	return dir
}

// blockedConn passes writes through and never returns from Read: a TLS
// client over it sends its ClientHello and then stalls the handshake.
type blockedConn struct {
	net.Conn
	done chan struct{}
}

func (c *blockedConn) Read([]byte) (int, error) { <-c.done; return 0, io.EOF }

// staller opens a connection to addr that offers the Raft ALPN protocol in
// its ClientHello and then says nothing more.
func staller(t *testing.T, addr string, done chan struct{}) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Logf("staller: %v", err)
		return
	}
	go func() { <-done; c.Close() }()
	tc := tls.Client(&blockedConn{Conn: c, done: done}, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"raftlock-raft/1"}})
	go func() { _ = tc.Handshake() }()
}

// Issue 14 defect 2: handshakes that stall (a ClientHello offering the Raft
// protocol, then nothing) cannot lock a node's Raft connections out: 300 of
// them opened at a follower right after it restarts do not keep it from
// hearing its leader and serving linearizable reads within a few seconds
// (each staller is cut off after the handshake timeout, in parallel).
func TestStalledHandshakesDoNotLockPeersOut(t *testing.T) {
	pc := startCluster(t, tlsDir(t))
	leader := pc.waitLeader()
	if r := pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["k"],"ownerId":"o"}`); r.status != 200 {
		t.Fatalf("acquire: %d %s", r.status, r.raw)
	}
	f := pc.follower()
	if err := pc.c.Kill(f); err != nil {
		t.Fatal(err)
	}
	if err := pc.c.Restart(f); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "the restarted follower's port", func() bool {
		c, err := net.Dial("tcp", pc.addr(f))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	done := make(chan struct{})
	defer close(done)
	for range 300 {
		staller(t, pc.addr(f), done)
	}
	start := time.Now()
	// Handshake timeout (3 s), a wait for a free handshake slot (3 s), an
	// election's worth of slack: 12 s. Before the fix, each staller held
	// the accept path for 10 s in turn.
	testcluster.WaitFor(t, 12*time.Second, "a linearizable read through the restarted follower", func() bool {
		r := pc.tryPost(f, "raftlock.v1.LockService/GetLock", `{"key":"k"}`)
		return r.err == nil && r.status == 200
	})
	t.Logf("the follower served a read %s after 300 stallers connected", time.Since(start).Round(time.Millisecond))
}

// token is a token-file entry limited to prefix.
func token(name, secret, prefix string) tokens.Token {
	return tokens.Token{Name: name, SHA256: tokens.Hash(secret), Prefixes: []string{prefix}, Verbs: []string{tokens.VerbAcquire, tokens.VerbRead}}
}

// Issue 14 defect 3: a token limited to a/ can neither read nor withdraw
// requests of b/, also when it asks a follower a moment after b's Acquire
// went to the leader: the check runs on the state the answer comes from.
func TestPrefixTokenSeesOnlyItsPrefix(t *testing.T) {
	pc := startClusterWith(t, tlsDir(t), testcluster.WithTokens(token("ta", "secret-a", "a/"), token("tb", "secret-b", "b/")))
	leader := pc.waitLeader()
	f := pc.follower()
	asA, asB := []string{"Authorization", "Bearer secret-a"}, []string{"Authorization", "Bearer secret-b"}
	if r := pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["b/1"],"ownerId":"holder"}`, asB...); r.status != 200 {
		t.Fatalf("holder: %d %s", r.status, r.raw)
	}
	const n = 30
	for k := range n {
		rid := fmt.Sprintf("tb-%d", k)
		go pc.tryPost(leader, "raftlock.v1.LockService/Acquire", fmt.Sprintf(`{"keys":["b/1"],"ownerId":"w%d","waitTimeout":"60s","requestId":%q}`, k, rid), asB...)
		time.Sleep(time.Duration(k%4) * time.Millisecond) // 0-3 ms after tb's call left
		for _, method := range []string{"GetRequestOutcome", "CancelAcquire"} {
			r := pc.post(f, "raftlock.v1.LockService/"+method, fmt.Sprintf(`{"requestId":%q}`, rid), asA...)
			if r.status == 200 {
				if o, _ := r.body["outcome"].(map[string]any); o["keys"] != nil || o["ownerId"] != nil || o["fencingToken"] != nil {
					t.Fatalf("%s of %s with ta's token answered %s", method, rid, r.raw)
				}
				continue
			}
			if r.code() != "permission_denied" {
				t.Fatalf("%s of %s with ta's token: %d %s, want permission_denied or nothing", method, rid, r.status, r.raw)
			}
		}
	}
	testcluster.WaitFor(t, 10*time.Second, "every tb acquire to be queued, none withdrawn", func() bool {
		for k := range n {
			o := pc.outcome(leader, fmt.Sprintf("tb-%d", k), asB...)
			if o["state"] == "REQUEST_STATE_CANCELLED" {
				t.Fatalf("ta's token withdrew tb-%d", k)
			}
			if o["state"] != "REQUEST_STATE_PENDING" {
				return false
			}
		}
		return true
	})
}

// Issue 14 defect 4 (and issue 15): a follower's answer carries the whole
// result: CancelAcquire through a follower names the operation "acquire",
// as the leader's does.
func TestFollowerAnswerKeepsTheOperation(t *testing.T) {
	pc := startCluster(t, "")
	leader := pc.waitLeader()
	pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["k"],"ownerId":"holder"}`)
	go pc.tryPost(leader, "raftlock.v1.LockService/Acquire", `{"keys":["k"],"ownerId":"w","waitTimeout":"60s","requestId":"w-1"}`)
	testcluster.WaitFor(t, 10*time.Second, "w-1 to queue", func() bool { return pc.outcome(leader, "w-1")["state"] == "REQUEST_STATE_PENDING" })
	r := pc.post(pc.follower(), "raftlock.v1.LockService/CancelAcquire", `{"requestId":"w-1"}`)
	o, _ := r.body["outcome"].(map[string]any)
	if r.status != 200 || o["kind"] != "acquire" || o["state"] != "REQUEST_STATE_CANCELLED" {
		t.Fatalf("CancelAcquire through a follower: %d %s, want kind acquire, state cancelled", r.status, r.raw)
	}
}

// Issue 14, client mistakes and unclear answers: each gets a 4xx that says
// what is wrong, at once.
func TestCallerMistakesGetClearAnswers(t *testing.T) {
	pc := startCluster(t, "")
	leader := pc.waitLeader()
	base := "http://" + pc.addr(leader)
	for _, tc := range []struct {
		what, method, body, code, says string
	}{
		{"leadership to a non-member", "raftlock.v1.ClusterService/TransferLeadership", `{"id":"ghost"}`, "invalid_argument", `ghost\" is not a member`},
		{"a lone surrogate in a key", "raftlock.v1.LockService/Acquire", `{"keys":["\ud800"],"ownerId":"me"}`, "invalid_argument", "not valid UTF-8"},
		{"an absurd expire", "raftlock.v1.LockService/Acquire", `{"keys":["k"],"expire":"315576000000s"}`, "invalid_argument", "315576000000s is above the maximum of 168h0m0s"},
		{"an expire above the maximum", "raftlock.v1.LockService/Acquire", `{"keys":["k"],"expire":"608400s"}`, "invalid_argument", "at most 168h0m0s"},
	} {
		r := pc.post(leader, tc.method, tc.body)
		if r.code() != tc.code || !strings.Contains(r.raw, tc.says) {
			t.Errorf("%s: %d %s, want %s saying %q", tc.what, r.status, r.raw, tc.code, tc.says)
		}
	}
	// A GET whose base64 message does not decode.
	resp, err := http.Get(base + "/raftlock.v1.LockService/GetLock?encoding=proto&base64=1&message=!!!&connect=v1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "invalid_argument") || !strings.Contains(string(b), "base64") {
		t.Errorf("bad base64 GET: %d %s", resp.StatusCode, b)
	}
	// No Content-Type, and a wrong one: 415 naming what is accepted.
	for _, ct := range []string{"", "text/plain"} {
		req, _ := http.NewRequest(http.MethodPost, base+"/raftlock.v1.LockService/GetLock", strings.NewReader(`{"key":"k"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 415 || !strings.Contains(string(b), "application/json") {
			t.Errorf("Content-Type %q: %d %q, want 415 naming application/json", ct, resp.StatusCode, b)
		}
	}
	// A waitTimeout without requestId is accepted: the node picks the id
	// and says which (api/README.md).
	r := pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["free"],"ownerId":"me","waitTimeout":"1s"}`)
	if rid, _ := r.body["requestId"].(string); r.status != 200 || !strings.HasPrefix(rid, "srv-") {
		t.Errorf("waitTimeout without requestId: %d %s", r.status, r.raw)
	}
	// A gRPC message whose length prefix says 4 GiB is refused at once
	// (resource_exhausted), not read until the read timeout.
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, addr)
	}}
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/raftlock.v1.LockService/Acquire", pr)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	go func() { _, _ = pw.Write(append([]byte{0, 0xff, 0xff, 0xff, 0xff}, make([]byte, 1000)...)) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // the read timeout is 30 s
	defer cancel()
	resp, err = tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("4 GiB length prefix: %v (not answered before the read timeout?)", err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Trailer.Get("Grpc-Status"); got != "8" { // resource_exhausted
		t.Errorf("4 GiB length prefix: grpc-status %q (%s), want 8", got, resp.Trailer.Get("Grpc-Message"))
	}
}

// DESIGN.md section 8 (7) across a crash: the node serving a waiting
// acquire dies (kill -9) with its caller's connection, before the key is
// free. When that node starts again it withdraws every waiter of its
// previous run, so once the holder releases, the key is free instead of
// going to nobody. (A grant made while the node is still down is not
// released: it may, as far as the cluster can tell, have reached its
// caller; it ends when it expires.)
func TestCrashedNodesWaitersAreWithdrawnWhenItRestarts(t *testing.T) {
	pc := startCluster(t, "")
	leader := pc.waitLeader()
	if r := pc.post(leader, "raftlock.v1.LockService/Acquire", `{"keys":["crash"],"ownerId":"holder"}`); r.status != 200 {
		t.Fatalf("holder: %d %s", r.status, r.raw)
	}
	f := pc.follower()
	c, err := net.Dial("tcp", pc.addr(f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"keys":["crash"],"ownerId":"gone","waitTimeout":"60s","requestId":"crash-1"}`
	fmt.Fprintf(c, "POST /raftlock.v1.LockService/Acquire HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	testcluster.WaitFor(t, 10*time.Second, "the acquire to queue", func() bool {
		return pc.outcome(leader, "crash-1")["state"] == "REQUEST_STATE_PENDING"
	})
	if err := pc.c.Kill(f); err != nil {
		t.Fatal(err)
	}
	if err := pc.c.Restart(f); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 30*time.Second, "the restarted node to withdraw its previous run's waiter", func() bool {
		return pc.outcome(leader, "crash-1")["state"] == "REQUEST_STATE_CANCELLED"
	})
	pc.post(leader, "raftlock.v1.LockService/Release", `{"keys":["crash"],"ownerId":"holder"}`)
	if l := pc.lock(leader, "crash"); l != nil {
		t.Fatalf("after the release: %v, want the key free", l)
	}
}

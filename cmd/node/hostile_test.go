package main

// Hostile and careless callers against real node processes (issue 14):
// callers that give up, stalled handshakes, narrow tokens, floods.

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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
	ipMu.Lock()
	first := nextIP
	nextIP += 3
	ipMu.Unlock()
	addrs, err := testcluster.LoopbackAddrs(first, 3)
	if err != nil {
		t.Fatal(err)
	}
	opts := []testcluster.Option{testcluster.WithAddrs(addrs...), testcluster.WithArgs(extra...)}
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
		if os.Getenv(testcluster.BinaryEnv) != "" {
			return true // an older build has no cluster version
		}
		for i := range 3 {
			r := pc.tryPost(i, "raftlock.v1.ClusterService/Status", "{}")
			if v, _ := r.body["clusterVersion"].(float64); v != 2 {
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Flags not given on the command line come from RAFTLOCK_<NAME>; the
// command line wins.
func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("RAFTLOCK_DATA_DIR", "/from/env")
	t.Setenv("RAFTLOCK_INITIAL_CLUSTER", "n1=a:1")
	t.Setenv("RAFTLOCK_LISTEN", "ignored:1")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	dir := fs.String("data-dir", "data", "")
	ic := fs.String("initial-cluster", "", "")
	listen := fs.String("listen", "x", "")
	if err := parseWithEnv(fs, []string{"--listen", "cli:2"}); err != nil {
		t.Fatal(err)
	}
	if *dir != "/from/env" || *ic != "n1=a:1" || *listen != "cli:2" {
		t.Fatalf("data-dir=%q initial-cluster=%q listen=%q", *dir, *ic, *listen)
	}
	if err := parseWithEnv(fs, []string{"stray"}); err == nil {
		t.Fatal("a stray argument was accepted")
	}
}

// Bad configuration fails at start with an error naming the flag.
func TestBadConfigurationNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--listen", "0.0.0.0:0", "--data-dir", t.TempDir()}, "--advertise"},
		{[]string{"--initial-cluster", "n1=127.0.0.1:1,n2", "--data-dir", t.TempDir()}, "initial-cluster"},
		{[]string{"--initial-cluster", "n1=127.0.0.1:1", "--join", "x:1", "--listen", "127.0.0.1:1", "--data-dir", t.TempDir()}, "--join"},
		{[]string{"--log-format", "xml"}, "--log-format"},
	} {
		err := run(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("run(%q) = %v, want an error naming %s", tc.args, err, tc.flag)
		}
	}
}

// buildNode compiles the node binary once per test binary.
var nodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftlock-node-test")
	if err != nil {
		panic(err)
	}
	nodeBin = filepath.Join(dir, "node")
	if out, err := exec.Command("go", "build", "-o", nodeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build node: %v\n%s", err, out)
		os.Exit(1)
	}
	if b := os.Getenv("RAFTLOCK_TEST_NODE_BIN"); b != "" {
		nodeBin = b // run the process tests against another build (e.g. an older release)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a node process started by a test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  *bytes.Buffer
}

func startNode(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{log: new(bytes.Buffer)}
	for i, a := range args {
		if a == "--listen" {
			p.addr = args[i+1]
		}
	}
	p.cmd = exec.Command(nodeBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.addr, p.log)
		}
	})
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// call posts a Connect JSON request and decodes the JSON answer.
func call(t *testing.T, addr, method, body string) map[string]any {
	t.Helper()
	out, err := tryCall(addr, method, body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryCall(addr, method, body string) (map[string]any, error) {
	resp, err := http.Post("http://"+addr+"/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: decode: %w", method, err)
	}
	return out, nil
}

// readmeExample is a `$ curl` line of README.md and the output shown under
// it.
type readmeExample struct {
	cmd, want string
}

// readmeExamples returns the examples of README.md's shell blocks that
// talk to the default single node on 127.0.0.1:7070.
func readmeExamples(t *testing.T) []readmeExample {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []readmeExample
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = line == "```sh"
		case inBlock && strings.HasPrefix(line, "$ curl") && strings.Contains(line, "127.0.0.1:7070"):
			out = append(out, readmeExample{cmd: strings.TrimPrefix(line, "$ ")})
		case inBlock && len(out) > 0 && out[len(out)-1].want == "" && strings.HasPrefix(line, "{"):
			out[len(out)-1].want = line
		}
	}
	return out
}

// volatile fields differ from run to run; the test checks they are there.
var volatile = map[string]bool{"fencingToken": true, "requestId": true, "expiresIn": true}

// sameShape compares a README output with a real one: the same fields and
// values, except volatile fields, which only need to be present.
func sameShape(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || (!volatile[k] && !sameShape(wv, gv)) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameShape(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, got)
}

// The README's curl examples, run in order against a real node process,
// print what the README shows (up to tokens and ids).
func TestReadmeCurlExamples(t *testing.T) {
	examples := readmeExamples(t)
	if len(examples) < 3 {
		t.Fatalf("found %d curl examples in README.md, want at least 3", len(examples))
	}
	addr := freeAddr(t)
	startNode(t, "--listen", addr, "--data-dir", t.TempDir())
	waitFor(t, 15*time.Second, "the node to be ready", func() bool { return ready(addr) })
	for _, ex := range examples {
		cmd := strings.ReplaceAll(ex.cmd, "127.0.0.1:7070", addr)
		out, err := exec.Command("bash", "-c", cmd).Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		var want, got any
		if err := json.Unmarshal([]byte(ex.want), &want); err != nil {
			t.Fatalf("README output of %q is not JSON: %v", ex.cmd, err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s printed %q: %v", cmd, out, err)
		}
		if !sameShape(want, got) {
			t.Fatalf("%s\n got: %s\nwant: %s", ex.cmd, out, ex.want)
		}
	}
}

// Three real processes started with --initial-cluster: kill -9 the leader;
// another node reports itself leader; a lock taken before the kill is still
// held with its token; an Acquire by another owner fails with aborted and
// the exact message.
func TestThreeProcessesSurviveLeaderKill(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	peers := fmt.Sprintf("n1=%s,n2=%s,n3=%s", addrs[0], addrs[1], addrs[2])
	procs := map[string]*proc{}
	for i, a := range addrs {
		id := fmt.Sprintf("n%d", i+1)
		procs[id] = startNode(t, "--id", id, "--listen", a, "--data-dir", t.TempDir(), "--initial-cluster", peers)
	}
	var leaderID string
	waitFor(t, 20*time.Second, "a leader", func() bool {
		st, err := tryCall(addrs[0], "raftlock.v1.ClusterService/Status", "{}")
		leaderID, _ = st["leaderId"].(string)
		if err != nil {
			return false
		}
		return leaderID != "" && ready(addrs[0])
	})
	acq := call(t, addrs[0], "raftlock.v1.LockService/Acquire", `{"keys":["prod_123"],"ownerId":"me","expire":"60s"}`)
	token, _ := acq["fencingToken"].(string)
	if token == "" {
		t.Fatalf("acquire = %v", acq)
	}
	killed := time.Now()
	procs[leaderID].kill()
	var survivor string
	for _, a := range addrs {
		if a != procs[leaderID].addr {
			survivor = a
		}
	}
	var newLeader string
	waitFor(t, 20*time.Second, "a new leader", func() bool {
		st, err := tryCall(survivor, "raftlock.v1.ClusterService/Status", "{}")
		if err != nil {
			return false
		}
		newLeader, _ = st["leaderId"].(string)
		return newLeader != "" && newLeader != leaderID
	})
	t.Logf("leader %s killed; %s leads %s later", leaderID, newLeader, time.Since(killed).Round(time.Millisecond))
	got := call(t, survivor, "raftlock.v1.LockService/GetLock", `{"key":"prod_123"}`)
	lock, _ := got["lock"].(map[string]any)
	if lock["ownerId"] != "me" || lock["fencingToken"] != token {
		t.Fatalf("after the kill: %v, want owner me with token %s", got, token)
	}
	busy := call(t, survivor, "raftlock.v1.LockService/Acquire", `{"keys":["prod_123"],"ownerId":"you"}`)
	if busy["code"] != "aborted" || busy["message"] != `Failed to acquire lock for key "prod_123"` {
		t.Fatalf("acquire by another owner = %v", busy)
	}
}

// SIGTERM stops a node gracefully and it exits 0; restarted on the same
// data it still has its locks.
func TestSigtermAndRestart(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	p := startNode(t, "--listen", addr, "--data-dir", dir)
	waitFor(t, 15*time.Second, "ready", func() bool { return ready(addr) })
	acq := call(t, addr, "raftlock.v1.LockService/Acquire", `{"keys":["k"],"ownerId":"me"}`)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log)
		}
	case <-ctx.Done():
		t.Fatal("node did not exit after SIGTERM")
	}
	startNode(t, "--listen", addr, "--data-dir", dir)
	waitFor(t, 15*time.Second, "ready after restart", func() bool { return ready(addr) })
	got := call(t, addr, "raftlock.v1.LockService/GetLock", `{"key":"k"}`)
	if lock, _ := got["lock"].(map[string]any); lock["fencingToken"] != acq["fencingToken"] {
		t.Fatalf("after restart: %v, want token %v", got, acq["fencingToken"])
	}
}

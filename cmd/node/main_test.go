package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/internal/testcluster"
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
		{[]string{"--metrics-prefix-depth", "17", "--data-dir", t.TempDir()}, "--metrics-prefix-depth"},
		{[]string{"--metrics-prefix-depth", "-1", "--data-dir", t.TempDir()}, "--metrics-prefix-depth"},
		{[]string{"--metrics-max-prefixes", "20000", "--data-dir", t.TempDir()}, "--metrics-max-prefixes"},
		{[]string{"--metrics-busiest-keys", "-1", "--data-dir", t.TempDir()}, "--metrics-busiest-keys"},
		{[]string{"--metrics-prefix-separator", "::::::::::", "--data-dir", t.TempDir()}, "--metrics-prefix-separator"},
	} {
		err := run(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("run(%q) = %v, want an error naming %s", tc.args, err, tc.flag)
		}
	}
}

// TestMain removes the node binaries the tests built (testcluster.Binary,
// buildAt).
func TestMain(m *testing.M) {
	code := testcluster.Main(m)
	if oldBuilds.dir != "" {
		_ = os.RemoveAll(oldBuilds.dir)
	}
	os.Exit(code)
}

// call posts a Connect JSON request and decodes the JSON answer.
func call(t *testing.T, addr, method, body string) map[string]any {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: decode: %v", method, err)
	}
	return out
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
	c := testcluster.New(t, 1)
	c.Leader()
	addr := c.Addr(0)
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
	c := testcluster.New(t, 3)
	leader := c.Leader()
	acq := call(t, c.Addr(0), "raftlock.v1.LockService/Acquire", `{"keys":["prod_123"],"ownerId":"me","expire":"60s"}`)
	token, _ := acq["fencingToken"].(string)
	if token == "" {
		t.Fatalf("acquire = %v", acq)
	}
	killed := time.Now()
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	newLeader := c.Leader()
	if newLeader == leader {
		t.Fatalf("the killed node %s still leads", c.ID(leader))
	}
	t.Logf("leader %s killed; %s leads %s later", c.ID(leader), c.ID(newLeader), time.Since(killed).Round(time.Millisecond))
	survivor := c.Addr(c.Followers()[0])
	got := call(t, survivor, "raftlock.v1.LockService/GetLock", `{"key":"prod_123"}`)
	lock, _ := got["lock"].(map[string]any)
	if lock["ownerId"] != "me" || lock["fencingToken"] != token {
		t.Fatalf("after the kill: %v, want owner me with token %s", got, token)
	}
	busy := call(t, survivor, "raftlock.v1.LockService/Acquire", `{"keys":["prod_123"],"ownerId":"you"}`)
	if busy["code"] != "aborted" || busy["message"] != `Failed to acquire lock for key "prod_123"` {
		t.Fatalf("acquire by another owner = %v", busy)
	}
	c.EnsureSame()
}

// SIGTERM stops a node gracefully and it exits 0; restarted on the same
// data it still has its locks.
func TestSigtermAndRestart(t *testing.T) {
	c := testcluster.New(t, 1)
	c.Leader()
	acq := call(t, c.Addr(0), "raftlock.v1.LockService/Acquire", `{"keys":["k"],"ownerId":"me"}`)
	if err := c.Stop(0); err != nil {
		t.Fatalf("stop with SIGTERM: %v\n%s", err, c.Log(0, 16<<10))
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	c.Leader()
	got := call(t, c.Addr(0), "raftlock.v1.LockService/GetLock", `{"key":"k"}`)
	if lock, _ := got["lock"].(map[string]any); lock["fencingToken"] != acq["fencingToken"] {
		t.Fatalf("after restart: %v, want token %v", got, acq["fencingToken"])
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// buildLockctl builds the real binary into a temporary directory.
func buildLockctl(t *testing.T) string {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH of the tests.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "lockctl")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	code           int
	stdout, stderr string
}

// lockctl runs the binary with args and extra environment.
func lockctl(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run lockctl %v: %v", args, err)
	}
	return r
}

func testClient(t *testing.T, addrs []string) *client.Client {
	cl, err := client.New(addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// lockctl exec holds the lock while the command runs (the command itself
// sees it held, under its fencing token), passes the command's exit
// status through, and releases the lock afterwards.
func TestExecHoldsLockAndPassesExitCode(t *testing.T) {
	bin := buildLockctl(t)
	c := clustertest.New(t, 3)
	c.Leader()
	eps := strings.Join(c.Addrs(), ",")
	out := filepath.Join(t.TempDir(), "seen.json")
	script := `"$LOCKCTL" --json get job > "$OUT" && echo "$RAFTLOCK_FENCING_TOKEN" > "$OUT.token"; exit 7`
	r := lockctl(t, bin, []string{"RAFTLOCK_ENDPOINTS=" + eps, "LOCKCTL=" + bin, "OUT=" + out},
		"exec", "--owner", "nightly", "job", "--", "sh", "-c", script)
	if r.code != 7 {
		t.Fatalf("exit status %d, want the command's 7; stderr: %s", r.code, r.stderr)
	}
	var seen lockJSON
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &seen); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	token, _ := os.ReadFile(out + ".token")
	if !seen.Held || seen.Owner != "nightly" || strings.TrimSpace(string(token)) != strings.TrimSpace(jsonNumber(seen.Token)) {
		t.Fatalf("during the command the lock was %+v (token in env %q)", seen, token)
	}
	li, err := testClient(t, c.Addrs()).Get(t.Context(), "job")
	if err != nil || li != nil {
		t.Fatalf("after exec the key is %+v, %v; want free", li, err)
	}
	// A command that succeeds exits 0.
	if r := lockctl(t, bin, nil, "--endpoints", eps, "exec", "job", "--", "true"); r.code != 0 {
		t.Fatalf("exec true = %d: %s", r.code, r.stderr)
	}
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// When the lock is lost while the command runs (here taken away by an
// administrative force-release), lockctl stops the command and exits 3.
func TestExecStopsCommandWhenLockLost(t *testing.T) {
	bin := buildLockctl(t)
	c := clustertest.New(t, 1)
	c.Leader()
	cl := testClient(t, c.Addrs())
	ctx := t.Context()
	done := make(chan result, 1)
	go func() {
		done <- lockctl(t, bin, nil, "--endpoints", c.Addr(0), "exec", "--expire", "3s", "job", "--", "sleep", "60")
	}()
	c.WaitFor("the command to hold the lock", func() bool {
		li, err := cl.Get(ctx, "job")
		return err == nil && li != nil
	})
	if n, err := cl.ForceRelease(ctx, []string{"job"}); err != nil || n != 1 {
		t.Fatalf("force release = %d, %v", n, err)
	}
	select {
	case r := <-done:
		if r.code != exitLockLost || !strings.Contains(r.stderr, "lock lost") {
			t.Fatalf("exit status %d, want %d; stderr: %s", r.code, exitLockLost, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lockctl exec did not stop the command after the lock was lost")
	}
}

// The other commands, in human and JSON form, and their errors.
func TestCommands(t *testing.T) {
	bin := buildLockctl(t)
	c := clustertest.New(t, 3)
	leader := c.Leader()
	env := []string{"RAFTLOCK_ENDPOINTS=" + c.Addr(c.Followers()[0])}
	run := func(want int, args ...string) result {
		t.Helper()
		r := lockctl(t, bin, env, args...)
		if r.code != want {
			t.Fatalf("lockctl %v = %d, want %d\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
		}
		return r
	}

	r := run(0, "--json", "acquire", "--owner", "alice", "--expire", "1m", "a", "b")
	var acq struct {
		Keys  []string `json:"keys"`
		Owner string   `json:"owner"`
		Token uint64   `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &acq); err != nil || acq.Owner != "alice" || len(acq.Keys) != 2 || acq.Token == 0 {
		t.Fatalf("acquire json = %s (%v)", r.stdout, err)
	}
	r = run(1, "acquire", "--owner", "bob", "b")
	if !strings.Contains(r.stderr, `Failed to acquire lock for key "b"`) || r.stdout != "" {
		t.Fatalf("busy acquire: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = run(1, "acquire", "--owner", "bob", "--wait", "300ms", "b")
	if !strings.Contains(r.stderr, "Timed-out acquiring lock.") {
		t.Fatalf("timed-out acquire: stderr %q", r.stderr)
	}
	if r = run(0, "get", "a"); !strings.Contains(r.stdout, `held by "alice"`) {
		t.Fatalf("get: %s", r.stdout)
	}
	r = run(0, "--json", "list", "--owner", "alice")
	var locks []lockJSON
	if err := json.Unmarshal([]byte(r.stdout), &locks); err != nil || len(locks) != 2 || locks[0].Key != "a" || locks[0].Token != acq.Token {
		t.Fatalf("list = %s (%v)", r.stdout, err)
	}
	if r = run(0, "list"); !strings.Contains(r.stdout, "KEY") || !strings.Contains(r.stdout, `"alice"`) {
		t.Fatalf("list human: %s", r.stdout)
	}
	run(1, "release", "--owner", "bob", "a")
	run(1, "release", "--owner", "alice", "--fencing-token", "1", "a")
	run(0, "release", "--owner", "alice", "--fencing-token", jsonNumber(acq.Token), "a")
	if r = run(0, "--json", "get", "a"); !strings.Contains(r.stdout, `"held": false`) {
		t.Fatalf("get after release: %s", r.stdout)
	}
	if r = run(0, "release-all", "--owner", "alice"); !strings.Contains(r.stdout, "released 1 locks") {
		t.Fatalf("release-all: %s", r.stdout)
	}
	if r = run(0, "list"); !strings.Contains(r.stdout, "no locks") {
		t.Fatalf("list after release-all: %s", r.stdout)
	}

	// Cluster commands.
	r = run(0, "--endpoints", strings.Join(c.Addrs(), ","), "status")
	if !strings.Contains(r.stdout, "leader") || strings.Count(r.stdout, "\n") != 4 {
		t.Fatalf("status:\n%s", r.stdout)
	}
	r = run(0, "--json", "members")
	var members []client.Member
	if err := json.Unmarshal([]byte(r.stdout), &members); err != nil || len(members) != 3 {
		t.Fatalf("members = %s (%v)", r.stdout, err)
	}
	target := c.Followers()[0]
	if r = run(0, "transfer-leader", c.ID(target)); !strings.Contains(r.stdout, c.ID(target)) {
		t.Fatalf("transfer-leader: %s", r.stdout)
	}
	c.WaitFor("the new leader to take office", func() bool { return c.LeaderIndex() == target })
	run(0, "remove-member", c.ID(leader))
	c.WaitFor("two members", func() bool { return len(c.Node(target).Status().Members) == 2 })
	run(1, "remove-member", "nobody")
	run(0, "add-member", "--non-voter", "--supported-version", "2", "n9", "127.0.0.1:1")
	c.WaitFor("three members", func() bool { return len(c.Node(target).Status().Members) == 3 })
	run(0, "remove-member", "n9")

	// Usage errors exit 2.
	run(2, "frobnicate")
	run(2, "get")
	run(2, "exec", "k")
	run(2, "release", "--force", "--owner", "x", "k")
	run(0, "--help")
}

// Every command's flags live beside the global ones in one flag set: a
// command flag named like a global flag (release's fencing token was once
// --token, the global bearer token's name) panics at parse time. --help
// parses every command's flags without calling a node.
func TestEveryCommandParsesItsFlags(t *testing.T) {
	for name := range commands {
		var stdout, stderr bytes.Buffer
		if code := run([]string{name, "--help"}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "usage: lockctl "+name) {
			t.Errorf("lockctl %s --help: exit %d, stdout %q, stderr %q", name, code, stdout.String(), stderr.String())
		}
	}
}

// A bearer token is never sent in clear: --token without TLS is a usage
// error before anything is sent.
func TestTokenNeedsTLS(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--endpoints", "127.0.0.1:1", "--token", "rl_x", "status"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--token needs TLS") {
		t.Fatalf("lockctl --token without TLS: exit %d, stderr %q", code, stderr.String())
	}
}

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// The security flags reach the node from the environment, the way the
// compose file gives them: with RAFTLOCK_TLS_* and RAFTLOCK_AUTH_TOKENS the
// port speaks only TLS, `node healthcheck` (same environment) reaches it
// over https, a call without a token is refused as unauthenticated, a
// token works within its prefix and is refused outside it.
func TestTLSAndTokensFromEnvironment(t *testing.T) {
	const secret = "node-test-secret"
	c := testcluster.New(t, 1, testcluster.WithSecurityFromEnv(), testcluster.WithTokens(
		tokens.Token{Name: "app", SHA256: tokens.Hash(secret), Prefixes: []string{"app/"}, Verbs: []string{tokens.VerbAcquire, tokens.VerbRead}}))
	addr := c.Addr(0)

	testcluster.WaitFor(t, 20*time.Second, "node healthcheck (https from RAFTLOCK_TLS_*) to pass", func() bool {
		hc := exec.Command(c.Binary(0), "healthcheck", "--addr", addr)
		hc.Env = append(os.Environ(), c.Env(0)...)
		return hc.Run() == nil
	})

	trust, err := client.TLSFromFiles(filepath.Join(c.TLSDir(), "ca.crt"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: trust}}
	post := func(token, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", "https://"+addr+"/raftlock.v1.LockService/Acquire", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("acquire over TLS: %v", err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("acquire over TLS: status %d, decode: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, out
	}

	if code, out := post("", `{"keys":["app/x"],"ownerId":"me"}`); code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
		t.Fatalf("acquire without a token: %d %v, want 401 unauthenticated", code, out)
	}
	if code, out := post(secret, `{"keys":["app/x"],"ownerId":"me"}`); code != http.StatusOK || out["fencingToken"] == nil {
		t.Fatalf("acquire with the token: %d %v, want 200 with a fencing token", code, out)
	}
	if code, out := post(secret, `{"keys":["other/x"],"ownerId":"me"}`); code != http.StatusForbidden || out["code"] != "permission_denied" {
		t.Fatalf("acquire outside the token's prefix: %d %v, want 403 permission_denied", code, out)
	}
	// Plain text on the TLS port gets no API answer: the TLS layer tells
	// an HTTP client it spoke plain text to an HTTPS server.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post("http://"+addr+"/raftlock.v1.LockService/GetLock", "application/json", strings.NewReader(`{"key":"app/x"}`))
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS server") {
			t.Fatalf("a plain-text call to the TLS port answered %s %q", resp.Status, b)
		}
	}
}

// SIGHUP reloads the token file and the TLS files in place: a token added
// to the file works after it, the log says in one line per part what was
// reloaded, and a broken file is refused with the old tokens kept (and
// said so), without a restart.
func TestSIGHUPReloadsTokensAndTLS(t *testing.T) {
	const oldSecret, newSecret = "reload-old-secret", "reload-new-secret"
	app := tokens.Token{Name: "app", SHA256: tokens.Hash(oldSecret), Prefixes: []string{"app/"}, Verbs: []string{tokens.VerbRead}}
	c := testcluster.New(t, 1, testcluster.WithTokens(app))
	trust, err := client.TLSFromFiles(filepath.Join(c.TLSDir(), "ca.crt"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: trust}}
	status := func(token string) int {
		req, err := http.NewRequest("POST", "https://"+c.Addr(0)+"/raftlock.v1.LockService/GetLock", strings.NewReader(`{"key":"app/x"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	testcluster.WaitFor(t, 20*time.Second, "the old token to work", func() bool { return status(oldSecret) == http.StatusOK })
	if got := status(newSecret); got != http.StatusUnauthorized {
		t.Fatalf("a token not in the file yet answered %d, want 401", got)
	}
	count := func(line string) int { return strings.Count(c.Log(0, 1<<20), line) }

	// Add a token to the file (keeping the harness's own) and reload.
	var file tokens.File
	b, err := os.ReadFile(c.TokenFile())
	if err == nil {
		err = json.Unmarshal(b, &file)
	}
	if err != nil {
		t.Fatal(err)
	}
	file.Tokens = append(file.Tokens, tokens.Token{Name: "new", SHA256: tokens.Hash(newSecret), Prefixes: []string{"app/"}, Verbs: []string{tokens.VerbRead}})
	if b, err = json.Marshal(file); err == nil {
		err = os.WriteFile(c.TokenFile(), b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(0); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 20*time.Second, "the new token to work after SIGHUP", func() bool { return status(newSecret) == http.StatusOK })
	testcluster.WaitFor(t, 10*time.Second, "one log line per part reloaded", func() bool {
		return count("auth tokens reloaded") == 1 && count("TLS material reloaded") == 1
	})

	// A broken file: refused, the old tokens kept, and said so.
	if err := os.WriteFile(c.TokenFile(), []byte(`{"tokens": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(0); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "the refusal of the broken token file in the log", func() bool {
		return count("auth tokens not reloaded; keeping the old tokens") == 1
	})
	if got := status(newSecret); got != http.StatusOK {
		t.Fatalf("after a broken token file the kept token answered %d, want 200", got)
	}
	if got := count("TLS material reloaded"); got != 2 {
		t.Fatalf("TLS material reloaded %d times in the log, want 2 (one per SIGHUP)", got)
	}
}

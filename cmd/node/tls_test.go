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

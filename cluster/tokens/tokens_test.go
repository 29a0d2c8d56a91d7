package tokens_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/cluster/tokens"
)

// A secret is "rl_" and 48 hex digits, new each time; its entry stores
// only the hash, and the JSON names are the file format's.
func TestSecretAndEntry(t *testing.T) {
	a, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tokens.NewSecret()
	if !strings.HasPrefix(a, "rl_") || len(a) != 3+48 || a == b {
		t.Fatalf("secrets %q and %q, want two different rl_ + 48 hex digits", a, b)
	}
	// The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
	if got := tokens.Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", got)
	}
	line, err := json.Marshal(tokens.File{Tokens: []tokens.Token{{Name: "shop", SHA256: tokens.Hash(a), Verbs: []string{tokens.VerbAcquire}}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tokens":[{"name":"shop","sha256":"` + tokens.Hash(a) + `","verbs":["acquire"]}]}`; string(line) != want {
		t.Fatalf("file = %s, want %s", line, want)
	}
}

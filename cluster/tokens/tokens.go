// Package tokens is the format of a node's --auth-tokens file: the bearer
// tokens a node accepts, each stored as the SHA-256 of its secret with the
// verbs and key prefixes it allows. It is a package of its own so that
// tools (lockctl token, the test harnesses) write entries with the node's
// own types without linking the server; package cluster reads the file
// and enforces it.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// Verbs a token may be allowed.
const (
	// VerbAcquire: Acquire, Release, ReleaseAll, Refresh, CancelAcquire.
	VerbAcquire = "acquire"
	// VerbRead: GetLock, CheckFence, ListLocks, GetRequestOutcome, Status.
	VerbRead = "read"
	// VerbAdmin: ForceRelease, AddMember, RemoveMember, TransferLeadership,
	// Snapshot, Restore.
	VerbAdmin = "admin"
)

// File is the format of --auth-tokens: tokens are stored only as the hex
// SHA-256 of the secret.
//
//	{"tokens": [
//	  {"name": "tenant-a", "sha256": "9f86d0...", "prefixes": ["tenant-a/"], "verbs": ["acquire", "read"]},
//	  {"name": "ops", "sha256": "60303a...", "verbs": ["acquire", "read", "admin"]}
//	]}
//
// A token without prefixes may touch every key.
type File struct {
	Tokens []Token `json:"tokens"`
}

// Token is one entry of a File.
type Token struct {
	Name     string   `json:"name"`
	SHA256   string   `json:"sha256"`
	Prefixes []string `json:"prefixes,omitempty"`
	Verbs    []string `json:"verbs"`
}

// Hash returns the hex SHA-256 of a secret token, as a File stores it.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a new random secret: "rl_" and 192 random bits in hex.
// That much randomness is why an unsalted hash is enough to store it.
func NewSecret() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "rl_" + hex.EncodeToString(b[:]), nil
}

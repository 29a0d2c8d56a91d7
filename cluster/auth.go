package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/fsm"
)

// Verbs a token may be allowed (package tokens defines them).
const (
	// VerbAcquire: Acquire, Release, ReleaseAll, Refresh, CancelAcquire.
	VerbAcquire = tokens.VerbAcquire
	// VerbRead: GetLock, CheckFence, ListLocks, GetRequestOutcome, Status.
	VerbRead = tokens.VerbRead
	// VerbAdmin: ForceRelease, AddMember, RemoveMember, TransferLeadership,
	// Snapshot, Restore (streams, checked by their handlers: requireAdmin).
	VerbAdmin = tokens.VerbAdmin
)

// TokenFile is the format of --auth-tokens, defined in package tokens so
// that tools can write it without linking the server.
type TokenFile = tokens.File

// Token is one entry of a TokenFile.
type Token = tokens.Token

// HashToken returns the hex SHA-256 of a secret token, as a TokenFile
// stores it.
func HashToken(secret string) string { return tokens.Hash(secret) }

// principal is who is calling.
type principal struct {
	name     string
	prefixes []string // empty: every key
	verbs    []string
	node     bool // another node (node certificate): may do anything
}

func (p *principal) can(verb string) bool { return p.node || slices.Contains(p.verbs, verb) }

// mayTouch reports whether the principal may act on key.
func (p *principal) mayTouch(key string) bool {
	if p.node || len(p.prefixes) == 0 {
		return true
	}
	return slices.ContainsFunc(p.prefixes, func(pre string) bool { return strings.HasPrefix(key, pre) })
}

// authorizer holds the loaded tokens by hash.
type authorizer struct {
	path   string
	byHash atomic.Pointer[map[string]*principal]
}

func newAuthorizer(path string) (*authorizer, error) {
	a := &authorizer{path: path}
	return a, a.reload()
}

func (a *authorizer) reload() error {
	b, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("--auth-tokens: %w", err)
	}
	var f TokenFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("--auth-tokens %s: %w", a.path, err)
	}
	m := map[string]*principal{}
	for i, t := range f.Tokens {
		if t.Name == "" {
			return fmt.Errorf("--auth-tokens %s: tokens[%d]: name is empty", a.path, i)
		}
		if len(t.SHA256) != 64 {
			return fmt.Errorf("--auth-tokens %s: tokens[%d] (%s): sha256 must be 64 hex digits", a.path, i, t.Name)
		}
		if _, err := hex.DecodeString(t.SHA256); err != nil {
			return fmt.Errorf("--auth-tokens %s: tokens[%d] (%s): sha256: %v", a.path, i, t.Name, err)
		}
		for _, v := range t.Verbs {
			if v != VerbAcquire && v != VerbRead && v != VerbAdmin {
				return fmt.Errorf("--auth-tokens %s: tokens[%d] (%s): unknown verb %q (acquire, read, admin)", a.path, i, t.Name, v)
			}
		}
		for j, p := range t.Prefixes {
			if err := fsm.ValidateKey(p); err != nil {
				return fmt.Errorf("--auth-tokens %s: tokens[%d] (%s): prefixes[%d]: %v", a.path, i, t.Name, j, err)
			}
		}
		m[strings.ToLower(t.SHA256)] = &principal{name: t.Name, prefixes: t.Prefixes, verbs: t.Verbs}
	}
	a.byHash.Store(&m)
	return nil
}

type principalKey struct{}

// withPrincipal finds who calls (a node certificate, or a bearer token) and
// puts it in the request context. Unknown callers get no principal; the
// interceptor refuses them.
func (n *Node) withPrincipal(h http.Handler) http.Handler {
	if n.auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *principal
		if n.tls != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && n.tls.isPeerState(r.TLS) {
			p = &principal{name: "node:" + r.TLS.PeerCertificates[0].Subject.CommonName, node: true}
		} else if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			p = (*n.auth.byHash.Load())[HashToken(strings.TrimSpace(tok))]
		}
		if p != nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		h.ServeHTTP(w, r)
	})
}

// authInterceptor enforces verbs and key prefixes on every API call.
func (n *Node) authInterceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			p, _ := ctx.Value(principalKey{}).(*principal)
			if p == nil {
				return nil, ErrUnauthenticated
			}
			if err := p.authorize(req.Any()); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}
	}
}

// authorize decides whether p may make the call msg, as far as the request
// itself tells: verbs, and the keys it names. Calls that name a request id
// (CancelAcquire, GetRequestOutcome) are checked again by their handlers
// on the state the answer comes from; ReleaseAll is limited to the token's
// prefixes by the lock table.
func (p *principal) authorize(msg any) error {
	deny := func(format string, args ...any) error {
		return fmt.Errorf("%w: token %q %s", ErrPermissionDenied, p.name, fmt.Sprintf(format, args...))
	}
	need := func(verb string, keys ...string) error {
		if !p.can(verb) {
			return deny("may not %s", verb)
		}
		for _, k := range keys {
			if !p.mayTouch(k) {
				return deny("may not touch key %q", k)
			}
		}
		return nil
	}
	switch m := msg.(type) {
	case *raftlockv1.AcquireRequest:
		return need(VerbAcquire, m.Keys...)
	case *raftlockv1.ReleaseRequest:
		return need(VerbAcquire, m.Keys...)
	case *raftlockv1.RefreshRequest:
		return need(VerbAcquire, m.Keys...)
	case *raftlockv1.ReleaseAllRequest:
		return need(VerbAcquire) // limited to the token's prefixes by the handler
	case *raftlockv1.CancelAcquireRequest:
		return need(VerbAcquire)
	case *raftlockv1.GetLockRequest:
		return need(VerbRead, m.Key)
	case *raftlockv1.CheckFenceRequest:
		return need(VerbRead, m.Key)
	case *raftlockv1.ListLocksRequest:
		if err := need(VerbRead); err != nil {
			return err
		}
		if !p.node && len(p.prefixes) > 0 && !p.mayTouch(m.Prefix) {
			return deny("may list only under the prefixes %q", p.prefixes)
		}
		return nil
	case *raftlockv1.WatchRequest: // a stream: Watch calls authorizeWatch, which comes here
		if m.Key != "" {
			return need(VerbRead, m.Key)
		}
		if err := need(VerbRead); err != nil {
			return err
		}
		if !p.mayTouch(m.Prefix) {
			return deny("may watch only under the prefixes %q", p.prefixes)
		}
		return nil
	case *raftlockv1.GetRequestOutcomeRequest:
		return need(VerbRead)
	case *raftlockv1.StatusRequest:
		return need(VerbRead)
	case *raftlockv1.ForceReleaseRequest:
		return need(VerbAdmin, m.Keys...)
	case *raftlockv1.AddMemberRequest, *raftlockv1.RemoveMemberRequest, *raftlockv1.TransferLeadershipRequest:
		return need(VerbAdmin)
	}
	return deny("may not call this method")
}

// callerPrefixes returns the key prefixes the caller in ctx is limited to,
// or nil when it may touch every key.
func callerPrefixes(ctx context.Context) []string {
	if p, _ := ctx.Value(principalKey{}).(*principal); p != nil && !p.node && len(p.prefixes) > 0 {
		return p.prefixes
	}
	return nil
}

// keysWithin reports whether every key starts with one of the prefixes
// (nil prefixes: any key).
func keysWithin(keys, prefixes []string) bool {
	if prefixes == nil {
		return true
	}
	for _, k := range keys {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			return false
		}
	}
	return true
}

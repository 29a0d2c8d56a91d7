package fence

import (
	"fmt"
	"sync"
)

// Guard remembers, per resource, the highest fencing token it has
// accepted, and refuses lower ones. It is safe for concurrent use; the
// zero value is ready.
//
// Memory: one entry per distinct resource name, kept for the Guard's
// life (an entry cannot be dropped safely while an older holder may still
// write; Forget is for resources that are gone). The state is in memory
// only: a restarted process starts with no memory of tokens, so a Guard
// suits resources that live and die with the process. Data that outlives
// the process keeps its token beside it (Rows).
type Guard struct {
	mu  sync.Mutex
	res map[string]*entry
}

type entry struct {
	mu      sync.Mutex // held while a Do runs
	highest uint64
}

func (g *Guard) entry(resource string) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.res == nil {
		g.res = map[string]*entry{}
	}
	e := g.res[resource]
	if e == nil {
		e = &entry{}
		g.res[resource] = e
	}
	return e
}

// Do runs fn if token is not lower than the highest token accepted for
// resource, after recording token as the highest. Calls for one resource
// run one at a time, so no higher token can be accepted between the check
// and fn's write: the check and the write are one step. It returns fn's
// error, or an error wrapping ErrFenced (fn not run) or ErrNoToken.
func (g *Guard) Do(resource string, token uint64, fn func() error) error {
	if token == 0 {
		return fmt.Errorf("resource %q: %w", resource, ErrNoToken)
	}
	e := g.entry(resource)
	e.mu.Lock()
	defer e.mu.Unlock()
	if token < e.highest {
		return fmt.Errorf("%w: token %d is lower than %d, already accepted for %q", ErrFenced, token, e.highest, resource)
	}
	e.highest = token
	return fn()
}

// Check accepts token for resource (recording it as the highest) or
// refuses it, like Do with nothing to run. Use Do when the write follows:
// between Check and a separate write a newer holder may be accepted.
func (g *Guard) Check(resource string, token uint64) error {
	return g.Do(resource, token, func() error { return nil })
}

// Highest returns the highest token accepted for resource (0: none).
func (g *Guard) Highest(resource string) uint64 {
	g.mu.Lock()
	e := g.res[resource]
	g.mu.Unlock()
	if e == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.highest
}

// Forget drops what the Guard remembers of resource. Only for a resource
// that no longer exists: afterwards any token is accepted for that name.
func (g *Guard) Forget(resource string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.res, resource)
}

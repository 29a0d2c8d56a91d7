package testcluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// State is one replica's lock table: the Raft index of the last command it
// applied and a hash of the table's state (cluster.Node.TableHash, or
// /debug/state of a node process).
type State struct {
	Index uint64
	Hash  string
}

// samePoll is how often WaitSame samples the replicas.
const samePoll = 20 * time.Millisecond

// WaitSame samples the replicas with fetch (replica name → state) until
// every one reports the same index, then compares their hashes. The
// leader keeps proposing ticks, so a sample may catch replicas a tick
// apart; it samples again. It returns a one-line summary when the hashes
// agree, an error wrapping ErrDiverged naming the replicas of each hash
// when they do not, and one wrapping ErrNoCommonIndex with the last sample
// when ctx ends first.
func WaitSame(ctx context.Context, fetch func(context.Context) (map[string]State, error)) (string, error) {
	last := "no sample yet"
	for {
		states, err := fetch(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case len(states) == 0:
			last = "no replica to compare"
		default:
			if summary, index, diverged := compare(states); index {
				if diverged {
					return "", fmt.Errorf("%w: %s", ErrDiverged, summary)
				}
				return summary, nil
			}
			last = "replicas at different indexes: " + describe(states)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %s", ErrNoCommonIndex, last)
		case <-time.After(samePoll):
		}
	}
}

// compare reports whether every state is at one index and, if so, whether
// their hashes differ.
func compare(states map[string]State) (summary string, oneIndex, diverged bool) {
	var index uint64
	first := true
	for _, s := range states {
		if !first && s.Index != index {
			return "", false, false
		}
		index, first = s.Index, false
	}
	byHash := map[string][]string{}
	for name, s := range states {
		byHash[s.Hash] = append(byHash[s.Hash], name)
	}
	if len(byHash) == 1 {
		return fmt.Sprintf("all %d replicas have the same state hash at index %d", len(states), index), true, false
	}
	var parts []string
	for _, h := range slices.Sorted(maps.Keys(byHash)) {
		slices.Sort(byHash[h])
		parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(byHash[h], ","), h))
	}
	return fmt.Sprintf("replicas at index %d have different state hashes: %s", index, strings.Join(parts, "; ")), true, true
}

func describe(states map[string]State) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(states)) {
		parts = append(parts, fmt.Sprintf("%s@%d", name, states[name].Index))
	}
	return strings.Join(parts, " ")
}

// States fetches /debug/state of every running node that is a member in
// the leader's configuration (a node removed from the cluster stops
// applying, and is no replica any more).
func (c *Cluster) States(ctx context.Context) (map[string]State, error) {
	l, err := c.FindLeader(ctx)
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx, l)
	if err != nil {
		return nil, err
	}
	members := map[string]bool{}
	for _, m := range st.Members {
		members[m.Id] = true
	}
	out := map[string]State{}
	for _, i := range c.RunningNodes() {
		if !members[c.ID(i)] {
			continue
		}
		ds, err := c.State(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.ID(i), err)
		}
		out[c.ID(i)] = State{Index: ds.Index, Hash: ds.Hash}
	}
	return out, nil
}

// SameState waits until the replicas (States) are at one index and
// compares their table hashes (see WaitSame). The nodes need Config.Debug.
func (c *Cluster) SameState(ctx context.Context) (string, error) {
	return WaitSame(ctx, c.States)
}

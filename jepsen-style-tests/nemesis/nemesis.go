// Package nemesis injects the faults of the fault suite: process crashes,
// pauses, network partitions (also one-way and leader-isolating), slow and
// lossy links, clock faults, and cut-off clients. Each nemesis starts a
// fault and returns how to heal it; the runner schedules them from a seed.
package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Cluster is what nemeses act on: a process cluster or a Docker cluster.
type Cluster interface {
	Size() int
	Running(i int) bool
	Kill(i int) error
	Restart(i int) error
	Pause(i int) error
	Resume(i int) error
	// SetClock offsets node i's wall clock and sets its monotonic rate.
	SetClock(ctx context.Context, i int, offset time.Duration, rate float64) error
	// Leader returns the index of the agreed leader.
	Leader(ctx context.Context) (int, error)
}

// Network cuts and degrades links between addresses.
type Network interface {
	// Cut drops everything both ways between each a and each b.
	Cut(ctx context.Context, as, bs []string) error
	// Drop drops packets from src to dst with probability p (1: all).
	Drop(ctx context.Context, src, dst string, p float64) error
	// Slow rate-limits the links between each pair, both ways.
	Slow(ctx context.Context, pairs [][2]string, rate string) error
	// Heal removes every network fault.
	Heal(ctx context.Context) error
}

// Env is everything a nemesis may use.
type Env struct {
	Cluster Cluster
	// Net is nil when network faults cannot be injected here.
	Net Network
	// NodeAddrs are the addresses network faults are aimed at, per node
	// (IPs for the process cluster, container IPs for Docker).
	NodeAddrs []string
	// ClientAddrs are the source addresses of the workload's clients.
	ClientAddrs []string
	// Rand is seeded by the run's seed.
	Rand *rand.Rand
}

// Heal undoes a fault.
type Heal func(ctx context.Context) error

// Nemesis is one kind of fault.
type Nemesis struct {
	// Name is how schedules, reports and CHAOS_NEMESES name it.
	Name string
	// Needs names what the nemesis requires beyond process control:
	// "network" (Env.Net), "shaping" (Network.Slow) or "clock" (a node
	// clock under control). Empty: nothing.
	Needs string
	// Start injects the fault and returns a description and its heal.
	Start func(ctx context.Context, env *Env) (string, Heal, error)
}

// All returns every nemesis, in the order a CI profile cycles through them.
func All() []Nemesis {
	return []Nemesis{
		{Name: "kill-leader", Start: killLeader},
		{Name: "partition-isolate-leader", Needs: "network", Start: isolateLeader},
		{Name: "pause-leader", Start: pauseLeader},
		{Name: "clock-jump", Needs: "clock", Start: clockJump},
		{Name: "kill-one", Start: killOne},
		{Name: "partition-majority-minority", Needs: "network", Start: majorityMinority},
		{Name: "pause-follower", Start: pauseFollower},
		{Name: "clients-cut", Needs: "network", Start: clientsCut},
		{Name: "partition-bridge", Needs: "network", Start: bridge},
		{Name: "clock-skew", Needs: "clock", Start: clockSkew},
		{Name: "partition-one-way", Needs: "network", Start: oneWay},
		{Name: "kill-all", Start: killAll},
		{Name: "lossy-link", Needs: "network", Start: lossy},
		{Name: "slow-link", Needs: "shaping", Start: slow},
	}
}

// Select returns the nemeses named in a comma-separated list ("all" or
// empty: every one).
func Select(names string) ([]Nemesis, error) {
	all := All()
	if names == "" || names == "all" {
		return all, nil
	}
	var out []Nemesis
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(all, func(n Nemesis) bool { return n.Name == strings.TrimSpace(name) })
		if i < 0 {
			var known []string
			for _, n := range all {
				known = append(known, n.Name)
			}
			return nil, fmt.Errorf("unknown nemesis %q (known: %s)", name, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func leader(ctx context.Context, env *Env) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		l, err := env.Cluster.Leader(ctx)
		if err == nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("find the leader: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func others(env *Env, except ...int) []int {
	var out []int
	for i := range env.Cluster.Size() {
		if !slices.Contains(except, i) {
			out = append(out, i)
		}
	}
	return out
}

func addrs(env *Env, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, env.NodeAddrs[i])
	}
	return out
}

func ids(idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, fmt.Sprintf("n%d", i+1))
	}
	return strings.Join(s, ",")
}

func killNodes(env *Env, idx []int) (Heal, error) {
	for _, i := range idx {
		if err := env.Cluster.Kill(i); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		var errs []error
		for _, i := range idx {
			errs = append(errs, env.Cluster.Restart(i))
		}
		return errors.Join(errs...)
	}, nil
}

func killLeader(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	h, err := killNodes(env, []int{l})
	return "kill -9 leader " + ids([]int{l}), h, err
}

func killOne(ctx context.Context, env *Env) (string, Heal, error) {
	i := env.Rand.IntN(env.Cluster.Size())
	h, err := killNodes(env, []int{i})
	return "kill -9 " + ids([]int{i}), h, err
}

func killAll(ctx context.Context, env *Env) (string, Heal, error) {
	all := others(env)
	h, err := killNodes(env, all)
	return "kill -9 every node", h, err
}

func pauseNode(env *Env, i int) (Heal, error) {
	if err := env.Cluster.Pause(i); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return env.Cluster.Resume(i) }, nil
}

func pauseLeader(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	h, err := pauseNode(env, l)
	return "SIGSTOP leader " + ids([]int{l}), h, err
}

func pauseFollower(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	f := others(env, l)
	i := f[env.Rand.IntN(len(f))]
	h, err := pauseNode(env, i)
	return "SIGSTOP follower " + ids([]int{i}), h, err
}

func cut(ctx context.Context, env *Env, a, b []int) (Heal, error) {
	if err := env.Net.Cut(ctx, addrs(env, a), addrs(env, b)); err != nil {
		return nil, err
	}
	return env.Net.Heal, nil
}

func isolateLeader(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	rest := others(env, l)
	h, err := cut(ctx, env, []int{l}, rest)
	return fmt.Sprintf("isolate leader %s from %s", ids([]int{l}), ids(rest)), h, err
}

func majorityMinority(ctx context.Context, env *Env) (string, Heal, error) {
	n := env.Cluster.Size()
	perm := env.Rand.Perm(n)
	minority := perm[:(n-1)/2]
	majority := perm[(n-1)/2:]
	slices.Sort(minority)
	slices.Sort(majority)
	h, err := cut(ctx, env, minority, majority)
	return fmt.Sprintf("partition %s | %s", ids(minority), ids(majority)), h, err
}

// bridge: two halves that do not see each other, and one node that sees
// both.
func bridge(ctx context.Context, env *Env) (string, Heal, error) {
	n := env.Cluster.Size()
	perm := env.Rand.Perm(n)
	mid := perm[0]
	left, right := perm[1:1+(n-1)/2], perm[1+(n-1)/2:]
	h, err := cut(ctx, env, left, right)
	return fmt.Sprintf("bridge %s | %s | %s", ids(left), ids([]int{mid}), ids(right)), h, err
}

// oneWay drops the leader's packets to everyone else, but not theirs to
// it: the leader hears its followers but cannot be heard.
func oneWay(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	for _, o := range others(env, l) {
		if err := env.Net.Drop(ctx, env.NodeAddrs[l], env.NodeAddrs[o], 1); err != nil {
			return "", nil, err
		}
	}
	return fmt.Sprintf("drop packets from leader %s to the others (one way)", ids([]int{l})), env.Net.Heal, nil
}

func lossy(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	for _, o := range others(env, l) {
		for _, d := range [][2]string{{env.NodeAddrs[l], env.NodeAddrs[o]}, {env.NodeAddrs[o], env.NodeAddrs[l]}} {
			if err := env.Net.Drop(ctx, d[0], d[1], 0.2); err != nil {
				return "", nil, err
			}
		}
	}
	return fmt.Sprintf("lose 20%% of packets between leader %s and the others", ids([]int{l})), env.Net.Heal, nil
}

func slow(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	var pairs [][2]string
	for _, o := range others(env, l) {
		pairs = append(pairs, [2]string{env.NodeAddrs[l], env.NodeAddrs[o]})
	}
	if err := env.Net.Slow(ctx, pairs, "400kbit"); err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("limit the links of leader %s to 400kbit/s", ids([]int{l})), env.Net.Heal, nil
}

func clientsCut(ctx context.Context, env *Env) (string, Heal, error) {
	if len(env.ClientAddrs) == 0 {
		return "", nil, fmt.Errorf("%w: clients have no addresses of their own", ErrUnsupported)
	}
	perm := env.Rand.Perm(len(env.ClientAddrs))
	var victims []string
	for _, i := range perm[:max(1, len(perm)/3)] {
		victims = append(victims, env.ClientAddrs[i])
	}
	slices.Sort(victims)
	if err := env.Net.Cut(ctx, victims, env.NodeAddrs); err != nil {
		return "", nil, err
	}
	return "cut clients " + strings.Join(victims, ",") + " off every node", env.Net.Heal, nil
}

// clockJump moves the wall clocks of a minority, the leader among them,
// by minutes to hours: the leader's forward, the others' either way.
// Cluster time must not notice.
func clockJump(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	n := env.Cluster.Size()
	minority := []int{l}
	for _, i := range env.Rand.Perm(n) {
		if len(minority) < (n-1)/2 && i != l {
			minority = append(minority, i)
		}
	}
	var desc []string
	for _, i := range minority {
		off := time.Duration(env.Rand.IntN(7200)+60) * time.Second
		if i != l && env.Rand.IntN(2) == 0 {
			off = -off
		}
		if err := env.Cluster.SetClock(ctx, i, off, 1); err != nil {
			return "", nil, err
		}
		desc = append(desc, fmt.Sprintf("n%d %+v", i+1, off))
	}
	return "wall clock jumps: " + strings.Join(desc, ", "), resetClocks(env, minority), nil
}

// MaxClockSkew is the largest monotonic clock rate error clock-skew
// injects (1%). Cluster time follows the leader's monotonic clock, so a
// fast leader ends leases early by up to this fraction: clients must keep a
// safety margin above it, and the checkers allow for it. Wall-clock jumps
// (clock-jump) are not bounded: nothing reads the wall clock.
const MaxClockSkew = 0.01

// clockSkew makes the leader's monotonic clock run up to MaxClockSkew fast
// or slow.
func clockSkew(ctx context.Context, env *Env) (string, Heal, error) {
	l, err := leader(ctx, env)
	if err != nil {
		return "", nil, err
	}
	rate := 1 + (env.Rand.Float64()*2-1)*MaxClockSkew
	if err := env.Cluster.SetClock(ctx, l, 0, rate); err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("leader %s monotonic clock rate %.4f", ids([]int{l}), rate), resetClocks(env, []int{l}), nil
}

func resetClocks(env *Env, idx []int) Heal {
	return func(ctx context.Context) error {
		var errs []error
		for _, i := range idx {
			if env.Cluster.Running(i) {
				errs = append(errs, env.Cluster.SetClock(ctx, i, 0, 1))
			}
		}
		return errors.Join(errs...)
	}
}

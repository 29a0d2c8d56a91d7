package nemesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
)

// ErrUnsupported: this machine cannot inject a kind of fault (no root, no
// iptables, a kernel without the traffic-control module, ...). The suite
// reports which nemeses it skipped and why, and runs the others.
var ErrUnsupported = errors.New("fault not supported here")

// chain is the iptables chain all network faults live in, hooked into
// INPUT (on loopback every packet passes INPUT on arrival), so healing is
// flushing one chain.
const chain = "RAFTLOCK-CHAOS"

// Firewall cuts and degrades links between IPs with iptables and tc, in the
// host's network namespace or in another one (a container's).
type Firewall struct {
	mu        sync.Mutex
	installed bool
	shaping   bool
	dev       string
	prefix    []string // run commands through this (nsenter into a namespace)
}

// NewFirewall returns a firewall for traffic on dev (lo for the process
// cluster).
func NewFirewall(dev string) *Firewall { return &Firewall{dev: dev} }

// NewFirewallIn returns a firewall for traffic on dev in the network
// namespace of process pid (a container's), driven with nsenter and the
// host's iptables and tc.
func NewFirewallIn(pid int, dev string) *Firewall {
	return &Firewall{dev: dev, prefix: []string{"nsenter", "-t", fmt.Sprint(pid), "-n"}}
}

func (f *Firewall) run(ctx context.Context, name string, args ...string) error {
	if len(f.prefix) > 0 {
		return run(ctx, f.prefix[0], slices.Concat(f.prefix[1:], []string{name}, args)...)
	}
	return run(ctx, name, args...)
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// CanFirewall reports whether iptables can be used here, and if not why.
func CanFirewall(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: iptables needs root", ErrUnsupported)
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return fmt.Errorf("%w: iptables is not installed (apt-get install iptables)", ErrUnsupported)
	}
	if err := run(ctx, "iptables", "-w", "-L", "INPUT", "-n"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return nil
}

// CanShape reports whether tc can rate-limit a link here (htb and u32).
func CanShape(ctx context.Context, dev string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: tc needs root", ErrUnsupported)
	}
	if _, err := exec.LookPath("tc"); err != nil {
		return fmt.Errorf("%w: tc is not installed (apt-get install iproute2)", ErrUnsupported)
	}
	probe := "1fff:"
	if err := run(ctx, "tc", "qdisc", "add", "dev", dev, "root", "handle", probe, "htb"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return run(ctx, "tc", "qdisc", "del", "dev", dev, "root")
}

func (f *Firewall) install(ctx context.Context) error {
	if f.installed {
		return nil
	}
	_ = f.run(ctx, "iptables", "-w", "-D", "INPUT", "-j", chain) // left over from a crashed run
	_ = f.run(ctx, "iptables", "-w", "-F", chain)
	_ = f.run(ctx, "iptables", "-w", "-X", chain)
	if err := f.run(ctx, "iptables", "-w", "-N", chain); err != nil {
		return err
	}
	if err := f.run(ctx, "iptables", "-w", "-I", "INPUT", "-j", chain); err != nil {
		return err
	}
	f.installed = true
	return nil
}

// Drop drops packets from src to dst (one way); with probability p < 1
// only that fraction of them (a lossy link).
func (f *Firewall) Drop(ctx context.Context, src, dst string, p float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.install(ctx); err != nil {
		return err
	}
	args := []string{"-w", "-A", chain, "-s", src, "-d", dst}
	if p < 1 {
		args = append(args, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.3f", p))
	}
	return f.run(ctx, "iptables", append(args, "-j", "DROP")...)
}

// Cut drops everything both ways between every a in as and every b in bs.
func (f *Firewall) Cut(ctx context.Context, as, bs []string) error {
	for _, a := range as {
		for _, b := range bs {
			if err := f.Drop(ctx, a, b, 1); err != nil {
				return err
			}
			if err := f.Drop(ctx, b, a, 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Slow limits traffic from each src to each dst (both ways) to rate
// (a tc rate such as "256kbit"), so packets queue: a slow link.
func (f *Firewall) Slow(ctx context.Context, pairs [][2]string, rate string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.shaping {
		if err := f.run(ctx, "tc", "qdisc", "add", "dev", f.dev, "root", "handle", "1:", "htb", "default", "10", "r2q", "100000"); err != nil {
			return err
		}
		f.shaping = true
		if err := f.run(ctx, "tc", "class", "add", "dev", f.dev, "parent", "1:", "classid", "1:10", "htb", "rate", "100gbit"); err != nil {
			return err
		}
		if err := f.run(ctx, "tc", "class", "add", "dev", f.dev, "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate); err != nil {
			return err
		}
	}
	for _, p := range pairs {
		for _, dir := range [][2]string{p, {p[1], p[0]}} {
			if err := f.run(ctx, "tc", "filter", "add", "dev", f.dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
				"match", "ip", "src", dir[0]+"/32", "match", "ip", "dst", dir[1]+"/32", "flowid", "1:20"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Heal removes every rule and shaping this firewall added.
func (f *Firewall) Heal(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	if f.installed {
		if err := f.run(ctx, "iptables", "-w", "-F", chain); err != nil {
			errs = append(errs, err)
		}
	}
	if f.shaping {
		if err := f.run(ctx, "tc", "qdisc", "del", "dev", f.dev, "root"); err != nil {
			errs = append(errs, err)
		}
		f.shaping = false
	}
	return errors.Join(errs...)
}

// Close heals and removes the chain.
func (f *Firewall) Close(ctx context.Context) error {
	err := f.Heal(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.installed {
		_ = f.run(ctx, "iptables", "-w", "-D", "INPUT", "-j", chain)
		_ = f.run(ctx, "iptables", "-w", "-X", chain)
		f.installed = false
	}
	return err
}

// CanShape reports whether this firewall's device can be rate-limited.
func (f *Firewall) CanShape(ctx context.Context) error { return CanShape(ctx, f.dev) }

// Exec runs a command in the firewall's namespace (for healing state this
// Firewall value did not create, such as a previous value's rules).
func (f *Firewall) Exec(ctx context.Context, name string, args ...string) error {
	return f.run(ctx, name, args...)
}

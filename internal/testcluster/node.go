package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one node's layout and, while it runs, its process.
type node struct {
	id, addr       string
	dir, dataDir   string
	logFile        string
	journal        string // "" without Config.Journal
	initialCluster string

	mu     sync.Mutex
	opts   NodeOptions
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed when cmd has exited
	err    *error        // cmd's exit error, valid once exited is closed
	paused bool
}

func (n *node) options() NodeOptions {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.opts
}

// command returns the flags and the extra environment node i starts with.
func (c *Cluster) command(i int) (args, env []string) {
	n, cfg := c.nodes[i], c.cfg
	opts := n.options()
	args = []string{"--id", n.id, "--listen", n.addr, "--data-dir", n.dataDir, "--initial-cluster", n.initialCluster}
	if cfg.Debug {
		args = append(args, "--debug")
	}
	if n.journal != "" {
		args = append(args, "--debug-journal", n.journal)
	}
	var security [][2]string // flag, value
	if d := cfg.TLSDir; d != "" {
		security = append(security, [2]string{"tls-cert", filepath.Join(d, "node.crt")},
			[2]string{"tls-key", filepath.Join(d, "node.key")}, [2]string{"tls-ca", filepath.Join(d, "ca.crt")})
	}
	if cfg.TokenFile != "" {
		security = append(security, [2]string{"auth-tokens", cfg.TokenFile})
	}
	env = append(env, cfg.Env...)
	for _, s := range security {
		if cfg.SecurityFromEnv {
			env = append(env, "RAFTLOCK_"+strings.ToUpper(strings.ReplaceAll(s[0], "-", "_"))+"="+s[1])
		} else {
			args = append(args, "--"+s[0], s[1])
		}
	}
	args = append(append(args, cfg.Args...), opts.Args...)
	env = append(env, opts.Env...)
	return args, env
}

// start starts node i's process on its data directory.
func (c *Cluster) start(i int) error {
	n := c.nodes[i]
	args, env := c.command(i)
	bin := c.Binary(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.exited: // it crashed: start it again
		default:
			return fmt.Errorf("%s: %w", n.id, ErrRunning)
		}
	}
	if err := os.MkdirAll(n.dataDir, 0o750); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A process group of its own: a Ctrl-C of the test does not reach the
	// nodes before the harness stops them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logf, "# %s start: %s %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(env, " "), bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start: %w", n.id, err)
	}
	exited, waitErr := make(chan struct{}), new(error)
	go func() {
		*waitErr = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.err, n.paused = cmd, exited, waitErr, false
	c.cfg.Logf("testcluster: started %s on %s (pid %d, %s)", n.id, n.addr, cmd.Process.Pid, filepath.Base(bin))
	return nil
}

// take removes node i's process from the node, so that exactly one caller
// stops it.
func (c *Cluster) take(i int) (*exec.Cmd, chan struct{}, *error, bool) {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd, exited, err, paused := n.cmd, n.exited, n.err, n.paused
	n.cmd, n.paused = nil, false
	return cmd, exited, err, paused
}

// Running reports whether node i has a live (possibly paused) process: one
// the harness started and that has not exited (a crash counts as exited).
func (c *Cluster) Running(i int) bool {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to node i and waits for it to die.
func (c *Cluster) Kill(i int) error {
	cmd, exited, _, _ := c.take(i)
	if cmd == nil {
		return fmt.Errorf("%s: %w", c.nodes[i].id, ErrNotRunning)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	c.cfg.Logf("testcluster: killed %s", c.nodes[i].id)
	return nil
}

// Stop stops node i gracefully: SIGCONT if it is paused, SIGTERM, and a
// wait for it to exit. It returns the exit error of a node that exited
// with a non-zero status; a node still there after the stop timeout is
// killed and reported.
func (c *Cluster) Stop(i int) error {
	id := c.nodes[i].id
	cmd, exited, waitErr, paused := c.take(i)
	if cmd == nil {
		return fmt.Errorf("%s: %w", id, ErrNotRunning)
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(c.cfg.StopTimeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("%s: no exit within %s of SIGTERM; killed", id, c.cfg.StopTimeout)
	}
	c.cfg.Logf("testcluster: stopped %s", id)
	if *waitErr != nil {
		return fmt.Errorf("%s: exit after SIGTERM: %w", id, *waitErr)
	}
	return nil
}

// Pause stops node i with SIGSTOP: it keeps its sockets but answers
// nothing until Resume.
func (c *Cluster) Pause(i int) error { return c.signal(i, syscall.SIGSTOP, true) }

// Resume continues node i with SIGCONT.
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, false) }

// Reload sends node i SIGHUP: it reloads its TLS files and token file.
func (c *Cluster) Reload(i int) error { return c.signal(i, syscall.SIGHUP, false) }

func (c *Cluster) signal(i int, sig syscall.Signal, paused bool) error {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s: %w", n.id, ErrNotRunning)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %s: %w", n.id, sig, err)
	}
	n.paused = paused
	c.cfg.Logf("testcluster: %s %s", sig, n.id)
	return nil
}

// Restart starts stopped node i again on the same data directory and
// address, with its current options (see SetNode).
func (c *Cluster) Restart(i int) error { return c.start(i) }

// Wipe deletes stopped node i's data directory (a lost disk): its next
// start begins with no state. The log and journal stay.
func (c *Cluster) Wipe(i int) error {
	if c.Running(i) {
		return fmt.Errorf("wipe %s: %w", c.nodes[i].id, ErrRunning)
	}
	return os.RemoveAll(c.nodes[i].dataDir)
}

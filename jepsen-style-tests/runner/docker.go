package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raftlock/raftlock/internal/testcluster"
	"github.com/raftlock/raftlock/jepsen-style-tests/history"
	"github.com/raftlock/raftlock/jepsen-style-tests/nemesis"
)

// Docker is the backend of the compose cluster of docker/compose.yaml: the
// same three containers an operator runs, attacked the container way
// (docker kill/start, docker pause/unpause, docker network
// disconnect/connect, and iptables in a container's network namespace for
// partial and one-way partitions).
type Docker struct {
	root, out, project, image string
	compose                   []string
	env                       []string
	nodes                     []*dockerNode
	api                       *testcluster.Endpoints // the nodes through their host ports
	net                       *dockerNet
}

type dockerNode struct {
	id, container, hostAddr string
}

// DockerConfig says how to build and start the compose cluster.
type DockerConfig struct {
	// ModuleRoot is the repository root (it has docker/compose.yaml).
	ModuleRoot string
	// OutDir receives node logs and journals.
	OutDir string
	// Image is the image to build and run.
	Image string
}

func runCmd(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// NewDocker builds the image and brings the compose cluster up under a
// project name of its own, with the debug journal and clock control on.
// It fails, saying why, when Docker is not there.
func NewDocker(ctx context.Context, cfg DockerConfig) (*Docker, error) {
	compose, err := testcluster.Compose(ctx)
	if err != nil {
		return nil, err
	}
	d := &Docker{root: cfg.ModuleRoot, out: cfg.OutDir, image: cfg.Image, compose: compose,
		api: &testcluster.Endpoints{HTTP: &http.Client{Timeout: 3 * time.Second}}}
	d.project = fmt.Sprintf("raftlockchaos%d", time.Now().UnixNano()%1_000_000)
	if out, err := runCmd(ctx, nil, "make", "-C", d.root, "docker", "IMAGE="+d.image); err != nil {
		return nil, fmt.Errorf("build the image: %w\n%s", err, out)
	}
	override := filepath.Join(d.out, "compose.chaos.yaml")
	var b strings.Builder
	b.WriteString("# Written by the fault suite: debug journal, state hashes and clock control on.\nservices:\n")
	d.env = []string{"RAFTLOCK_IMAGE=" + d.image, "RAFTLOCK_CLUSTER=" + d.project}
	ports, err := testcluster.FreePorts(3)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= 3; i++ {
		port := ports[i-1]
		id := fmt.Sprintf("n%d", i)
		d.nodes = append(d.nodes, &dockerNode{id: id, container: d.project + "-" + id, hostAddr: fmt.Sprintf("127.0.0.1:%d", port)})
		d.api.URLs = append(d.api.URLs, "http://"+d.nodes[i-1].hostAddr)
		d.env = append(d.env, fmt.Sprintf("RAFTLOCK_N%d_PORT=127.0.0.1:%d", i, port))
		fmt.Fprintf(&b, "  %s:\n    environment:\n      RAFTLOCK_DEBUG: \"true\"\n      RAFTLOCK_DEBUG_JOURNAL: /data/journal.jsonl\n"+
			"      RAFTLOCK_UNSAFE_CLOCK_CONTROL: \"true\"\n      RAFTLOCK_LOG_FORMAT: json\n", id)
	}
	if err := os.MkdirAll(d.out, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(override, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if _, err := d.composeCmd(ctx, "-f", filepath.Join(d.root, "docker", "compose.yaml"), "-f", override, "up", "-d"); err != nil {
		d.Close()
		return nil, err
	}
	d.net = &dockerNet{d: d, disconnected: map[string]bool{}}
	return d, nil
}

func (d *Docker) composeCmd(ctx context.Context, args ...string) (string, error) {
	full := append(append([]string{}, d.compose[1:]...), append([]string{"-p", d.project}, args...)...)
	return runCmd(ctx, d.env, d.compose[0], full...)
}

func (d *Docker) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return runCmd(ctx, nil, "docker", args...)
}

// inspect reads one field of a container.
func (d *Docker) inspect(container, format string) (string, error) {
	out, err := d.docker("inspect", "-f", format, container)
	return strings.TrimSpace(out), err
}

// Name says "docker".
func (d *Docker) Name() string { return "docker" }

// Size is 3.
func (d *Docker) Size() int { return len(d.nodes) }

// Endpoints are the host ports of the containers.
func (d *Docker) Endpoints() []string {
	var out []string
	for _, n := range d.nodes {
		out = append(out, n.hostAddr)
	}
	return out
}

// Hosts maps the nodes' advertised addresses (leader hints such as
// "n1:7070") to their host ports, for clients on the host.
func (d *Docker) Hosts() map[string]string {
	m := map[string]string{}
	for _, n := range d.nodes {
		m[n.id+":7070"] = n.hostAddr
	}
	return m
}

// FaultAddrs are the container names; dockerNet resolves them to the
// containers' current addresses when it acts.
func (d *Docker) FaultAddrs() []string {
	var out []string
	for _, n := range d.nodes {
		out = append(out, n.container)
	}
	return out
}

// ClientAddrs is nil: clients reach the containers through the host, all
// from the same address.
func (d *Docker) ClientAddrs() []string { return nil }

// CanControlClocks: the containers run with clock control on.
func (d *Docker) CanControlClocks() bool { return true }

// Running reports whether container i runs (paused counts as running).
func (d *Docker) Running(i int) bool {
	out, err := d.inspect(d.nodes[i].container, "{{.State.Running}}")
	return err == nil && out == "true"
}

// Kill sends SIGKILL to container i.
func (d *Docker) Kill(i int) error {
	_, err := d.docker("kill", "-s", "KILL", d.nodes[i].container)
	return err
}

// Restart starts container i again (its volume keeps its data).
func (d *Docker) Restart(i int) error {
	_, err := d.docker("start", d.nodes[i].container)
	return err
}

// Pause freezes container i.
func (d *Docker) Pause(i int) error {
	_, err := d.docker("pause", d.nodes[i].container)
	return err
}

// Resume unfreezes container i (no error if it was not paused).
func (d *Docker) Resume(i int) error {
	if out, _ := d.inspect(d.nodes[i].container, "{{.State.Paused}}"); out != "true" {
		return nil
	}
	_, err := d.docker("unpause", d.nodes[i].container)
	return err
}

// SetClock skews node i's clocks through its debug endpoint.
func (d *Docker) SetClock(ctx context.Context, i int, offset time.Duration, rate float64) error {
	return d.api.SetClock(ctx, i, offset, rate)
}

// Leader returns the node every answering node names as leader.
func (d *Docker) Leader(ctx context.Context) (int, error) {
	return d.api.AgreedLeader(ctx, []int{0, 1, 2})
}

// States fetches every node's /debug/state.
func (d *Docker) States(ctx context.Context) (map[string]State, error) {
	out := map[string]State{}
	for i, n := range d.nodes {
		st, err := d.api.State(ctx, i)
		if err != nil {
			return nil, err
		}
		out[n.id] = State{Index: st.Index, Hash: st.Hash}
	}
	return out, nil
}

// Journals copies each container's journal out of its volume.
func (d *Docker) Journals() (map[string][]history.Entry, error) {
	out := map[string][]history.Entry{}
	for _, n := range d.nodes {
		dst := filepath.Join(d.out, "nodes", n.id)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, err
		}
		path := filepath.Join(dst, "journal.jsonl")
		if _, err := d.docker("cp", n.container+":/data/journal.jsonl", path); err != nil {
			return nil, err
		}
		entries, _, err := history.LoadJournal(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.id, err)
		}
		out[n.id] = entries
	}
	return out, nil
}

// Logs lists the node logs written by Close.
func (d *Docker) Logs() []string {
	var out []string
	for _, n := range d.nodes {
		out = append(out, filepath.Join(d.out, "nodes", n.id, "node.log"))
	}
	return out
}

// Network returns the container-way network fault injector.
func (d *Docker) Network(ctx context.Context) (nemesis.Network, error) {
	if err := nemesis.CanFirewall(ctx); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return nil, fmt.Errorf("%w: nsenter is not installed", nemesis.ErrUnsupported)
	}
	return d.net, nil
}

// Close saves the containers' logs and removes everything the backend
// created (containers, network, volumes).
func (d *Docker) Close() {
	for _, n := range d.nodes {
		dst := filepath.Join(d.out, "nodes", n.id)
		_ = os.MkdirAll(dst, 0o755)
		if out, err := d.docker("logs", n.container); err == nil {
			_ = os.WriteFile(filepath.Join(dst, "node.log"), []byte(out), 0o644)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, _ = d.composeCmd(ctx, "-f", filepath.Join(d.root, "docker", "compose.yaml"), "down", "-v", "--remove-orphans", "-t", "5")
	_, _ = d.docker("image", "rm", "-f", d.image)
}

// dockerNet injects network faults between containers. A node cut off
// from every other node is disconnected from the compose network (docker
// network disconnect/connect); partial and one-way cuts are iptables rules
// in the containers' own network namespaces.
type dockerNet struct {
	d            *Docker
	mu           sync.Mutex
	disconnected map[string]bool // container → disconnected
}

func (n *dockerNet) network() string { return n.d.project + "_raftlock" }

// firewall returns a firewall in the container's current namespace and
// the container's address on the compose network.
func (n *dockerNet) firewall(container string) (*nemesis.Firewall, string, error) {
	pidS, err := n.d.inspect(container, "{{.State.Pid}}")
	if err != nil {
		return nil, "", err
	}
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid == 0 {
		return nil, "", fmt.Errorf("%s is not running", container)
	}
	ip, err := n.d.inspect(container, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
	if err != nil || ip == "" {
		return nil, "", fmt.Errorf("%s has no address: %v", container, err)
	}
	return nemesis.NewFirewallIn(pid, "eth0"), ip, nil
}

func (n *dockerNet) Cut(ctx context.Context, as, bs []string) error {
	if len(as) == 1 && len(bs) == n.d.Size()-1 {
		return n.disconnect(ctx, as[0])
	}
	if len(bs) == 1 && len(as) == n.d.Size()-1 {
		return n.disconnect(ctx, bs[0])
	}
	for _, a := range as {
		for _, b := range bs {
			if err := n.Drop(ctx, a, b, 1); err != nil {
				return err
			}
			if err := n.Drop(ctx, b, a, 1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *dockerNet) disconnect(ctx context.Context, container string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := runCmd(ctx, nil, "docker", "network", "disconnect", "-f", n.network(), container); err != nil {
		return err
	}
	n.disconnected[container] = true
	return nil
}

// Drop drops, in dst's namespace, packets arriving from src.
func (n *dockerNet) Drop(ctx context.Context, src, dst string, p float64) error {
	fw, dstIP, err := n.firewall(dst)
	if err != nil {
		return err
	}
	_, srcIP, err := n.firewall(src)
	if err != nil {
		return err
	}
	return fw.Drop(ctx, srcIP, dstIP, p)
}

// Slow rate-limits, in each container's namespace, its traffic to the
// other.
func (n *dockerNet) Slow(ctx context.Context, pairs [][2]string, rate string) error {
	for _, p := range pairs {
		for _, dir := range [][2]string{p, {p[1], p[0]}} {
			fw, from, err := n.firewall(dir[0])
			if err != nil {
				return err
			}
			_, to, err := n.firewall(dir[1])
			if err != nil {
				return err
			}
			if err := fw.Slow(ctx, [][2]string{{from, to}}, rate); err != nil {
				return err
			}
		}
	}
	return nil
}

// CanShape probes tc in a container's namespace.
func (n *dockerNet) CanShape(ctx context.Context) error {
	fw, _, err := n.firewall(n.d.nodes[0].container)
	if err != nil {
		return err
	}
	if err := fw.Slow(ctx, nil, "1gbit"); err != nil {
		return fmt.Errorf("%w: %v", nemesis.ErrUnsupported, err)
	}
	return fw.Heal(ctx)
}

// Heal reconnects disconnected containers and removes every rule.
func (n *dockerNet) Heal(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for c := range n.disconnected {
		id := strings.TrimPrefix(c, n.d.project+"-")
		if _, err := runCmd(ctx, nil, "docker", "network", "connect", "--alias", id, n.network(), c); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(n.disconnected, c)
	}
	for _, node := range n.d.nodes {
		fw, _, err := n.firewall(node.container)
		if err != nil {
			continue // not running: its namespace, and rules, are gone
		}
		_ = run(ctx, fw, "iptables", "-w", "-F", "RAFTLOCK-CHAOS")
		_ = run(ctx, fw, "tc", "qdisc", "del", "dev", "eth0", "root")
	}
	return errors.Join(errs...)
}

// run executes a command in a firewall's namespace, ignoring "no such
// chain/qdisc" (nothing to heal).
func run(ctx context.Context, fw *nemesis.Firewall, name string, args ...string) error {
	return fw.Exec(ctx, name, args...)
}

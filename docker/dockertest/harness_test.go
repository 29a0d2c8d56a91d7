//go:build docker

package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// nodes are the services of docker/compose.yaml, in order: index i of a
// cluster's ports and clients is nodes[i].
var nodes = []string{"n1", "n2", "n3"}

// Bounds on the outside world. Every wait polls its condition every
// pollEvery until its deadline.
const (
	buildTimeout   = 10 * time.Minute // make docker: compile and build the image
	commandTimeout = 3 * time.Minute  // one docker or compose command
	healthyTimeout = 2 * time.Minute  // containers to report healthy
	leaderTimeout  = time.Minute      // a leader every node agrees on
	callTimeout    = 20 * time.Second // one API call
	pollEvery      = 250 * time.Millisecond
)

// TestMain removes the image the suite built, once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := removeCerts(); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: removing the TLS material: %v\n", err)
		code = 1
	}
	if image.tag != "" {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		if out, err := run(ctx, nil, "docker", "rmi", image.tag); err != nil {
			fmt.Fprintf(os.Stderr, "dockertest: removing the image %s: %v\n%s\n", image.tag, err, out)
			code = 1
		}
		cancel()
	}
	os.Exit(code)
}

// ---- Docker itself ----

var dockerEnv struct {
	once    sync.Once
	compose []string // "docker compose" or "docker-compose"
	err     error
}

// requireDocker fails the test, saying why, unless Docker and a Compose
// are usable, and returns the Compose command.
func requireDocker(t *testing.T) []string {
	t.Helper()
	dockerEnv.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		dockerEnv.compose, dockerEnv.err = testcluster.Compose(ctx)
	})
	if dockerEnv.err != nil {
		t.Fatalf("the Docker suite needs Docker Engine and Compose: %v", dockerEnv.err)
	}
	return dockerEnv.compose
}

// image is the image the suite builds once, with a tag of its own so that
// it neither uses nor replaces a developer's raftlock:dev.
var image struct {
	once sync.Once
	tag  string
	err  error
}

// buildImage builds the image with `make docker`, the way a developer does,
// into a temporary bin directory, and returns its tag.
func buildImage(t *testing.T) string {
	t.Helper()
	requireDocker(t)
	image.once.Do(func() {
		root, err := testcluster.ModuleRoot()
		if err != nil {
			image.err = err
			return
		}
		bin, err := os.MkdirTemp("", "raftlock-dockertest-bin-")
		if err != nil {
			image.err = err
			return
		}
		defer os.RemoveAll(bin)
		tag := "raftlock:dockertest-" + randHex(4)
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		out, err := run(ctx, nil, "make", "-C", root, "docker", "IMAGE="+tag, "BIN="+bin)
		image.tag = tag // removed by TestMain even if the build failed half-way
		if err != nil {
			// Nothing to remove if the tag never came to be.
			if _, ierr := run(ctx, nil, "docker", "image", "inspect", tag); ierr != nil {
				image.tag = ""
			}
			image.err = fmt.Errorf("make docker: %w\n%s", err, out)
			return
		}
		size, _ := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Size}}", tag)
		fmt.Fprintf(os.Stderr, "dockertest: built %s (%s bytes)\n", tag, strings.TrimSpace(size))
	})
	if image.err != nil {
		t.Fatalf("building the image: %v", image.err)
	}
	return image.tag
}

// imageHasFile reports whether the image holds a file at path, by copying
// it out of a container that is created but never started.
func imageHasFile(t *testing.T, img, path string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	name := "rldt-probe-" + randHex(4)
	if out, err := run(ctx, nil, "docker", "create", "--name", name, img); err != nil {
		t.Fatalf("docker create: %v\n%s", err, out)
	}
	defer func() {
		// -v: the image declares a volume; remove the one create made.
		if out, err := run(context.Background(), nil, "docker", "rm", "-v", name); err != nil {
			t.Errorf("removing the probe container %s: %v\n%s", name, err, out)
		}
	}()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "cp", name+":"+path, "-")
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "Could not find the file") || strings.Contains(stderr.String(), "No such container:path") {
			return false
		}
		t.Fatalf("docker cp %s:%s: %v\n%s", name, path, err, stderr.String())
	}
	return true
}

// ---- TLS and tokens ----

// mode is how a cluster is secured: plain (docker/compose.yaml alone), or
// TLS with tokens (docker/compose.tls.yaml on top, certificates made by
// `make docker-certs`, an --auth-tokens file).
type mode struct {
	name string
	tls  bool
}

// modes are the ways every cluster test runs.
var modes = []mode{{name: "plain"}, {name: "tls", tls: true}}

// forEachMode runs test once per mode, as subtests named after the mode.
func forEachMode(t *testing.T, test func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// Tokens of the TLS clusters. The harness calls with adminToken; the
// tenant token may acquire and read only under tenantPrefix.
const (
	adminTokenName  = "dockertest-admin"
	tenantTokenName = "tenant-a"
	tenantPrefix    = "tenant-a/"
)

// secrets is the material of the TLS clusters, made once per test binary:
// a directory (mounted at /certs in every node) with the development CA,
// a node certificate for n1..n3 and 127.0.0.1, a client certificate and
// tokens.json; and the token secrets.
var secrets struct {
	once   sync.Once
	dir    string
	tokens map[string]string // name -> secret
	err    error
}

// certsDir makes the TLS material the way an operator does: `make
// docker-certs` (make certs, then the keys readable by the image's user
// 65532) into a temporary directory, and a token file beside it.
func certsDir(t *testing.T) string {
	t.Helper()
	secrets.once.Do(func() {
		root, err := testcluster.ModuleRoot()
		if err != nil {
			secrets.err = err
			return
		}
		base, err := os.MkdirTemp("", "raftlock-dockertest-certs-")
		if err != nil {
			secrets.err = err
			return
		}
		secrets.dir = filepath.Join(base, "certs")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		if out, err := run(ctx, nil, "make", "-C", root, "docker-certs", "CERTS_DIR="+secrets.dir, "CERT_HOSTS=127.0.0.1,localhost,n1,n2,n3"); err != nil {
			secrets.err = fmt.Errorf("make docker-certs: %w\n%s", err, out)
			return
		}
		secrets.tokens = map[string]string{}
		for _, name := range []string{adminTokenName, tenantTokenName} {
			if secrets.tokens[name], secrets.err = tokens.NewSecret(); secrets.err != nil {
				return
			}
		}
		file := tokens.File{Tokens: []tokens.Token{
			{Name: adminTokenName, SHA256: tokens.Hash(secrets.tokens[adminTokenName]), Verbs: []string{tokens.VerbAcquire, tokens.VerbRead, tokens.VerbAdmin}},
			{Name: tenantTokenName, SHA256: tokens.Hash(secrets.tokens[tenantTokenName]), Prefixes: []string{tenantPrefix}, Verbs: []string{tokens.VerbAcquire, tokens.VerbRead}},
		}}
		b, err := json.MarshalIndent(file, "", "  ")
		if err != nil {
			secrets.err = err
			return
		}
		// Hashes only: readable by the container user like the certificates.
		secrets.err = os.WriteFile(filepath.Join(secrets.dir, "tokens.json"), b, 0o644)
	})
	if secrets.err != nil {
		t.Fatalf("making the TLS material: %v", secrets.err)
	}
	return secrets.dir
}

// removeCerts deletes the TLS material (TestMain, after every test).
func removeCerts() error {
	if secrets.dir == "" {
		return nil
	}
	return os.RemoveAll(filepath.Dir(secrets.dir))
}

// ---- a compose cluster ----

// cluster is one run of docker/compose.yaml (with docker/compose.tls.yaml
// on top in TLS mode) under a compose project (and container-name prefix)
// of its own, with its host ports on 127.0.0.1 picked free, so it runs
// beside a developer's cluster on 7071-7073.
type cluster struct {
	t        *testing.T
	mode     mode
	project  string
	composer []string
	files    []string
	env      []string
	ports    []int
	scheme   string
	tls      *tls.Config // TLS mode: trusts the development CA
	// lockctlFlags go before the command of every lockctl run in a
	// container (TLS mode: --tls-ca, --token ...).
	lockctlFlags []string
	http         *http.Client // the harness's calls: TLS mode adds the admin token
	// volumes are the volumes seen mounted in the project's containers,
	// anonymous ones too, so teardown can check they are gone.
	volumes map[string]bool
}

// newCluster brings the cluster up in mode m and waits until every
// container is healthy. Cleanup takes it down with its volumes, and checks
// that nothing of it is left.
func newCluster(t *testing.T, m mode) *cluster {
	t.Helper()
	composer := requireDocker(t)
	img := buildImage(t)
	root, err := testcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := testcluster.FreePorts(len(nodes))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t:        t,
		mode:     m,
		project:  "rldt" + randHex(4),
		composer: composer,
		files:    []string{filepath.Join(root, "docker", "compose.yaml")},
		ports:    ports,
		scheme:   "http",
		http:     &http.Client{Timeout: callTimeout},
		volumes:  map[string]bool{},
	}
	c.env = append(os.Environ(), "RAFTLOCK_IMAGE="+img, "RAFTLOCK_CLUSTER="+c.project, "COMPOSE_PROJECT_NAME="+c.project)
	for i, n := range nodes {
		c.env = append(c.env, fmt.Sprintf("RAFTLOCK_%s_PORT=127.0.0.1:%d", strings.ToUpper(n), c.ports[i]))
	}
	if m.tls {
		dir := certsDir(t)
		// Trust the development CA; the harness presents no client
		// certificate (the nodes verify one only if given).
		if c.tls, err = client.TLSFromFiles(filepath.Join(dir, "ca.crt"), "", ""); err != nil {
			t.Fatal(err)
		}
		c.files = append(c.files, filepath.Join(root, "docker", "compose.tls.yaml"))
		c.env = append(c.env, "RAFTLOCK_CERTS_DIR="+dir, "RAFTLOCK_DOCKER_AUTH_TOKENS=/certs/tokens.json")
		c.scheme = "https"
		c.http = c.client(secrets.tokens[adminTokenName])
	}
	t.Logf("compose project %s (%s, %s), host ports %v", c.project, strings.Join(composer, " "), m.name, c.ports)
	t.Cleanup(c.teardown)
	c.compose("up", "-d")
	c.waitHealthy(nodes...)
	return c
}

// container is the name of a service's container.
func (c *cluster) container(svc string) string { return c.project + "-" + svc }

func (c *cluster) containers(svcs ...string) []string {
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = c.container(s)
	}
	return names
}

// compose runs a compose command on the cluster and fails the test if it
// fails.
func (c *cluster) compose(args ...string) string {
	c.t.Helper()
	out, err := c.composeErr(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", strings.Join(c.composer, " "), strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) composeErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if len(args) > 0 && args[0] == "down" {
		c.noteVolumes(ctx)
	}
	full := append(c.composer[1:len(c.composer):len(c.composer)], "-p", c.project)
	for _, f := range c.files {
		full = append(full, "-f", f)
	}
	return run(ctx, c.env, c.composer[0], append(full, args...)...)
}

// docker runs a docker command and fails the test if it fails.
func (c *cluster) docker(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := run(ctx, nil, "docker", args...)
	if err != nil {
		c.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// teardown dumps the node logs if the test failed, removes the cluster
// with its volumes, and fails the test if anything of it is left.
func (c *cluster) teardown() {
	t := c.t
	if t.Failed() {
		out, _ := c.composeErr("logs", "--no-color", "--tail", "300")
		t.Logf("logs of compose project %s:\n%s", c.project, out)
	}
	if out, err := c.composeErr("down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
		t.Errorf("compose down: %v\n%s", err, out)
	}
	left := c.leftovers()
	if len(left) == 0 {
		return
	}
	t.Errorf("left behind by compose down of project %s: %v", c.project, left)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	for kind, ids := range left {
		args := map[string][]string{
			"container": {"rm", "--force", "--volumes"},
			"network":   {"network", "rm"},
			"volume":    {"volume", "rm", "--force"},
		}[kind]
		if out, err := run(ctx, nil, "docker", append(args, ids...)...); err != nil {
			t.Errorf("removing %ss %v: %v\n%s", kind, ids, err, out)
		}
	}
}

// noteVolumes records the volumes mounted in the project's containers.
func (c *cluster) noteVolumes(ctx context.Context) {
	out, err := run(ctx, nil, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+c.project)
	if err != nil || strings.TrimSpace(out) == "" {
		return
	}
	args := append([]string{"inspect", "--format", `{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}`}, strings.Fields(out)...)
	if out, err = run(ctx, nil, "docker", args...); err != nil {
		c.t.Errorf("docker inspect of the project's containers: %v\n%s", err, out)
		return
	}
	for _, v := range strings.Fields(out) {
		c.volumes[v] = true
	}
}

// leftovers lists the containers, networks and volumes of the project that
// still exist, found by compose's project label, by name, and (anonymous
// volumes) as seen mounted before a compose down.
func (c *cluster) leftovers() map[string][]string {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	label := "label=com.docker.compose.project=" + c.project
	queries := map[string][][]string{
		"container": {{"ps", "-aq", "--filter", label}, {"ps", "-aq", "--filter", "name=" + c.project}},
		"network":   {{"network", "ls", "-q", "--filter", label}, {"network", "ls", "-q", "--filter", "name=" + c.project}},
		"volume":    {{"volume", "ls", "-q", "--filter", label}, {"volume", "ls", "-q", "--filter", "name=" + c.project}},
	}
	left := map[string][]string{}
	seen := map[string]bool{}
	for v := range c.volumes {
		if _, err := run(ctx, nil, "docker", "volume", "inspect", v); err == nil {
			seen["volume/"+v] = true
			left["volume"] = append(left["volume"], v)
		}
	}
	for kind, qs := range queries {
		for _, q := range qs {
			out, err := run(ctx, nil, "docker", q...)
			if err != nil {
				c.t.Errorf("docker %s: %v\n%s", strings.Join(q, " "), err, out)
				continue
			}
			for _, id := range strings.Fields(out) {
				if !seen[kind+"/"+id] {
					seen[kind+"/"+id] = true
					left[kind] = append(left[kind], id)
				}
			}
		}
	}
	return left
}

// state returns "status health" of each container, e.g. "running healthy"
// or "exited".
func (c *cluster) state(svcs ...string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	args := append([]string{"inspect", "--format", "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"}, c.containers(svcs...)...)
	out, err := run(ctx, nil, "docker", args...)
	if err != nil {
		return nil, fmt.Errorf("docker inspect: %w: %s", err, out)
	}
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, st, _ := strings.Cut(line, " ")
		states[strings.TrimPrefix(name, "/"+c.project+"-")] = strings.TrimSpace(st)
	}
	return states, nil
}

// waitHealthy waits until Docker reports every listed container running
// and healthy (its HEALTHCHECK: the node is ready).
func (c *cluster) waitHealthy(svcs ...string) {
	c.t.Helper()
	var last string
	c.waitFor(healthyTimeout, fmt.Sprintf("containers %v to be healthy", svcs), func() bool {
		states, err := c.state(svcs...)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprint(states)
		for _, s := range svcs {
			if states[s] != "running healthy" {
				return false
			}
		}
		return true
	}, &last)
}

// waitFor polls cond every pollEvery until it holds or the timeout
// passes; then it fails the test with what, and *last if given.
func (c *cluster) waitFor(timeout time.Duration, what string, cond func() bool, last *string) {
	c.t.Helper()
	testcluster.Poll(c.t, timeout, pollEvery, what, cond, last)
}

// ---- the API through the host ports ----

func (c *cluster) url(i int) string { return fmt.Sprintf("%s://127.0.0.1:%d", c.scheme, c.ports[i]) }

// client is an HTTP client for the host ports: in TLS mode it trusts the
// development CA and sends token (none if empty).
func (c *cluster) client(token string) *http.Client {
	if c.tls == nil {
		return &http.Client{Timeout: callTimeout}
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: c.tls.Clone(), ForceAttemptHTTP2: true}
	if token != "" {
		rt = testcluster.Bearer(token, rt)
	}
	return &http.Client{Timeout: callTimeout, Transport: rt}
}

func (c *cluster) lock(i int) raftlockv1connect.LockServiceClient {
	return raftlockv1connect.NewLockServiceClient(c.http, c.url(i))
}

func (c *cluster) clusterAPI(i int) raftlockv1connect.ClusterServiceClient {
	return raftlockv1connect.NewClusterServiceClient(c.http, c.url(i))
}

// call runs one API call bounded by callTimeout.
func call[T any](c *cluster, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), callTimeout)
	defer cancel()
	return fn(ctx)
}

func (c *cluster) status(i int) (*raftlockv1.StatusResponse, error) {
	resp, err := call(c, func(ctx context.Context) (*connect.Response[raftlockv1.StatusResponse], error) {
		return c.clusterAPI(i).Status(ctx, connect.NewRequest(&raftlockv1.StatusRequest{}))
	})
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// waitLeader waits until every node in among answers Status, is ready,
// and names the same leader, which is one of among and is not notID; it
// returns the leader's index in nodes.
func (c *cluster) waitLeader(among []int, notID string) int {
	c.t.Helper()
	leader := -1
	var last string
	c.waitFor(leaderTimeout, fmt.Sprintf("a leader other than %q among %v", notID, names(among)), func() bool {
		ids := map[string]bool{}
		for _, i := range among {
			st, err := c.status(i)
			if err != nil {
				last = fmt.Sprintf("%s: %v", nodes[i], err)
				return false
			}
			if !st.Ready {
				last = fmt.Sprintf("%s not ready, leader %q", nodes[i], st.LeaderId)
				return false
			}
			ids[st.LeaderId] = true
		}
		if len(ids) != 1 {
			last = fmt.Sprintf("nodes disagree on the leader: %v", ids)
			return false
		}
		for id := range ids {
			leader = slices.Index(nodes, id)
			last = "leader " + id
		}
		return leader >= 0 && nodes[leader] != notID && slices.Contains(among, leader)
	}, &last)
	return leader
}

// retry calls fn until it returns anything but unavailable (no leader
// yet, or the leader is changing) or the call deadline passes. Mutating
// calls carry a fixed request id, so a retry happens exactly once.
func retry[T any](c *cluster, fn func(ctx context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(callTimeout)
	for {
		v, err := call(c, fn)
		if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-c.t.Context().Done():
			return v, err
		case <-time.After(pollEvery):
		}
	}
}

// ---- small helpers ----

// run runs a command with env (nil: this process's) and returns its
// combined output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func names(idx []int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = nodes[x]
	}
	return out
}

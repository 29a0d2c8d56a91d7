package testcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/raftlock/raftlock/client"
)

// FreePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago (they are held until all n are found).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// ClientTLS is the client side of a directory made by cluster/certs.DevSet
// (lockctl certs): trust ca.crt, present client.crt and client.key.
func ClientTLS(dir string) (*tls.Config, error) {
	return client.TLSFromFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
}

// Compose checks that Docker and a Compose are usable and returns the
// Compose command: "docker compose" (the v2 plugin) when it answers, else
// docker-compose. The error says what is missing.
func Compose(ctx context.Context) ([]string, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("the docker command is not installed: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the Docker daemon does not answer `docker version` (is it running, may this user use it?): %w\n%s", err, strings.TrimSpace(string(out)))
	}
	if err := exec.CommandContext(ctx, "docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither `docker compose` (the Compose v2 plugin) nor docker-compose is installed")
}

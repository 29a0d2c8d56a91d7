package testcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
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

// LoopbackAddrs returns n addresses 127.0.0.first, 127.0.0.first+1, …
// at one port that was free on all of them a moment ago: nodes with an IP
// of their own each (Linux routes all of 127/8 to lo), so a test can tell
// or cut them apart by address.
func LoopbackAddrs(first, n int) ([]string, error) {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", first+i)
	}
	for range 50 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		addrs := []string{ln.Addr().String()}
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			l2.Close()
			addrs = append(addrs, l2.Addr().String())
		}
		ln.Close()
		if len(addrs) == n {
			return addrs, nil
		}
	}
	return nil, fmt.Errorf("no port free on all of %v", ips)
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

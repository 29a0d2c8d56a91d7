package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds one go build of the node binary.
const buildTimeout = 5 * time.Minute

// Build compiles ./cmd/node of the module at moduleDir into dir, static
// (CGO_ENABLED=0) like make build, and returns the binary's path.
func Build(ctx context.Context, moduleDir, dir string) (string, error) {
	out := filepath.Join(dir, "node")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/node")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build node: %w\n%s", err, b)
	}
	return out, nil
}

// ModuleRoot is the directory holding go.mod, at or above the working
// directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// built is the node binary of this test binary: built on first use,
// removed by Main.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BinaryEnv names a node binary to test instead of the module's own build
// (an older release, say): RAFTLOCK_TEST_NODE_BIN=/path/to/node go test ...
const BinaryEnv = "RAFTLOCK_TEST_NODE_BIN"

// Binary returns the node binary of the module under test, built once per
// test binary into a temporary directory (removed by Main), and fails t if
// it does not build. With $RAFTLOCK_TEST_NODE_BIN set, it returns that
// binary instead and builds nothing.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv(BinaryEnv); b != "" {
		return b
	}
	built.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			built.err = err
			return
		}
		if built.dir, err = os.MkdirTemp("", "raftlock-testcluster-"); err != nil {
			built.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		built.path, built.err = Build(ctx, root, built.dir)
	})
	if built.err != nil {
		t.Fatalf("the node binary: %v", built.err)
	}
	return built.path
}

// Main runs the tests and then removes the binary Binary built. Call it
// from TestMain: os.Exit(testcluster.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if built.dir != "" {
		if err := os.RemoveAll(built.dir); err != nil {
			fmt.Fprintf(os.Stderr, "testcluster: removing %s: %v\n", built.dir, err)
		}
	}
	return code
}

//go:build pg

package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

// postgres is a PostgreSQL server this test started.
type postgres struct {
	DSN string
	dir string
	log string
}

// pgBinDir finds initdb and postgres: $PG_BINDIR, else the newest
// /usr/lib/postgresql/*/bin (Debian's layout).
func pgBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin and PG_BINDIR is unset (make fence-pg installs Debian's postgresql)")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// startPostgres starts a fresh server for this test and stops it when the
// test ends. It fails the test (never skips) when the server cannot start.
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	// initdb refuses to run as root: as root, run the server as the
	// postgres user the Debian package creates, in a directory it owns
	// (t.TempDir's parents are root-only).
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "raftlock-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("postgres: running as root and there is no postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("postgres: initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	pg := &postgres{dir: dir, log: filepath.Join(dir, "postgres.log"),
		DSN: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)}
	logf, err := os.Create(pg.log)
	if err != nil {
		t.Fatal(err)
	}
	server := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir)
	server.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	server.Stdout, server.Stderr = logf, logf
	if err := server.Start(); err != nil {
		t.Fatalf("postgres: start: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = server.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = server.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = server.Process.Kill()
			<-exited
		}
	})
	db, err := sql.Open("postgres", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("postgres: the server exited during start-up: %s", pg.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres: not ready after 60s (%v): %s", err, pg.tail())
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	var v string
	if err := db.QueryRow("SHOW server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres %s started on 127.0.0.1:%d (data in %s)", v, port, data)
	return pg
}

// tail is the end of the server's log.
func (pg *postgres) tail() string {
	b, _ := os.ReadFile(pg.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// open returns a pool on the server, closed when the test ends.
func (pg *postgres) open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// freePort returns a port on 127.0.0.1 free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

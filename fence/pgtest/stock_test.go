//go:build pg

package pgtest

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/fence"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// The scenario's numbers.
const (
	initialStock = 5
	buyers       = 6               // concurrent Execute workers in this process
	pausedLease  = 2 * time.Second // the paused worker's lease (expire)
	buyerLease   = 10 * time.Second
	buyerWait    = 30 * time.Second
)

// errSoldOut: the worker found no stock left and wrote nothing.
var errSoldOut = errors.New("sold out")

const schema = `
CREATE TABLE stock (
  sku         TEXT PRIMARY KEY,
  qty         INT NOT NULL,
  fence_token BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE sales (
  id         SERIAL PRIMARY KEY,
  sku        TEXT NOT NULL,
  worker     TEXT NOT NULL,
  token      BIGINT NOT NULL,
  qty_before INT NOT NULL
);`

// buyOne is one worker's job: under the lock on sku, read the stock, and
// if any is left sell one (decrement and record the sale). beforeWrite
// runs between the check and the write: the paused worker stops there.
// The write is already on its way when the pause hits, so it does not
// stop when Execute's context is cancelled (as a real write in flight
// would not): only the database can refuse it. With fenced, the write
// goes through fence.Rows.Update with the lock's token; without, it is a
// plain transaction.
func buyOne(ctx context.Context, cl *client.Client, db *sql.DB, rows *fence.Rows, sku, worker string, fenced bool, lease time.Duration, beforeWrite func(token uint64)) (token uint64, err error) {
	err = cl.Execute(ctx, []string{sku}, func(ctx context.Context) error {
		l, _ := client.LockFromContext(ctx)
		token = l.Token()
		var qty int
		if err := db.QueryRowContext(ctx, "SELECT qty FROM stock WHERE sku = $1", sku).Scan(&qty); err != nil {
			return err
		}
		if qty <= 0 {
			return errSoldOut
		}
		if beforeWrite != nil {
			beforeWrite(token)
		}
		wctx := context.WithoutCancel(ctx)
		write := func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(wctx, "UPDATE stock SET qty = qty - 1 WHERE sku = $1", sku); err != nil {
				return err
			}
			_, err := tx.ExecContext(wctx, "INSERT INTO sales (sku, worker, token, qty_before) VALUES ($1, $2, $3, $4)", sku, worker, int64(token), qty)
			return err
		}
		if fenced {
			return rows.Update(wctx, db, sku, token, write)
		}
		tx, err := db.BeginTx(wctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		if err := write(tx); err != nil {
			return err
		}
		return tx.Commit()
	}, client.WithExpire(lease), client.WithWait(buyerWait))
	return token, err
}

// workerReport is what the paused worker process prints when it is done.
type workerReport struct {
	Token   uint64 `json:"token"`
	Outcome string `json:"outcome"` // written, fenced, sold_out, error
	Err     string `json:"err,omitempty"`
	Lost    bool   `json:"lock_lost"` // Execute said the lock was lost
}

func outcome(err error) string {
	switch {
	case errors.Is(err, fence.ErrFenced):
		return "fenced"
	case errors.Is(err, errSoldOut):
		return "sold_out"
	case err == nil || (errors.Is(err, client.ErrLockLost) && !strings.Contains(err.Error(), "fn returned")):
		return "written"
	}
	return "error"
}

// TestMain runs the paused worker when this binary is started as one
// (FENCE_PG_WORKER=1), and the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv("FENCE_PG_WORKER") == "1" {
		os.Exit(pausedWorker())
	}
	os.Exit(testcluster.Main(m))
}

// pausedWorker buys one unit like any worker, but after its check it
// prints "at-write TOKEN" and waits for a line on stdin before writing.
// The test stops the process (SIGSTOP) right there, so its lease runs out
// while it sleeps, and continues it (SIGCONT) after others have sold the
// stock.
func pausedWorker() int {
	env := func(k string) string { return os.Getenv(k) }
	cl, err := client.New(strings.Split(env("FENCE_PG_ENDPOINTS"), ","), client.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cl.Close()
	db, err := sql.Open("postgres", env("FENCE_PG_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	rows, err := fence.NewRows(fence.RowsConfig{Table: "stock", KeyColumn: "sku"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stdin := bufio.NewReader(os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	token, err := buyOne(ctx, cl, db, rows, env("FENCE_PG_SKU"), "paused", env("FENCE_PG_FENCED") == "1", pausedLease, func(token uint64) {
		fmt.Printf("at-write %d\n", token)
		_, _ = stdin.ReadString('\n')
	})
	rep := workerReport{Token: token, Outcome: outcome(err), Lost: errors.Is(err, client.ErrLockLost)}
	if err != nil {
		rep.Err = err.Error()
	}
	b, _ := json.Marshal(rep)
	fmt.Printf("report %s\n", b)
	return 0
}

// startCluster starts 3 node processes on 127.0.0.61-63 at one free port
// (each node its own address) and waits for a leader.
func startCluster(t *testing.T) *testcluster.Cluster {
	t.Helper()
	addrs, err := testcluster.LoopbackAddrs(61, 3)
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, 3, testcluster.WithAddrs(addrs...))
	c.Leader()
	return c
}

// runResult is what one run of the scenario ended with.
type runResult struct {
	stock, sales int
	paused       workerReport
	rejected     int // writes the database refused (fence.ErrFenced), all workers
}

// runScenario: a stock of 5; the paused worker takes the lock, checks the
// stock, and is stopped before its write; six concurrent workers sell
// the stock out after its lease runs out; then the paused worker wakes up
// and writes.
func runScenario(t *testing.T, c *testcluster.Cluster, pg *postgres, db *sql.DB, sku string, fenced bool) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "INSERT INTO stock (sku, qty) VALUES ($1, $2)", sku, initialStock); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rows, err := fence.NewRows(fence.RowsConfig{Table: "stock", KeyColumn: "sku"})
	if err != nil {
		t.Fatal(err)
	}

	// 1. The paused worker, a process of its own, reaches its write.
	w := exec.Command(os.Args[0], "-test.run=^$")
	w.Env = append(os.Environ(), "FENCE_PG_WORKER=1", "FENCE_PG_ENDPOINTS="+strings.Join(c.Addrs(), ","),
		"FENCE_PG_DSN="+pg.DSN, "FENCE_PG_SKU="+sku, "FENCE_PG_FENCED="+map[bool]string{true: "1", false: "0"}[fenced])
	stdin, err := w.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	w.Stderr = &stderr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Process.Signal(syscall.SIGCONT); _ = w.Process.Kill(); _ = w.Wait() }()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix) {
				t.Fatalf("paused worker: got %q, want %q...; stderr:\n%s", l, prefix, stderr.String())
			}
			return strings.TrimPrefix(l, prefix)
		case <-ctx.Done():
			t.Fatalf("paused worker: no %q line; stderr:\n%s", prefix, stderr.String())
		}
		return ""
	}
	pausedToken, _ := strconv.ParseUint(next("at-write "), 10, 64)

	// 2. Stop it there, as a GC pause or a stopped VM would. The line on
	// its stdin lets it go on with the write once it runs again.
	if err := w.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	t.Logf("paused worker (pid %d) holds token %d, stopped before its write", w.Process.Pid, pausedToken)

	// 3. Six concurrent workers buy until the stock is gone; they get the
	// key once the paused worker's lease has run out.
	var mu sync.Mutex
	res := runResult{}
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				token, err := buyOne(ctx, cl, db, rows, sku, fmt.Sprintf("buyer-%d", i), fenced, buyerLease, nil)
				if token != 0 && token <= pausedToken {
					t.Errorf("buyer-%d got token %d, not above the paused worker's %d", i, token, pausedToken)
				}
				switch {
				case errors.Is(err, errSoldOut):
					return
				case errors.Is(err, fence.ErrFenced):
					mu.Lock()
					res.rejected++
					mu.Unlock()
				case err != nil:
					t.Errorf("buyer-%d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var left int
	if err := db.QueryRowContext(ctx, "SELECT qty FROM stock WHERE sku = $1", sku).Scan(&left); err != nil {
		t.Fatal(err)
	}
	st, err := cl.CheckFence(ctx, sku, pausedToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the buyers sold out (stock %d); the paused worker's token %d current: %v", left, pausedToken, st.Current)
	if st.Current {
		t.Fatal("the paused worker's token is still current: its lease did not run out")
	}

	// 4. The paused worker wakes up and writes.
	if err := w.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(next("report ")), &res.paused); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("paused worker: %v; stderr:\n%s", err, stderr.String())
	}
	if res.paused.Outcome == "fenced" {
		res.rejected++
	}
	if err := db.QueryRowContext(ctx, "SELECT qty FROM stock WHERE sku = $1", sku).Scan(&res.stock); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sales WHERE sku = $1", sku).Scan(&res.sales); err != nil {
		t.Fatal(err)
	}
	return res
}

// The property of the fence: a worker paused past its lease, woken up
// after others sold the stock, cannot oversell, because PostgreSQL itself
// refuses its write (the row carries a higher token). The same run
// without the fence oversells: the scenario does exercise the race, so
// the fenced result is not luck.
func TestPausedWorkerCannotOversell(t *testing.T) {
	pg := startPostgres(t)
	db := pg.open(t)
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t)

	f := runScenario(t, c, pg, db, "sku-fenced", true)
	t.Logf("FENCED run: stock %d -> %d, %d sales, %d write(s) rejected by the database; paused worker (token %d): %s, lock lost %v: %s",
		initialStock, f.stock, f.sales, f.rejected, f.paused.Token, f.paused.Outcome, f.paused.Lost, f.paused.Err)
	u := runScenario(t, c, pg, db, "sku-unfenced", false)
	t.Logf("UNFENCED control: stock %d -> %d, %d sales (oversold by %d); paused worker (token %d): %s, lock lost %v: %s",
		initialStock, u.stock, u.sales, u.sales-initialStock, u.paused.Token, u.paused.Outcome, u.paused.Lost, u.paused.Err)

	if f.paused.Outcome != "fenced" || !f.paused.Lost {
		t.Errorf("fenced run: the paused worker's late write was %s (lock lost: %v), want refused by the database: %s", f.paused.Outcome, f.paused.Lost, f.paused.Err)
	}
	if f.stock != 0 || f.sales != initialStock || f.rejected != 1 {
		t.Errorf("fenced run: stock %d, sales %d, rejected %d; want 0, %d, 1", f.stock, f.sales, f.rejected, initialStock)
	}
	if u.paused.Outcome != "written" || u.stock >= 0 || u.sales <= initialStock {
		t.Errorf("unfenced control did not oversell (paused worker %s, stock %d, sales %d): the scenario does not exercise the race", u.paused.Outcome, u.stock, u.sales)
	}
}

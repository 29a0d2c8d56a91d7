//go:build pg

package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/fence"
)

// The rule is "not lower", checked on PostgreSQL with tokens of a real
// cluster: a re-entrant acquire keeps its token, and the same holder may
// write again with it (equal passes); the next holder's higher token
// writes; the first holder's token is refused from then on (lower fails),
// with nothing written; a missing row is ErrNoRow.
func TestRowsNotLowerWithRealTokens(t *testing.T) {
	pg := startPostgres(t)
	db := pg.open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mustExec(t, db, "CREATE TABLE doc (id TEXT PRIMARY KEY, body TEXT NOT NULL, fence_token BIGINT NOT NULL DEFAULT 0)")
	mustExec(t, db, "INSERT INTO doc (id, body) VALUES ('d1', '')")
	c := startCluster(t)
	cl, err := client.New(c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rows, err := fence.NewRows(fence.DefaultRowsConfig("doc"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(token uint64, body string) error {
		return rows.Update(ctx, db, "d1", token, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "UPDATE doc SET body = body || $1 WHERE id = 'd1'", body)
			return err
		})
	}

	a, err := cl.Acquire(ctx, []string{"doc/d1"}, client.WithOwner("alice"), client.WithExpire(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := write(a.Token(), "a1,"); err != nil {
		t.Fatal(err)
	}
	again, err := cl.Acquire(ctx, []string{"doc/d1"}, client.WithOwner("alice"), client.WithExpire(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if again.Token() != a.Token() {
		t.Fatalf("re-entrant acquire: token %d, want the held %d", again.Token(), a.Token())
	}
	if err := write(again.Token(), "a2,"); err != nil {
		t.Fatalf("the re-entrant holder's equal token was refused: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := cl.Acquire(ctx, []string{"doc/d1"}, client.WithOwner("bob"), client.WithExpire(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if b.Token() <= a.Token() {
		t.Fatalf("bob's token %d is not above alice's %d", b.Token(), a.Token())
	}
	if err := write(b.Token(), "b1,"); err != nil {
		t.Fatal(err)
	}
	if err := write(a.Token(), "late,"); !errors.Is(err, fence.ErrFenced) {
		t.Fatalf("alice's late write: %v, want ErrFenced", err)
	}
	var body string
	var stored int64
	if err := db.QueryRow("SELECT body, fence_token FROM doc WHERE id = 'd1'").Scan(&body, &stored); err != nil {
		t.Fatal(err)
	}
	if body != "a1,a2,b1," || uint64(stored) != b.Token() {
		t.Fatalf("row = %q under token %d, want \"a1,a2,b1,\" under %d", body, stored, b.Token())
	}
	if err := rows.Update(ctx, db, "no-such-doc", b.Token(), func(*sql.Tx) error { return nil }); !errors.Is(err, fence.ErrNoRow) {
		t.Fatalf("missing row: %v, want ErrNoRow", err)
	}
	if err := write(0, "x"); !errors.Is(err, fence.ErrNoToken) {
		t.Fatalf("token 0: %v, want ErrNoToken", err)
	}
}

// Concurrent claims of one row with interleaved tokens, on PostgreSQL
// under READ COMMITTED: the transactions that commit do so in token order
// (each logs its token; the log ids follow the order the row lock was
// taken), the highest token is the row's, and lower ones that came late
// were refused. This is the claim's WHERE re-checked after the row lock
// wait, not a lucky schedule: a refused count of 0 fails the test.
func TestRowsConcurrentClaims(t *testing.T) {
	pg := startPostgres(t)
	db := pg.open(t)
	db.SetMaxOpenConns(16)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mustExec(t, db, "CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL, fence_token BIGINT NOT NULL DEFAULT 0)")
	mustExec(t, db, "CREATE TABLE writes (seq SERIAL PRIMARY KEY, token BIGINT NOT NULL)")
	mustExec(t, db, "INSERT INTO counter (id, n) VALUES (1, 0)")
	rows, err := fence.NewRows(fence.DefaultRowsConfig("counter"))
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var mu sync.Mutex
	accepted, refused := 0, 0
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				token := uint64(i*writers + w + 1) // rounds of 8 racing tokens
				err := rows.Update(ctx, db, 1, token, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO writes (token) VALUES ($1)", int64(token)); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, "UPDATE counter SET n = n + 1 WHERE id = 1")
					return err
				})
				mu.Lock()
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, fence.ErrFenced):
					refused++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var n int
	var stored int64
	if err := db.QueryRow("SELECT n, fence_token FROM counter WHERE id = 1").Scan(&n, &stored); err != nil {
		t.Fatal(err)
	}
	q, err := db.Query("SELECT token FROM writes ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var prev int64
	logged := 0
	for q.Next() {
		var tok int64
		if err := q.Scan(&tok); err != nil {
			t.Fatal(err)
		}
		if tok < prev {
			t.Fatalf("write %d committed with token %d after token %d", logged, tok, prev)
		}
		prev = tok
		logged++
	}
	t.Logf("%d claims: %d accepted, %d refused; row token %d", writers*each, accepted, refused, stored)
	if n != accepted || logged != accepted || stored != writers*each || refused == 0 {
		t.Fatalf("counter %d, logged %d, accepted %d, refused %d, row token %d (want %d)", n, logged, accepted, refused, stored, writers*each)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

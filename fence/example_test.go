package fence_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/raftlock/raftlock/fence"
)

// Two holders of one lock, one after the other: the first paused past its
// lease, the second got the key with a higher token. When the first wakes
// up and writes, the Guard refuses it.
func Example() {
	var g fence.Guard
	stock := 5
	sell := func(token uint64) error {
		return g.Do("sku-1", token, func() error { stock--; return nil })
	}
	fmt.Println(sell(7)) // holder A, token 7
	fmt.Println(sell(9)) // A paused; the lease ran out; holder B got token 9
	err := sell(7)       // A wakes up and writes
	fmt.Println(errors.Is(err, fence.ErrFenced), stock)
	// Output:
	// <nil>
	// <nil>
	// true 3
}

// A re-entrant acquire keeps its token, so the same holder may write many
// times: the rule is "not lower", not "strictly higher".
func ExampleGuard_Do() {
	var g fence.Guard
	for _, token := range []uint64{4, 4, 5, 4} {
		err := g.Do("report", token, func() error { return nil })
		fmt.Println(token, err == nil)
	}
	// Output:
	// 4 true
	// 4 true
	// 5 true
	// 4 false
}

// The row pattern: the stock row keeps the highest token that wrote it.
// Update claims it for the caller's token in a transaction, then runs the
// writes; a stale holder's transaction is refused by the database itself,
// with an error wrapping ErrFenced. The table needs one column more:
//
//	ALTER TABLE stock ADD COLUMN fence_token BIGINT NOT NULL DEFAULT 0;
//
// Inside client.Execute the token is client.LockFromContext(ctx).Token().
// (This example needs a database; fence/pgtest runs the same code against
// a real PostgreSQL.)
func ExampleRows_Update() {
	sellOne := func(ctx context.Context, db *sql.DB, sku string, token uint64) error {
		rows, err := fence.NewRows(fence.RowsConfig{Table: "stock", KeyColumn: "sku"})
		if err != nil {
			return err
		}
		return rows.Update(ctx, db, sku, token, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "UPDATE stock SET qty = qty - 1 WHERE sku = $1", sku)
			return err
		})
	}
	_ = sellOne
}

// The one statement the row pattern rests on, for PostgreSQL and SQLite.
func ExampleRows_ClaimSQL() {
	rows, _ := fence.NewRows(fence.RowsConfig{Table: "stock", KeyColumn: "sku"})
	fmt.Println(rows.ClaimSQL())
	// Output:
	// UPDATE stock SET fence_token = $1 WHERE sku = $2 AND fence_token <= $1
}

// An HTTP API in front of a resource: callers send their fencing token in
// the Raftlock-Fencing-Token header; a stale one gets 409 Conflict.
func ExampleMiddleware() {
	var g fence.Guard
	api := fence.Middleware(&g, func(r *http.Request) string { return r.URL.Path },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "sold") }))
	srv := httptest.NewServer(api)
	defer srv.Close()
	for _, token := range []uint64{12, 15, 12} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/stock/sku-1", nil)
		fence.SetHeader(req.Header, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(token, resp.StatusCode)
	}
	// Output:
	// 12 200
	// 15 200
	// 12 409
}

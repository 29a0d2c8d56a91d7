package fence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"regexp"
)

// RowsConfig names the table whose rows are fenced and its two columns.
// The token column is a BIGINT that starts at 0:
//
//	ALTER TABLE stock ADD COLUMN fence_token BIGINT NOT NULL DEFAULT 0;
//
// (SQLite: INTEGER NOT NULL DEFAULT 0.) Names are plain SQL identifiers
// (letters, digits, _; "schema.table" for the table), written into the
// statements unquoted.
type RowsConfig struct {
	// Table is the table name. Required.
	Table string
	// KeyColumn names the row (its primary key, or any unique column).
	// Default "id".
	KeyColumn string
	// TokenColumn keeps the highest token that wrote the row. Default
	// "fence_token".
	TokenColumn string
}

// DefaultRowsConfig returns the configuration for table with the default
// columns "id" and "fence_token".
func DefaultRowsConfig(table string) RowsConfig {
	return RowsConfig{Table: table, KeyColumn: "id", TokenColumn: "fence_token"}
}

var ident = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var tableIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// Validate checks every name, naming the field at fault.
func (c RowsConfig) Validate() error {
	if !tableIdent.MatchString(c.Table) {
		return fmt.Errorf("fence: Table %q is not a plain SQL identifier", c.Table)
	}
	if !ident.MatchString(c.KeyColumn) {
		return fmt.Errorf("fence: KeyColumn %q is not a plain SQL identifier", c.KeyColumn)
	}
	if !ident.MatchString(c.TokenColumn) {
		return fmt.Errorf("fence: TokenColumn %q is not a plain SQL identifier", c.TokenColumn)
	}
	return nil
}

// Rows claims rows of one table for fencing tokens: the row pattern. Each
// row keeps the highest token that wrote it; a transaction claims the row
// for its token before it writes, and the claim succeeds only if the
// stored token is not higher. The claim is one statement (ClaimSQL):
//
//	UPDATE stock SET fence_token = $1 WHERE sku = $2 AND fence_token <= $1
//
// It works unchanged on PostgreSQL and SQLite ($1 and $2 are positional
// in both). Why it is safe under concurrency: the UPDATE takes the row's
// write lock until the transaction ends. In PostgreSQL under READ
// COMMITTED (the default) a concurrent claim waits for that lock and then
// re-checks its WHERE against the committed row, so a lower token that
// comes second finds the higher one and claims nothing; under REPEATABLE
// READ or SERIALIZABLE it fails with a serialization error instead, which
// also writes nothing. SQLite runs one writing transaction at a time.
//
// Every writer of the protected data must claim the row first, in the
// same transaction as its writes: a claim is no protection for writes
// made outside its transaction.
type Rows struct {
	cfg   RowsConfig
	claim string
	read  string
}

// NewRows checks cfg (empty columns take the defaults) and prepares the
// statements.
func NewRows(cfg RowsConfig) (*Rows, error) {
	def := DefaultRowsConfig(cfg.Table)
	if cfg.KeyColumn == "" {
		cfg.KeyColumn = def.KeyColumn
	}
	if cfg.TokenColumn == "" {
		cfg.TokenColumn = def.TokenColumn
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Rows{
		cfg:   cfg,
		claim: fmt.Sprintf("UPDATE %s SET %s = $1 WHERE %s = $2 AND %s <= $1", cfg.Table, cfg.TokenColumn, cfg.KeyColumn, cfg.TokenColumn),
		read:  fmt.Sprintf("SELECT %s FROM %s WHERE %s = $1", cfg.TokenColumn, cfg.Table, cfg.KeyColumn),
	}, nil
}

// ClaimSQL returns the claim statement; its arguments are the token ($1)
// and the row's key ($2).
func (r *Rows) ClaimSQL() string { return r.claim }

// Querier is what Claim needs of a transaction: *sql.Tx, or *sql.Conn /
// *sql.DB inside an explicit BEGIN.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Claim claims the row named key for token in the transaction q. On
// success the row carries token (until a higher one claims it) and holds
// the row lock until q ends. It returns an error wrapping ErrFenced if a
// higher token has claimed the row (nothing changed), ErrNoRow if there is
// no such row, ErrNoToken or ErrBadToken for a token that cannot be right.
func (r *Rows) Claim(ctx context.Context, q Querier, key any, token uint64) error {
	t, err := sqlToken(token)
	if err != nil {
		return err
	}
	res, err := q.ExecContext(ctx, r.claim, t, key)
	if err != nil {
		return fmt.Errorf("fence: claim %s row %v: %w", r.cfg.Table, key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("fence: claim %s row %v: %w", r.cfg.Table, key, err)
	}
	if n > 0 {
		return nil
	}
	var highest int64
	switch err := q.QueryRowContext(ctx, r.read, key).Scan(&highest); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s row %v", ErrNoRow, r.cfg.Table, key)
	case err != nil:
		return fmt.Errorf("fence: read %s row %v: %w", r.cfg.Table, key, err)
	}
	return fmt.Errorf("%w: token %d is lower than %d, which wrote %s row %v", ErrFenced, token, highest, r.cfg.Table, key)
}

// Update runs fn in a new transaction of db that first claims the row
// named key for token, and commits if fn returns nil; on any error
// (the claim's, fn's or the commit's) nothing fn wrote is kept. fn does
// its writes through tx. Returns an error wrapping ErrFenced when a
// higher token has written the row: the caller lost its lock and must not
// retry with this token.
func (r *Rows) Update(ctx context.Context, db *sql.DB, key any, token uint64, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fence: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit: sql.ErrTxDone, ignored
	if err := r.Claim(ctx, tx, key, token); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fence: commit: %w", err)
	}
	return nil
}

// sqlToken turns a token into a BIGINT argument (database/sql refuses
// uint64 values above 2^63-1, and so do BIGINT columns).
func sqlToken(token uint64) (int64, error) {
	if token == 0 {
		return 0, ErrNoToken
	}
	if token > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %d does not fit a BIGINT column", ErrBadToken, token)
	}
	return int64(token), nil
}

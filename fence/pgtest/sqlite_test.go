//go:build pg

package pgtest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/fence"
)

// The claim statement of fence.Rows, unchanged, on SQLite (through the
// sqlite3 command-line shell, binding $1 and $2 as parameters): the first
// token and a higher one claim the row, a lower one claims nothing, an
// equal one claims it again. This checks the SQL text only; no SQLite
// driver is used (package fence needs none, and the module carries none).
func TestClaimSQLOnSQLite(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("sqlite3 shell not found (make fence-pg installs Debian's sqlite3): %v", err)
	}
	rows, err := fence.NewRows(fence.RowsConfig{Table: "stock", KeyColumn: "sku"})
	if err != nil {
		t.Fatal(err)
	}
	script := []string{
		"CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, fence_token INTEGER NOT NULL DEFAULT 0);",
		"INSERT INTO stock (sku, qty) VALUES ('sku-1', 5);",
		".parameter init",
		".parameter set $2 'sku-1'",
	}
	for _, tok := range []string{"7", "9", "7", "9"} {
		script = append(script, ".parameter set $1 "+tok, rows.ClaimSQL()+";", "SELECT "+tok+", changes();")
	}
	script = append(script, "SELECT fence_token FROM stock;")
	cmd := exec.Command(shell, filepath.Join(t.TempDir(), "f.db"))
	cmd.Stdin = strings.NewReader(strings.Join(script, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	want := "7|1\n9|1\n7|0\n9|1\n9\n"
	if string(out) != want {
		t.Fatalf("sqlite3 printed\n%s\nwant (token|rows claimed, then the row's token)\n%s", out, want)
	}
	v, _ := exec.Command(shell, "--version").Output()
	t.Logf("claim SQL on SQLite %s: 7 claims, 9 claims, late 7 claims nothing, 9 again claims", strings.Fields(string(v))[0])
}

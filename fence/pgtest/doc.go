// Package pgtest proves the row pattern of package fence on a real
// PostgreSQL against a real 3-node raftlock cluster of node processes: a
// worker paused (SIGSTOP) past its lease while others take over cannot
// oversell, because the database refuses its late write; the same run
// without the fence oversells. It also runs the claim statement on SQLite
// (the sqlite3 shell).
//
// The tests carry the build tag pg. make fence-pg installs Debian's
// postgresql when it is missing and runs them:
//
//	go test -tags pg -count=1 -v ./fence/pgtest/
//
// Each test starts its own PostgreSQL server (initdb on a temporary
// directory, a free port on 127.0.0.1, as the postgres user when run as
// root) and fails, never skips, when it cannot.
package pgtest

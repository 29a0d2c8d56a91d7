package cluster

import (
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
)

// A follower whose log's tail is cut (a new leader overwrote entries it
// had not committed) and that is then stopped must open its log again:
// raft-wal before v0.4.1 marked the cut segment sealed without its index
// block, and the node could never start again ("sealed segment has no
// index block", hashicorp/raft-wal issue 31, fixed by pull request 33).
// Both log stores are held to it.
func TestLogReopensAfterTailTruncation(t *testing.T) {
	for _, store := range []string{LogStoreWAL, LogStoreBolt} {
		t.Run(store, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir, cfg.LogStore = t.TempDir(), store
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			s, err := openStorage(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			entries := func(from, to uint64, term uint64) []*raft.Log {
				var out []*raft.Log
				for i := from; i <= to; i++ {
					out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte{byte(i)}})
				}
				return out
			}
			if err := s.logs.StoreLogs(entries(1, 10, 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.logs.DeleteRange(8, 10); err != nil { // the tail cut
				t.Fatal(err)
			}
			if err := s.logs.StoreLogs(entries(8, 12, 2)); err != nil {
				t.Fatal(err)
			}
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			s, err = openStorage(cfg, log)
			if err != nil {
				t.Fatalf("reopen after a tail cut: %v", err)
			}
			defer s.close()
			for i := uint64(1); i <= 12; i++ {
				var l raft.Log
				if err := s.logs.GetLog(i, &l); err != nil {
					t.Fatalf("entry %d after reopening: %v", i, err)
				}
				if want := uint64(1 + i/8); l.Term != want {
					t.Fatalf("entry %d has term %d, want %d", i, l.Term, want)
				}
			}
		})
	}
}

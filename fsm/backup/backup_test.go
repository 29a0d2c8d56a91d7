package backup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/raftlock/raftlock/fsm"
)

// sample returns a small version 2 table's backup file and its header.
func sample(t *testing.T) ([]byte, Header) {
	t.Helper()
	return sampleBytes(t)
}

func sampleBytes(t testing.TB) ([]byte, Header) {
	t.Helper()
	tab := fsm.New(fsm.DefaultConfig())
	tab.Apply(1, &fsm.Command{Op: fsm.OpSetVersion, Time: int64(time.Hour), ClusterVersion: fsm.Version2})
	tab.Apply(2, &fsm.Command{Op: fsm.OpAcquire, Time: int64(time.Hour) + 1, Keys: []string{"k1", "k2"}, Owner: "o", Expire: time.Minute, RequestID: "r1"})
	tab.Apply(3, &fsm.Command{Op: fsm.OpAcquire, Time: int64(time.Hour) + 2, Keys: []string{"k1"}, Owner: "p", Expire: time.Minute, Wait: time.Minute, RequestID: "r2"})
	state := tab.AppendSnapshot(nil)
	h := Header{ClusterID: "c0ffee", NodeID: "n2", Index: 5, Term: 3, ClusterTime: tab.Now(), ClusterVersion: tab.Version(),
		Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), StateSize: uint64(len(state))}
	path := filepath.Join(t.TempDir(), "b.rlb")
	h, err := WriteFile(path, h, bytes.NewReader(state))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// A file written by WriteFile reads back with the same header and state,
// through a reader that returns one byte at a time too.
func TestRoundTrip(t *testing.T) {
	b, want := sample(t)
	h, tab, err := Load(fsm.DefaultConfig(), iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	if h != want || h.FormatVersion != FormatVersion {
		t.Fatalf("header = %+v\nwant     %+v", h, want)
	}
	if st := tab.Stats(); st.Locks != 2 || st.Waiters != 1 || st.Requests != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

// Every single damaged byte is refused, never loaded: in the magic as not
// a backup, in the version as a newer (or invalid) format, anywhere else by
// a checksum or a length that no longer fits.
func TestEveryFlippedByteIsRefused(t *testing.T) {
	b, _ := sample(t)
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0xff
		_, _, err := Load(fsm.DefaultConfig(), bytes.NewReader(bad))
		if err == nil {
			t.Fatalf("byte %d flipped: loaded", i)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotBackup) && !errors.Is(err, ErrNewerFormat) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("byte %d flipped: %v, not one of the package's errors", i, err)
		}
		if i >= prefixLen && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("byte %d flipped (past the prefix): %v", i, err)
		}
	}
}

// A file cut anywhere is refused; one with bytes after the state too.
func TestTruncatedOrExtendedIsRefused(t *testing.T) {
	b, _ := sample(t)
	for n := range len(b) {
		_, _, err := Parse(b[:n])
		if err == nil {
			t.Fatalf("cut to %d of %d bytes: accepted", n, len(b))
		}
		if n >= len(magic) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut to %d bytes: %v, want ErrTruncated", n, err)
		}
	}
	_, _, err := Parse(append(bytes.Clone(b), 0))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "1 bytes follow") {
		t.Fatalf("one byte too many: %v", err)
	}
}

// A file of a newer format is refused with a message naming both versions,
// before anything else is read.
func TestNewerFormatNamesBothVersions(t *testing.T) {
	b, _ := sample(t)
	newer := bytes.Clone(b[:prefixLen]) // the rest of a newer format may be anything
	newer[len(magic)+3] = FormatVersion + 1
	_, _, err := Parse(append(newer, "something a later format wrote"...))
	if !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"format version 2", "up to 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not say %q", err, want)
		}
	}
}

// A header that disagrees with its state (a file put together by hand from
// two backups, say) is refused when loaded.
func TestHeaderMustMatchState(t *testing.T) {
	b, h := sample(t)
	_, state, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Header){
		"cluster time":    func(h *Header) { h.ClusterTime++ },
		"cluster version": func(h *Header) { h.ClusterVersion = 1 },
		"index":           func(h *Header) { h.Index = 2 },
	} {
		bad := h
		edit(&bad)
		if _, err := Decode(fsm.DefaultConfig(), &bad, state); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// WriteFile leaves the target alone, and no temporary file behind, when
// the state it is given is short or fails.
func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.rlb")
	if err := os.WriteFile(path, []byte("the previous backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := Header{ClusterVersion: 1, StateSize: 100}
	if _, err := WriteFile(path, h, bytes.NewReader(make([]byte, 99))); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short state: %v", err)
	}
	if _, err := WriteFile(path, h, bytes.NewReader(make([]byte, 101))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("long state: %v", err)
	}
	if _, err := WriteFile(path, h, iotest.TimeoutReader(bytes.NewReader(make([]byte, 100)))); err == nil {
		t.Fatal("failing reader: no error")
	}
	got, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(dir)
	if string(got) != "the previous backup" || len(entries) != 1 {
		t.Fatalf("after failed writes: %q, %d entries", got, len(entries))
	}
}

// A file whose state is of a lock-table version this build does not know
// (written by a newer build, checksums intact) is refused naming both
// versions.
func TestNewerStateVersionNamesBothVersions(t *testing.T) {
	b, h := sample(t)
	_, state, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	newer := bytes.Clone(state)
	newer[4] = byte(fsm.SupportedVersion + 1) // the version byte after the magic
	h.ClusterVersion = fsm.SupportedVersion + 1
	path := filepath.Join(t.TempDir(), "newer.rlb")
	if _, err := WriteFile(path, h, bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, err = Load(fsm.DefaultConfig(), f)
	if !errors.Is(err, fsm.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 3") || !strings.Contains(err.Error(), "up to 2") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzRead: whatever the bytes, Load returns a table only when Read found
// every checksum and length right, and never panics or allocates beyond
// the limits.
//
//	go test -run '^$' -fuzz=FuzzRead -fuzztime=60s ./fsm/backup/
func FuzzRead(f *testing.F) {
	b, _ := sampleBytes(f)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, tab, err := Load(fsm.DefaultConfig(), bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, _, err := Parse(data); err != nil || tab == nil || h.StateSize > MaxStateBytes {
			t.Fatalf("loaded, but Parse says %v", err)
		}
	})
}

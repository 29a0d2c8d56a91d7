package history

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func sampleOps() []Op {
	return []Op{
		{ID: 1, Client: 0, Kind: KindAcquire, Key: "k", Owner: "o1", RequestID: "r1", Node: "n1",
			Invoke: 10, Return: 20, Outcome: OutcomeOK, Expire: 2 * time.Second, Token: 7, Deadline: 1_900_000_010},
		{ID: 2, Client: 1, Kind: KindRead, Key: "k", Invoke: 21, Return: 30, Outcome: OutcomeOK, Held: true, ReadOwner: "o1", Token: 7},
		{ID: 3, Client: 0, Kind: KindRelease, Key: "k", Owner: "o1", RequestID: "r3", Invoke: 31, Return: 40,
			Outcome: OutcomeOK, Released: true, Token: 7, Resolved: true},
		{ID: 4, Client: 2, Kind: KindWrite, Key: "k", Owner: "o1", Invoke: 41, Return: 50, Outcome: OutcomeFail, Token: 7, Error: "stale token"},
		{ID: 5, Client: 2, Kind: KindRefresh, Key: "k", Owner: "o1", RequestID: "r5", Invoke: 51, Return: 60, Outcome: OutcomeUnknown},
	}
}

// Operations survive a round trip through JSON lines, field for field.
func TestOpsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	ops := sampleOps()
	if err := SaveOps(path, ops); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOps(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ops) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ops)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != len(ops) {
		t.Fatalf("%d lines for %d ops", n, len(ops))
	}
	// The documented field names are the wire format.
	for _, field := range []string{`"request_id":"r1"`, `"read_owner":"o1"`, `"expire":2000000000`, `"deadline":1900000010`, `"resolved":true`} {
		if !strings.Contains(string(data), field) {
			t.Fatalf("encoded history lacks %s:\n%s", field, data)
		}
	}
}

// A misspelt field or a broken line is an error naming the line, not a
// silently zeroed operation.
func TestReadOpsRejectsBadLines(t *testing.T) {
	for _, in := range []string{
		`{"id":1,"kind":"acquire","key":"k","invoke":1,"return":2,"outcome":"ok","tokn":5}`,
		`{"id":1,"kind":"acquire"`,
		`{"id":1} {"id":2}`,
	} {
		_, err := ReadOps(strings.NewReader("\n" + in + "\n"))
		if !errors.Is(err, ErrBadLine) || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("ReadOps(%s) error = %v, want ErrBadLine at line 2", in, err)
		}
	}
	if _, err := LoadOps(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("LoadOps of a missing file succeeded")
	}
}

// The OpWriter appends whole lines from many clients at once.
func TestOpWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w := NewOpWriter(&buf)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := w.Write(Op{ID: c*100 + i, Client: c, Kind: KindRead, Key: "k", Outcome: OutcomeOK}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	ops, err := ReadOps(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 400 {
		t.Fatalf("read %d ops, want 400", len(ops))
	}
}

func journalLines(t *testing.T, entries ...Entry) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJournal(&buf, entries); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// A journal written by a node that was killed and restarted: its torn last
// line is dropped, a record appended after it on the same line is kept,
// repeats and restore markers are returned in file order.
func TestReadJournalTornLines(t *testing.T) {
	e1 := Entry{Index: 1, Time: 100, Op: EntryAcquire, RequestID: "r1", Code: CodeOK, Keys: []string{"k"}, Owner: "o", Tokens: []uint64{1},
		Events: []Event{{RequestID: "r0", Code: CodeOK, Keys: []string{"k"}, Owner: "w", Tokens: []uint64{1}}}}
	e2 := Entry{Index: 2, Time: 200, Op: EntryTick, Code: CodeOK, Expired: 1}
	restore := Entry{Restore: 1}
	full := journalLines(t, e1, e2)
	torn := full[:len(full)-10] // e2 cut by the kill, no newline

	t.Run("torn at the end", func(t *testing.T) {
		got, n, err := ReadJournal(strings.NewReader(torn))
		if err != nil || n != 1 || !reflect.DeepEqual(got, []Entry{e1}) {
			t.Fatalf("got %+v, torn %d, err %v", got, n, err)
		}
	})
	t.Run("torn, then the restarted node appended", func(t *testing.T) {
		after := journalLines(t, restore, e2)
		got, n, err := ReadJournal(strings.NewReader(torn + after))
		if err != nil || n != 1 || !reflect.DeepEqual(got, []Entry{e1, restore, e2}) {
			t.Fatalf("got %+v, torn %d, err %v", got, n, err)
		}
	})
	t.Run("a torn line inside an event list is not mistaken for a record", func(t *testing.T) {
		line := journalLines(t, e1)
		cut := line[:strings.Index(line, `"owner":"w"`)] // ends inside the event object
		got, n, err := ReadJournal(strings.NewReader(cut + journalLines(t, e2)))
		if err != nil || n != 1 || !reflect.DeepEqual(got, []Entry{e2}) {
			t.Fatalf("got %+v, torn %d, err %v", got, n, err)
		}
	})
	t.Run("garbage in the middle is an error", func(t *testing.T) {
		_, _, err := ReadJournal(strings.NewReader(journalLines(t, e1) + "not json\n" + journalLines(t, e2)))
		if !errors.Is(err, ErrBadLine) {
			t.Fatalf("err = %v, want ErrBadLine", err)
		}
	})
	t.Run("load from a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "n1.journal")
		if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
			t.Fatal(err)
		}
		got, n, err := LoadJournal(path)
		if err != nil || n != 0 || !reflect.DeepEqual(got, []Entry{e1, e2}) {
			t.Fatalf("got %+v, torn %d, err %v", got, n, err)
		}
	})
	t.Run("field names", func(t *testing.T) {
		for _, f := range []string{`"i":1`, `"t":100`, `"rid":"r1"`, `"tokens":[1]`, `"events":[{"rid":"r0"`} {
			if !strings.Contains(full, f) {
				t.Fatalf("journal line lacks %s: %s", f, full)
			}
		}
		if r := journalLines(t, restore); !strings.Contains(r, `"restore":1`) {
			t.Fatalf("restore line: %s", r)
		}
	})
}

// Journal helpers: one entry per index in index order, the restore mark,
// and grants (direct, not duplicates, and hand-offs).
func TestJournalHelpers(t *testing.T) {
	j := []Entry{
		{Index: 3, Op: EntryAcquire, RequestID: "a", Code: CodeOK, Keys: []string{"k", "l"}, Owner: "o", Tokens: []uint64{3, 3}},
		{Index: 4, Op: EntryAcquire, RequestID: "a", Code: CodeOK, Keys: []string{"k", "l"}, Owner: "o", Tokens: []uint64{3, 3}, Duplicate: true},
		{Restore: 3},
		{Index: 4, Op: EntryAcquire, RequestID: "a", Code: CodeOK, Keys: []string{"k", "l"}, Owner: "o", Tokens: []uint64{3, 3}, Duplicate: true},
		{Index: 6, Op: EntryRelease, Code: CodeOK, Events: []Event{
			{RequestID: "w1", Code: CodeOK, Keys: []string{"k"}, Owner: "p", Tokens: []uint64{6}},
			{RequestID: "w2", Code: CodeTimedOut, Keys: []string{"l"}, Owner: "q"},
		}},
		{Index: 5, Op: EntryTick, Code: CodeOK},
	}
	applied := Applied(j)
	var idx []uint64
	for _, e := range applied {
		idx = append(idx, e.Index)
	}
	if fmt.Sprint(idx) != "[3 4 5 6]" {
		t.Fatalf("Applied indexes = %v", idx)
	}
	if RestoredUpTo(j) != 3 || RestoredUpTo(j[:2]) != 0 {
		t.Fatal("RestoredUpTo")
	}
	var grants []string
	for _, e := range applied {
		for _, g := range e.Grants() {
			grants = append(grants, fmt.Sprintf("%d:%s:%s:%d:%v", g.Index, g.Key, g.Owner, g.Token, g.HandOff))
		}
	}
	if got := strings.Join(grants, " "); got != "3:k:o:3:false 3:l:o:3:false 6:k:p:6:true" {
		t.Fatalf("grants = %s", got)
	}
	if MaxToken(nil) != 0 || MaxToken([]uint64{4, 9, 2}) != 9 {
		t.Fatal("MaxToken")
	}
}

// The Op contract and the derived times.
func TestOpHelpers(t *testing.T) {
	ops := sampleOps()
	for _, op := range ops {
		if err := op.Validate(); err != nil {
			t.Fatalf("sample op %d: %v", op.ID, err)
		}
	}
	if ops[0].EffectiveReturn() != 20 || ops[2].EffectiveReturn() != Infinity || ops[4].EffectiveReturn() != Infinity {
		t.Fatal("EffectiveReturn")
	}
	if !ops[2].Acknowledged() || ops[2].SeenOK() || !ops[0].SeenOK() || ops[4].Acknowledged() {
		t.Fatal("Acknowledged/SeenOK")
	}
	for _, bad := range []Op{
		{ID: 9, Kind: "lock", Key: "k", Outcome: OutcomeOK},
		{ID: 9, Kind: KindRead, Key: "k", Outcome: "maybe"},
		{ID: 9, Kind: KindRead, Outcome: OutcomeOK},
		{ID: 9, Kind: KindRead, Key: "k", Outcome: OutcomeOK, Invoke: 5, Return: 4},
		{ID: 9, Kind: KindRead, Key: "k", Outcome: OutcomeUnknown, Resolved: true},
		{ID: 9, Kind: KindAcquire, Key: "k", Outcome: OutcomeOK, Expire: -1},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidOp) {
			t.Fatalf("Validate(%+v) = %v, want ErrInvalidOp", bad, err)
		}
	}
	if FormatTime(1_500_000_000) != "1.500000s" || FormatTime(Infinity) != "+inf" {
		t.Fatal("FormatTime")
	}
}

// The timeline round-trips as one JSON document and answers which faults
// were active when.
func TestTimeline(t *testing.T) {
	tl := Timeline{
		{Name: "kill", Targets: []string{"n1"}, Start: 1e9, End: 3e9},
		{Name: "partition", Targets: []string{"n2", "n3"}, Start: 2e9, End: 5e9, Detail: "n2,n3 | n1"},
		{Name: "pause", Targets: []string{"n3"}, Start: 6e9}, // never healed
	}
	path := filepath.Join(t.TempDir(), "timeline.json")
	if err := SaveTimeline(path, tl); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTimeline(path)
	if err != nil || !reflect.DeepEqual(got, tl) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	names := func(fs []Fault) string {
		var s []string
		for _, f := range fs {
			s = append(s, f.Name)
		}
		return strings.Join(s, ",")
	}
	if a := names(tl.Active(2.5e9)); a != "kill,partition" {
		t.Fatalf("Active(2.5s) = %s", a)
	}
	if a := names(tl.Active(100e9)); a != "pause" {
		t.Fatalf("Active(100s) = %s", a)
	}
	if a := names(tl.Overlapping(3.5e9, 6e9)); a != "partition,pause" {
		t.Fatalf("Overlapping = %s", a)
	}
	if d := tl.Describe(0, 0.5e9); d != "no fault" {
		t.Fatalf("Describe = %s", d)
	}
	if s := tl[1].String(); s != "partition[n2,n3] 2.000000s..5.000000s (n2,n3 | n1)" {
		t.Fatalf("String = %s", s)
	}
	if s := tl[2].String(); !strings.HasSuffix(s, "..+inf") {
		t.Fatalf("String = %s", s)
	}
	if err := os.WriteFile(path, []byte(`[{"name":"kill","strat":1}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTimeline(path); !errors.Is(err, ErrBadLine) {
		t.Fatalf("misspelt field: err = %v", err)
	}
}

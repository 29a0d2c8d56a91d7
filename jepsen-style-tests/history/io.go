package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// maxLine bounds one JSON line (an entry names at most 64 keys of 512 bytes).
const maxLine = 4 << 20

// WriteOps writes ops as JSON lines.
func WriteOps(w io.Writer, ops []Op) error {
	return writeLines(w, ops, func(o *Op) string { return fmt.Sprintf("op %d", o.ID) })
}

// writeLines writes items as JSON lines; name says which item failed.
func writeLines[T any](w io.Writer, items []T, name func(*T) string) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range items {
		if err := enc.Encode(&items[i]); err != nil {
			return fmt.Errorf("encode %s: %w", name(&items[i]), err)
		}
	}
	return bw.Flush()
}

// ReadOps reads JSON lines written by WriteOps or an OpWriter. Blank lines
// are skipped; any other undecodable line is an error naming its number.
func ReadOps(r io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var op Op
		if err := strictUnmarshal(line, &op); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadLine, n, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ops: %w", err)
	}
	return ops, nil
}

// SaveOps writes ops to path as JSON lines, replacing the file.
func SaveOps(path string, ops []Op) error {
	return writeFile(path, func(w io.Writer) error { return WriteOps(w, ops) })
}

// LoadOps reads an operations file written by SaveOps or an OpWriter.
func LoadOps(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ops, err := ReadOps(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ops, nil
}

// OpWriter appends operations to a JSON-lines stream as they complete, so a
// run that dies still leaves every finished operation behind. It is safe for
// concurrent use by the workload's clients.
type OpWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewOpWriter returns an OpWriter on w. Each Write is one write call on w
// (json.Encoder buffers one value), so w need not be buffered.
func NewOpWriter(w io.Writer) *OpWriter {
	return &OpWriter{enc: json.NewEncoder(w)}
}

// Write appends one operation.
func (w *OpWriter) Write(op Op) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(&op); err != nil {
		return fmt.Errorf("encode op %d: %w", op.ID, err)
	}
	return nil
}

// ReadJournal reads a node's journal (JSON lines of Entry) in file order,
// repeats and restore markers included. It returns the number of torn lines
// it met: a line left partly written by a SIGKILL, either alone at the end of
// the file or followed on the same line by the first record the restarted
// node appended. A torn prefix is dropped (the entry it began is lost from
// this journal, as if the node had crashed before writing it) and a complete
// record after it is kept. Any other undecodable line is an error.
func ReadJournal(r io.Reader) (entries []Entry, torn int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := strictUnmarshal(line, &e); err == nil {
			entries = append(entries, e)
			continue
		}
		torn++
		if rest, ok := recoverTorn(line); ok {
			entries = append(entries, rest)
			continue
		}
		// Only the very last line may be torn with nothing after it.
		if !lastLine(sc) {
			return nil, torn, fmt.Errorf("%w: journal line %d: %q", ErrBadLine, n, truncate(line, 120))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, torn, fmt.Errorf("read journal: %w", err)
	}
	return entries, torn, nil
}

// lastLine reports whether the scanner has no further non-blank line. It
// consumes the rest of the input, which is fine: the caller stops either way.
func lastLine(sc *bufio.Scanner) bool {
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			return false
		}
	}
	return true
}

// recoverTorn looks for a complete record that starts after a torn prefix
// on the same line, trying each `{"` from the left.
func recoverTorn(line []byte) (Entry, bool) {
	for i := 1; i < len(line); i++ {
		j := bytes.Index(line[i:], []byte(`{"`))
		if j < 0 {
			break
		}
		i += j
		var e Entry
		if strictUnmarshal(line[i:], &e) == nil {
			return e, true
		}
	}
	return Entry{}, false
}

// LoadJournal reads a journal file; see ReadJournal.
func LoadJournal(path string) ([]Entry, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	entries, torn, err := ReadJournal(f)
	if err != nil {
		return nil, torn, fmt.Errorf("%s: %w", path, err)
	}
	return entries, torn, nil
}

// WriteJournal writes entries as JSON lines, the format nodes write. Tests
// and tools use it; nodes have their own writer.
func WriteJournal(w io.Writer, entries []Entry) error {
	return writeLines(w, entries, func(e *Entry) string { return fmt.Sprintf("entry %d", e.Index) })
}

// SaveTimeline writes the timeline to path as one indented JSON document.
func SaveTimeline(path string, tl Timeline) error {
	if tl == nil {
		tl = Timeline{}
	}
	return writeFile(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(tl)
	})
}

// LoadTimeline reads a timeline written by SaveTimeline.
func LoadTimeline(path string) (Timeline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tl Timeline
	if err := strictUnmarshal(b, &tl); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrBadLine, err)
	}
	return tl, nil
}

// strictUnmarshal decodes exactly one JSON value with no unknown fields, so
// a misspelt field in a hand-written history is an error, not a zero value.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

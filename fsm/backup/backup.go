// Package backup reads and writes raftlock backup files: a small header
// that says where and when a lock table snapshot was taken, followed by the
// snapshot itself in the lock table's own encoding (package fsm), all of it
// checksummed.
//
// Layout, format version 1 (integers big-endian, varints as in
// encoding/binary):
//
//	magic "RLBACKUP" (8 bytes)
//	format version (uint32)
//	header length H (uint32), at most MaxHeaderBytes
//	header (H bytes): cluster id, node id (uvarint-prefixed strings),
//	  Raft index, term (uvarint), cluster time (varint, ns),
//	  cluster version (uvarint), created (varint, Unix ns),
//	  state length (uvarint), SHA-256 of the state (32 bytes)
//	CRC-32 (IEEE) of everything above (uint32)
//	state (state length bytes): fsm.Table.AppendSnapshot's encoding
//
// and nothing after it. The version comes first, so a file of a newer
// format is refused by name, whatever else changed; the header has its own
// checksum, so a damaged header is refused before its lengths are
// believed; the state's SHA-256 covers every byte after it.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/raftlock/raftlock/fsm"
)

// FormatVersion is the backup file format this build writes, and the
// newest it reads.
const FormatVersion = 1

// Limits of a backup file.
const (
	// MaxHeaderBytes bounds the header (ids of at most a few hundred bytes
	// and a few numbers).
	MaxHeaderBytes = 4 << 10
	// MaxStateBytes bounds the state a file may hold: 1 GiB, room for the
	// lock table's own limits (10 million locks of short keys, 500,000
	// remembered request ids, 100,000 waiters) with keys of ~50 bytes. A
	// million locks take about 40 MiB.
	MaxStateBytes = 1 << 30
)

const magic = "RLBACKUP"

// prefixLen is the magic, the version and the header length.
const prefixLen = len(magic) + 4 + 4

// Errors of reading a backup file.
var (
	// ErrNotBackup: the file does not start like a raftlock backup.
	ErrNotBackup = errors.New("not a raftlock backup file")
	// ErrNewerFormat: the file's format version is newer than this build
	// reads.
	ErrNewerFormat = errors.New("backup file of a newer format")
	// ErrCorrupt: a checksum does not match, or the file does not parse:
	// it was damaged (or edited) after it was written.
	ErrCorrupt = errors.New("backup file is corrupt")
	// ErrTruncated: the file ends before the state its header announces.
	ErrTruncated = errors.New("backup file is truncated")
)

// Header says where and when the state of a backup was taken.
type Header struct {
	// FormatVersion is the file's format version (Read sets it; Write
	// writes FormatVersion).
	FormatVersion uint32
	// ClusterID names the cluster the snapshot was taken from ("" when
	// the node did not know it).
	ClusterID string
	// NodeID is the node that took the snapshot.
	NodeID string
	// Index and Term are the Raft index and term of the snapshot: it holds
	// every entry committed up to Index.
	Index, Term uint64
	// ClusterTime is the cluster time of the table (ns).
	ClusterTime int64
	// ClusterVersion is the table's cluster version (the version of the
	// state's encoding).
	ClusterVersion uint32
	// Created is when the node took the snapshot, by its wall clock
	// (informational).
	Created time.Time
	// StateSize and StateSHA256 describe the state that follows.
	StateSize   uint64
	StateSHA256 [sha256.Size]byte
}

// AppendHeader appends the file's start (magic, version, header, header
// CRC) for h, with format version FormatVersion. Its length does not
// depend on StateSHA256, so a writer may write it once before the state
// with a zero checksum and again after.
func AppendHeader(dst []byte, h *Header) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint32(dst, FormatVersion)
	dst = binary.BigEndian.AppendUint32(dst, 0) // header length, set below
	body := len(dst)
	dst = appendString(dst, h.ClusterID)
	dst = appendString(dst, h.NodeID)
	dst = binary.AppendUvarint(dst, h.Index)
	dst = binary.AppendUvarint(dst, h.Term)
	dst = binary.AppendVarint(dst, h.ClusterTime)
	dst = binary.AppendUvarint(dst, uint64(h.ClusterVersion))
	var created int64
	if !h.Created.IsZero() {
		created = h.Created.UnixNano()
	}
	dst = binary.AppendVarint(dst, created)
	dst = binary.AppendUvarint(dst, h.StateSize)
	dst = append(dst, h.StateSHA256[:]...)
	binary.BigEndian.PutUint32(dst[body-4:], uint32(len(dst)-body))
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ReadHeader reads and checks a file's start: the magic, the format
// version (a newer one is refused naming both), the header and its CRC,
// and the limits. It reads nothing beyond the header.
func ReadHeader(r io.Reader) (Header, error) {
	var h Header
	prefix := make([]byte, prefixLen)
	if n, err := io.ReadFull(r, prefix); err != nil {
		if n >= len(magic) && string(prefix[:len(magic)]) == magic {
			return h, fmt.Errorf("%w: it ends inside its header (%d bytes)", ErrTruncated, n)
		}
		return h, fmt.Errorf("%w: %d bytes, too short", ErrNotBackup, n)
	}
	if string(prefix[:len(magic)]) != magic {
		return h, fmt.Errorf("%w: it does not start with %q", ErrNotBackup, magic)
	}
	h.FormatVersion = binary.BigEndian.Uint32(prefix[len(magic):])
	switch {
	case h.FormatVersion > FormatVersion:
		return h, fmt.Errorf("%w: the file is of backup format version %d, this build reads format versions up to %d (use a newer lockctl and node)", ErrNewerFormat, h.FormatVersion, FormatVersion)
	case h.FormatVersion == 0:
		return h, fmt.Errorf("%w: format version 0", ErrCorrupt)
	}
	hlen := binary.BigEndian.Uint32(prefix[len(magic)+4:])
	if hlen > MaxHeaderBytes {
		return h, fmt.Errorf("%w: header length %d is over %d", ErrCorrupt, hlen, MaxHeaderBytes)
	}
	rest := make([]byte, hlen+4)
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, fmt.Errorf("%w: it ends inside its header", ErrTruncated)
	}
	body, sum := rest[:hlen], binary.BigEndian.Uint32(rest[hlen:])
	crc := crc32.Update(crc32.ChecksumIEEE(prefix), crc32.IEEETable, body)
	if crc != sum {
		return h, fmt.Errorf("%w: header checksum mismatch (CRC-32 %08x, the file says %08x)", ErrCorrupt, crc, sum)
	}
	if err := parseHeader(body, &h); err != nil {
		return h, err
	}
	return h, nil
}

func parseHeader(b []byte, h *Header) error {
	fail := func(what string) error { return fmt.Errorf("%w: header: bad %s", ErrCorrupt, what) }
	str := func(what string) (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", fail(what)
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	uv := func(what string) (uint64, error) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, fail(what)
		}
		b = b[k:]
		return v, nil
	}
	sv := func(what string) (int64, error) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, fail(what)
		}
		b = b[k:]
		return v, nil
	}
	var err error
	var cv uint64
	var created int64
	if h.ClusterID, err = str("cluster id"); err != nil {
		return err
	}
	if h.NodeID, err = str("node id"); err != nil {
		return err
	}
	if h.Index, err = uv("index"); err != nil {
		return err
	}
	if h.Term, err = uv("term"); err != nil {
		return err
	}
	if h.ClusterTime, err = sv("cluster time"); err != nil {
		return err
	}
	if cv, err = uv("cluster version"); err != nil {
		return err
	}
	if created, err = sv("creation time"); err != nil {
		return err
	}
	if h.StateSize, err = uv("state length"); err != nil {
		return err
	}
	if len(b) != sha256.Size {
		return fail("state checksum")
	}
	copy(h.StateSHA256[:], b)
	if cv == 0 || cv > uint64(^uint32(0)) {
		return fail("cluster version")
	}
	h.ClusterVersion = uint32(cv)
	if created != 0 {
		h.Created = time.Unix(0, created).UTC()
	}
	if h.StateSize > MaxStateBytes {
		return fmt.Errorf("%w: the header announces %d bytes of state, over the limit of %d", ErrCorrupt, h.StateSize, MaxStateBytes)
	}
	return nil
}

// Read reads a whole backup from r: the header (ReadHeader), then exactly
// the state it announces, which must match its SHA-256 and be followed by
// nothing. It does not decode the state (Load does).
func Read(r io.Reader) (Header, []byte, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return h, nil, err
	}
	state := make([]byte, h.StateSize)
	if n, err := io.ReadFull(r, state); err != nil {
		return h, nil, fmt.Errorf("%w: the header announces %d bytes of state, the file holds %d", ErrTruncated, h.StateSize, n)
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n != 0 {
		extra, _ := io.Copy(io.Discard, r)
		return h, nil, fmt.Errorf("%w: %d bytes follow the state the header announces", ErrCorrupt, extra+1)
	}
	if sum := sha256.Sum256(state); sum != h.StateSHA256 {
		return h, nil, fmt.Errorf("%w: state checksum mismatch (SHA-256 %x, the header says %x)", ErrCorrupt, sum[:8], h.StateSHA256[:8])
	}
	return h, state, nil
}

// Parse is Read of a file held in memory.
func Parse(b []byte) (Header, []byte, error) { return Read(bytes.NewReader(b)) }

// Load reads a backup and decodes its state into a table with the given
// bounds, checking that the header and the state agree (cluster time,
// cluster version, index).
func Load(cfg fsm.Config, r io.Reader) (Header, *fsm.Table, error) {
	h, state, err := Read(r)
	if err != nil {
		return h, nil, err
	}
	t, err := Decode(cfg, &h, state)
	return h, t, err
}

// Decode decodes the state of a backup whose header is h (both from Read)
// and checks that they agree.
func Decode(cfg fsm.Config, h *Header, state []byte) (*fsm.Table, error) {
	info, err := fsm.PeekSnapshot(state)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	switch {
	case info.Now != h.ClusterTime:
		return nil, fmt.Errorf("%w: the header's cluster time %d is not the state's %d", ErrCorrupt, h.ClusterTime, info.Now)
	case info.Version != h.ClusterVersion:
		return nil, fmt.Errorf("%w: the header's cluster version %d is not the state's %d", ErrCorrupt, h.ClusterVersion, info.Version)
	case info.Index > h.Index:
		return nil, fmt.Errorf("%w: the state's index %d is above the header's %d", ErrCorrupt, info.Index, h.Index)
	}
	t, err := fsm.Restore(cfg, state)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return t, nil
}

// WriteFile writes a backup to path atomically: into a temporary file in
// the same directory, which is synced and renamed over path only when the
// whole state (h.StateSize bytes from state) is in it; the directory is
// synced after. It fills in the state's SHA-256 and returns the header
// written. On any error path is left as it was and the temporary file is
// removed.
func WriteFile(path string, h Header, state io.Reader) (Header, error) {
	if h.StateSize > MaxStateBytes {
		return h, fmt.Errorf("state of %d bytes is over the limit of %d", h.StateSize, MaxStateBytes)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return h, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h.StateSHA256 = [sha256.Size]byte{}
	head := AppendHeader(nil, &h)
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := w.Write(head); err != nil {
		return h, err
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), io.LimitReader(state, int64(h.StateSize)+1))
	if err != nil {
		return h, err
	}
	switch {
	case uint64(n) < h.StateSize:
		return h, fmt.Errorf("%w: the state ended after %d bytes, the header announces %d", ErrTruncated, n, h.StateSize)
	case uint64(n) > h.StateSize:
		return h, fmt.Errorf("%w: the state has more than the %d bytes the header announces", ErrCorrupt, h.StateSize)
	}
	if err := w.Flush(); err != nil {
		return h, err
	}
	copy(h.StateSHA256[:], sum.Sum(nil))
	if _, err := f.WriteAt(AppendHeader(nil, &h), 0); err != nil {
		return h, err
	}
	if err := f.Sync(); err != nil {
		return h, err
	}
	if err := f.Close(); err != nil {
		return h, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return h, err
	}
	ok = true
	h.FormatVersion = FormatVersion
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return h, fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return h, nil
}

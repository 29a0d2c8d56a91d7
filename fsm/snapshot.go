package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
)

// Snapshot layout, version 1: the magic "RLSN", a version byte, then
// uvarint/varint fields: index, now; the locks in key order; the waiters in
// arrival order (each key's queue is its waiters in arrival order, so queues
// need no encoding of their own); the resolved request records in
// resolution order. A CRC-32 (IEEE) of everything before it ends the
// snapshot. Equal states give equal bytes: every collection is written in an
// order defined by the state itself, never by map iteration.
//
// Version 2 adds the cluster version after now; after the locks, the
// shared and semaphore keys in key order (mode, limit, and the holders in
// owner order: owner, token, expire, deadline, slots); each waiter's
// attempt, mode, permits and limit; and each record's attempt, granted
// index and slots. A table writes the version of its cluster version, so a
// cluster that has not moved to version 2 keeps snapshots that version 1
// nodes can install (a version 1 table has no shared or semaphore keys:
// they need version 2 commands).
const snapshotMagic = "RLSN"

// AppendSnapshot appends the encoding of the whole table to dst. It makes
// room for all of it at once: growing by doubling would allocate twice the
// snapshot's size (a hundred megabytes for a million locks), while the
// node holds the table too.
func (t *Table) AppendSnapshot(dst []byte) []byte {
	dst = slices.Grow(dst, t.snapshotSize())
	start := len(dst)
	v2 := t.version >= Version2
	dst = append(dst, snapshotMagic...)
	dst = append(dst, byte(t.version))
	dst = binary.AppendUvarint(dst, t.index)
	dst = binary.AppendVarint(dst, t.now)
	if v2 {
		dst = binary.AppendUvarint(dst, uint64(t.version))
	}

	keys := sortedKeys(t.locks)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		l := t.locks[k]
		dst = appendString(dst, l.key)
		dst = appendString(dst, l.owner)
		dst = binary.AppendUvarint(dst, l.token)
		dst = binary.AppendVarint(dst, l.expire)
		dst = binary.AppendVarint(dst, l.t.deadline)
	}
	if v2 {
		dst = t.appendGroups(dst)
	}

	ws := t.waitersInOrder()
	dst = binary.AppendUvarint(dst, uint64(len(ws)))
	for _, w := range ws {
		dst = binary.AppendUvarint(dst, w.id)
		dst = appendString(dst, w.rid)
		dst = appendStrings(dst, w.keys)
		dst = appendString(dst, w.owner)
		dst = binary.AppendVarint(dst, w.expire)
		dst = binary.AppendUvarint(dst, w.fp)
		dst = binary.AppendVarint(dst, w.t.deadline)
		if v2 {
			dst = binary.AppendUvarint(dst, t.records[w.rid].attempt)
			dst = append(dst, byte(w.mode))
			dst = binary.AppendUvarint(dst, uint64(w.permits))
			dst = binary.AppendUvarint(dst, uint64(w.limit))
		}
	}

	live := t.ring[t.head:]
	dst = binary.AppendUvarint(dst, uint64(len(live)))
	for _, rec := range live {
		dst = appendString(dst, rec.rid)
		dst = append(dst, byte(rec.op), byte(rec.code))
		dst = binary.AppendUvarint(dst, rec.fp)
		dst = binary.AppendVarint(dst, rec.at)
		dst = appendStrings(dst, rec.keys)
		dst = appendString(dst, rec.owner)
		dst = appendString(dst, rec.key)
		dst = appendUvarints(dst, rec.tokens)
		dst = appendVarints(dst, rec.deadlines)
		var released byte
		if rec.released {
			released = 1
		}
		dst = append(dst, released)
		dst = binary.AppendUvarint(dst, uint64(rec.count))
		if v2 {
			dst = binary.AppendUvarint(dst, rec.attempt)
			dst = binary.AppendUvarint(dst, rec.granted)
			dst = appendUint32s(dst, rec.slots)
		}
	}
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

// snapshotSize is the exact length of AppendSnapshot's encoding.
func (t *Table) snapshotSize() int {
	v2 := t.version >= Version2
	n := len(snapshotMagic) + 1 + uvarintLen(t.index) + varintLen(t.now) + uvarintLen(uint64(len(t.locks)))
	if v2 {
		n += uvarintLen(uint64(t.version))
	}
	for _, l := range t.locks {
		n += holdLen(l)
	}
	if v2 {
		n += uvarintLen(uint64(len(t.groups)))
		for k, g := range t.groups {
			n += stringLen(k) + 1 + uvarintLen(uint64(g.limit)) + uvarintLen(uint64(len(g.holders)))
			for _, h := range g.holders {
				n += holdLen(&h.lock) - stringLen(k) + uint32sLen(h.slots)
			}
		}
	}
	n += uvarintLen(uint64(len(t.waiters)))
	for _, w := range t.waiters {
		n += uvarintLen(w.id) + stringLen(w.rid) + stringsLen(w.keys) + stringLen(w.owner) + varintLen(w.expire) +
			uvarintLen(w.fp) + varintLen(w.t.deadline)
		if v2 {
			n += uvarintLen(t.records[w.rid].attempt) + 1 + uvarintLen(uint64(w.permits)) + uvarintLen(uint64(w.limit))
		}
	}
	live := t.ring[t.head:]
	n += uvarintLen(uint64(len(live)))
	for _, rec := range live {
		n += stringLen(rec.rid) + 2 + uvarintLen(rec.fp) + varintLen(rec.at) + stringsLen(rec.keys) + stringLen(rec.owner) +
			stringLen(rec.key) + uvarintLen(uint64(len(rec.tokens))) + uvarintLen(uint64(len(rec.deadlines))) + 1 +
			uvarintLen(uint64(rec.count))
		for _, v := range rec.tokens {
			n += uvarintLen(v)
		}
		for _, v := range rec.deadlines {
			n += varintLen(v)
		}
		if v2 {
			n += uvarintLen(rec.attempt) + uvarintLen(rec.granted) + uint32sLen(rec.slots)
		}
	}
	return n + 4 // the CRC
}

// holdLen is the encoded length of an exclusive lock (key, owner, token,
// expire, deadline).
func holdLen(l *lock) int {
	return stringLen(l.key) + stringLen(l.owner) + uvarintLen(l.token) + varintLen(l.expire) + varintLen(l.t.deadline)
}

// appendGroups writes the shared and semaphore keys (version 2).
func (t *Table) appendGroups(dst []byte) []byte {
	keys := sortedKeys(t.groups)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		g := t.groups[k]
		dst = appendString(dst, k)
		dst = append(dst, byte(g.mode))
		dst = binary.AppendUvarint(dst, uint64(g.limit))
		owners := sortedKeys(g.holders)
		dst = binary.AppendUvarint(dst, uint64(len(owners)))
		for _, o := range owners {
			h := g.holders[o]
			dst = appendString(dst, h.owner)
			dst = binary.AppendUvarint(dst, h.token)
			dst = binary.AppendVarint(dst, h.expire)
			dst = binary.AppendVarint(dst, h.t.deadline)
			dst = appendUint32s(dst, h.slots)
		}
	}
	return dst
}

// readGroups reads what appendGroups wrote into t, checking that each
// group is one a table can reach: a known mode, holders with owners, a
// semaphore's slots distinct, below its limit and within it in all.
func (t *Table) readGroups(r *reader) {
	for n := r.count(); n > 0 && r.err == nil; n-- {
		k, mode, limit := r.string(), Mode(r.byte()), r.uint32("limit")
		if r.err != nil {
			return
		}
		if err := ValidateMode(mode, min(limit, 1), limit, "-"); err != nil || mode == ModeExclusive || t.locks[k] != nil || t.groups[k] != nil {
			r.fail("bad group %q", k)
			return
		}
		a := ask{mode: mode, limit: limit}
		taken := map[uint32]bool{}
		for m := r.count(); m > 0 && r.err == nil; m-- {
			a.owner = r.string()
			token, expire, deadline, slots := r.uvarint(), r.varint(), r.varint(), r.uint32s()
			if r.err != nil {
				return
			}
			g := t.groups[k]
			if a.owner == "" || (g != nil && g.holders[a.owner] != nil) || (mode == ModeSemaphore) != (len(slots) > 0) ||
				(g != nil && g.used+uint32(len(slots)) > limit) {
				r.fail("bad holder %q of %q", a.owner, k)
				return
			}
			for _, s := range slots {
				if s >= limit || taken[s] {
					r.fail("bad slot %d of %q", s, k)
					return
				}
				taken[s] = true
			}
			a.permits = uint32(len(slots))
			h := t.addHold(k, &a)
			h.token, h.expire, h.slots = token, expire, slots
			t.timers.set(&h.t, deadline)
		}
		if r.err == nil && t.groups[k] == nil {
			r.fail("group %q without holders", k)
		}
	}
}

// sortedKeys returns a map's keys in order: what snapshots write follows
// the state, never map iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// varintLen is the length of binary.AppendVarint's zig-zag encoding.
func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func stringsLen(ss []string) int {
	n := uvarintLen(uint64(len(ss)))
	for _, s := range ss {
		n += stringLen(s)
	}
	return n
}

func (t *Table) waitersInOrder() []*waiter {
	ws := make([]*waiter, 0, len(t.waiters))
	for _, w := range t.waiters {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *waiter) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return strings.Compare(a.rid, b.rid)
	})
	return ws
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// Restore reads a snapshot written by AppendSnapshot into a new table with
// the given bounds.
func Restore(cfg Config, b []byte) (*Table, error) {
	if len(b) < len(snapshotMagic)+1+4 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: not a raftlock snapshot", ErrCorrupt)
	}
	v := uint32(b[len(snapshotMagic)])
	if v == 0 || v > SupportedVersion {
		return nil, fmt.Errorf("%w: the snapshot is of version %d, this build reads versions up to %d", ErrUnsupportedVersion, v, SupportedVersion)
	}
	v2 := v >= Version2
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	t := New(cfg)
	r := reader{b: body[len(snapshotMagic)+1:]}
	t.index = r.uvarint()
	t.now = r.varint()
	if v2 {
		cv := r.uvarint()
		if cv != uint64(v) {
			r.fail("cluster version %d in a version %d snapshot", cv, v)
		}
		t.version = uint32(cv)
	}

	for n := r.count(); n > 0 && r.err == nil; n-- {
		l := &lock{key: r.string(), owner: r.string(), token: r.uvarint(), expire: r.varint()}
		l.t = timer{lock: l, idx: -1}
		deadline := r.varint()
		if r.err != nil {
			break
		}
		if t.locks[l.key] != nil {
			r.fail("duplicate lock %q", l.key)
			break
		}
		t.locks[l.key] = l
		t.link(l)
		t.timers.set(&l.t, deadline)
	}
	if v2 && r.err == nil {
		t.readGroups(&r)
	}

	for n := r.count(); n > 0 && r.err == nil; n-- {
		w := &waiter{id: r.uvarint(), rid: r.string(), keys: r.strings()}
		w.owner, w.expire, w.fp = r.string(), r.varint(), r.uvarint()
		deadline := r.varint()
		var attempt uint64
		if v2 {
			attempt = r.uvarint()
			w.mode = Mode(r.byte())
			w.permits, w.limit = r.uint32("permits"), r.uint32("limit")
		}
		if r.err != nil {
			break
		}
		if w.rid == "" || t.waiters[w.rid] != nil || len(w.keys) == 0 || deadline <= 0 || ValidateMode(w.mode, w.permits, w.limit, w.owner) != nil {
			r.fail("bad waiter %q", w.rid)
			break
		}
		t.enqueue(w, deadline)
		t.records[w.rid] = &record{rid: w.rid, op: OpAcquire, code: CodePending, fp: w.fp, keys: w.keys, owner: w.owner, attempt: attempt}
	}

	for n := r.count(); n > 0 && r.err == nil; n-- {
		rec := &record{rid: r.string(), op: Op(r.byte()), code: Code(r.byte()), fp: r.uvarint(), at: r.varint(),
			keys: r.strings(), owner: r.string(), key: r.string()}
		if k := r.count(); k > 0 {
			rec.tokens = make([]uint64, k)
			for i := range rec.tokens {
				rec.tokens[i] = r.uvarint()
			}
		}
		if k := r.count(); k > 0 {
			rec.deadlines = make([]int64, k)
			for i := range rec.deadlines {
				rec.deadlines[i] = r.varint()
			}
		}
		rec.released = r.byte() == 1
		rec.count = int(r.uvarint())
		if v2 {
			rec.attempt = r.uvarint()
			rec.granted = r.uvarint()
			rec.slots = r.uint32s()
		}
		if r.err != nil {
			break
		}
		if t.records[rec.rid] != nil {
			r.fail("duplicate request id %q", rec.rid)
			break
		}
		t.records[rec.rid] = rec
		t.ring = append(t.ring, rec)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}

// count reads a collection length, bounded by the bytes left (every element
// takes at least one byte), so a corrupt length cannot force a huge
// allocation.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("count %d exceeds %d remaining bytes", n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *reader) strings() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.string()
	}
	return ss
}

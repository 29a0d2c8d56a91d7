package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"time"
)

// Op names what a Command does.
type Op uint8

// The operations of the lock table.
const (
	// OpTick only advances cluster time; expiries due by then happen. The
	// leader proposes it when a deadline passes and no other entry does.
	OpTick Op = 1
	// OpAcquire grants Keys to Owner, all or nothing, or queues a waiter
	// when Wait > 0.
	OpAcquire Op = 2
	// OpRelease frees Keys held by Owner (only if Token is current, when
	// HasToken).
	OpRelease Op = 3
	// OpReleaseAll frees every lock held by Owner (with Keys: only keys
	// that start with one of them).
	OpReleaseAll Op = 4
	// OpRefresh resets the deadline of Keys held by Owner.
	OpRefresh Op = 5
	// OpCancelWait withdraws the waiting Acquire whose request id is
	// RequestID.
	OpCancelWait Op = 6
	// OpForceRelease frees Keys whoever holds them.
	OpForceRelease Op = 7
	// OpSetVersion raises the cluster version to ClusterVersion (never
	// lowers it). The leader proposes it once every voter can apply entries
	// of that version. Version 2.
	OpSetVersion Op = 8
	// OpAbandon ends what attempt Attempt of the Acquire RequestID left
	// behind when its caller went away: a waiter is withdrawn, a grant made
	// meanwhile is released. It does nothing when another attempt has taken
	// the request over since. Version 2.
	OpAbandon Op = 9
	// OpAbandonNode withdraws every waiter of one incarnation of a node:
	// Attempt's high 32 bits name the incarnation (a node draws a new one
	// each time it starts, and makes its attempts from it). A node that
	// restarts proposes it for its previous incarnation: the callers those
	// waiters had went with the process. It releases no grant (one may have
	// been delivered before the process stopped). Version 2.
	OpAbandonNode Op = 10
)

var opNames = [...]string{
	OpTick:         "tick",
	OpAcquire:      "acquire",
	OpRelease:      "release",
	OpReleaseAll:   "release_all",
	OpRefresh:      "refresh",
	OpCancelWait:   "cancel_wait",
	OpForceRelease: "force_release",
	OpSetVersion:   "set_version",
	OpAbandon:      "abandon",
	OpAbandonNode:  "abandon_node",
}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

func (o Op) valid() bool { return o >= OpTick && o <= OpAbandonNode }

// Command is one entry of the replicated log.
type Command struct {
	// Op says what the command does.
	Op Op
	// Time is the cluster time in nanoseconds, stamped by the leader.
	Time int64
	// Keys names the locks (Acquire, Release, Refresh, ForceRelease), or the
	// key prefixes a ReleaseAll is limited to.
	Keys []string
	// Owner is the owner id; empty means anonymous.
	Owner string
	// Expire is the time to live of a granted or refreshed lock; 0: never
	// expires (Acquire), or the lock's own time to live (Refresh).
	Expire time.Duration
	// Wait is how long an Acquire may wait in the queues; 0: fail at once.
	Wait time.Duration
	// HasToken makes a Release conditional on Token being current.
	HasToken bool
	// Token is the fencing token of a conditional Release.
	Token uint64
	// RequestID makes the command exactly-once; for OpCancelWait and
	// OpAbandon it names the Acquire to withdraw.
	RequestID string
	// Attempt identifies one handling of an Acquire by a node (see
	// Attempt(); 0: none). An Acquire records the attempt that carries its
	// request id now: a later one takes the request over unless it says an
	// earlier try of the caller's; OpAbandon acts only for that attempt. Not
	// part of the request's fingerprint. Version 2.
	Attempt uint64
	// ClusterVersion is the version OpSetVersion raises the cluster to.
	// Version 2.
	ClusterVersion uint32
	// Mode is how an Acquire holds its keys: ModeExclusive (the zero value),
	// ModeShared or ModeSemaphore. Version 2 when not exclusive.
	Mode Mode
	// Permits is how many of a semaphore's permits an Acquire takes on each
	// key (1 to Limit). Version 2.
	Permits uint32
	// Limit is the semaphore's number of permits (1 to MaxLimit); every
	// request on a semaphore key names the same limit. Version 2.
	Limit uint32
}

// Mode is how a key is held (see DESIGN.md, "Modes").
type Mode uint8

// The modes of an Acquire.
const (
	// ModeExclusive: one holder at a time (the default).
	ModeExclusive Mode = 0
	// ModeShared: any number of shared holders, or one exclusive holder:
	// a shared and an exclusive request on one key are the two sides of a
	// read-write lock.
	ModeShared Mode = 1
	// ModeSemaphore: holders together take at most Limit permits.
	ModeSemaphore Mode = 2
)

var modeNames = [...]string{ModeExclusive: "exclusive", ModeShared: "shared", ModeSemaphore: "semaphore"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

func (m Mode) valid() bool { return m <= ModeSemaphore }

// Attempt makes an attempt id: the node's incarnation (high 32 bits: one
// per start of a node, see OpAbandonNode), the caller's try of the request
// id (8 bits: 1 for its first call, counting up on retries; 0 when the
// caller does not say), and the node's counter (low 24 bits).
func Attempt(incarnation uint32, try uint8, seq uint32) uint64 {
	return uint64(incarnation)<<32 | uint64(try)<<24 | uint64(seq&0xffffff)
}

// attemptTry is the caller's try an attempt id carries.
func attemptTry(a uint64) uint8 { return uint8(a >> 24) }

// The versions of the log. A version is both the encoding of an entry and
// the command set a node can apply; the cluster version (Table.Version) is
// the highest version its entries may use, raised through OpSetVersion only
// once every voter supports it (see DESIGN.md, "Versions").
const (
	// Version1 is the first release: ops tick to force_release.
	Version1 uint32 = 1
	// Version2 adds set_version, abandon, attempts on Acquire, CancelWait
	// limited to key prefixes, and shared and semaphore Acquires.
	Version2 uint32 = 2
	// SupportedVersion is the highest version this build can decode and
	// apply.
	SupportedVersion = Version2
)

// Version returns the lowest log version that can carry c: Encode writes
// that version, so a command that needs nothing new stays readable by
// older nodes.
func (c *Command) Version() uint32 {
	switch {
	case c.Op == OpSetVersion, c.Op == OpAbandon, c.Op == OpAbandonNode, c.Attempt != 0, c.ClusterVersion != 0,
		c.Op == OpCancelWait && len(c.Keys) > 0, c.Mode != ModeExclusive, c.Permits != 0, c.Limit != 0:
		return Version2
	}
	return Version1
}

// Encoding: a version byte, the op, the time as 8 big-endian bytes (at a
// fixed offset so the leader can stamp an encoded command in place), then
// the fields.
const (
	// TimeOffset is where the 8-byte time sits in an encoded command.
	TimeOffset = 2
	headerLen  = TimeOffset + 8
)

const flagHasToken = 1

// Encode appends the encoding of c to dst, in the lowest version that
// carries it (Version): the fields of version 1, then those version 2 adds.
func (c *Command) Encode(dst []byte) []byte {
	v := c.Version()
	dst = append(dst, byte(v), byte(c.Op))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Time))
	var flags byte
	if c.HasToken {
		flags |= flagHasToken
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(c.Keys)))
	for _, k := range c.Keys {
		dst = appendString(dst, k)
	}
	dst = appendString(dst, c.Owner)
	dst = binary.AppendVarint(dst, int64(c.Expire))
	dst = binary.AppendVarint(dst, int64(c.Wait))
	dst = binary.AppendUvarint(dst, c.Token)
	dst = appendString(dst, c.RequestID)
	if v >= Version2 {
		dst = binary.AppendUvarint(dst, c.Attempt)
		dst = binary.AppendUvarint(dst, uint64(c.ClusterVersion))
		dst = append(dst, byte(c.Mode))
		dst = binary.AppendUvarint(dst, uint64(c.Permits))
		dst = binary.AppendUvarint(dst, uint64(c.Limit))
	}
	return dst
}

// StampTime overwrites the time of an encoded command in place.
func StampTime(encoded []byte, t int64) {
	binary.BigEndian.PutUint64(encoded[TimeOffset:], uint64(t))
}

// Decode parses an encoded command. It never panics; any malformed input
// yields an error wrapping ErrCorrupt, and an entry of a version (or a
// set_version to a version) above SupportedVersion one wrapping
// ErrUnsupportedVersion that names both versions.
func Decode(b []byte) (*Command, error) {
	if len(b) < headerLen+1 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	v := uint32(b[0])
	if v == 0 || v > SupportedVersion {
		return nil, fmt.Errorf("%w: the entry is of version %d, this build applies versions up to %d", ErrUnsupportedVersion, v, SupportedVersion)
	}
	c := &Command{Op: Op(b[1])}
	if !c.Op.valid() {
		return nil, fmt.Errorf("%w: unknown op %d", ErrCorrupt, b[1])
	}
	c.Time = int64(binary.BigEndian.Uint64(b[TimeOffset:]))
	flags := b[headerLen]
	if flags&^flagHasToken != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	c.HasToken = flags&flagHasToken != 0
	r := reader{b: b[headerLen+1:]}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // each key takes at least one byte
		return nil, fmt.Errorf("%w: %d keys in %d bytes", ErrCorrupt, n, len(r.b))
	}
	if n > 0 {
		c.Keys = make([]string, n)
		for i := range c.Keys {
			c.Keys[i] = r.string()
		}
	}
	c.Owner = r.string()
	c.Expire = time.Duration(r.varint())
	c.Wait = time.Duration(r.varint())
	c.Token = r.uvarint()
	c.RequestID = r.string()
	if v >= Version2 {
		c.Attempt = r.uvarint()
		cv := r.uvarint()
		if cv > uint64(^uint32(0)) {
			r.fail("cluster version %d out of range", cv)
		}
		c.ClusterVersion = uint32(cv)
		c.Mode = Mode(r.byte())
		if !c.Mode.valid() {
			r.fail("unknown mode %d", c.Mode)
		}
		c.Permits, c.Limit = r.uint32("permits"), r.uint32("limit")
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if c.Version() != v {
		// Encode writes the lowest version that carries a command; any
		// other version byte did not come from Encode.
		return nil, fmt.Errorf("%w: a version %d command in a version %d entry", ErrCorrupt, c.Version(), v)
	}
	if c.ClusterVersion > SupportedVersion {
		return nil, fmt.Errorf("%w: the entry at this index raises the cluster to version %d, this build applies versions up to %d", ErrUnsupportedVersion, c.ClusterVersion, SupportedVersion)
	}
	return c, nil
}

// fingerprint identifies the request a command makes (all fields but time),
// to tell a retry from a reuse of its request id for something else.
func (c *Command) fingerprint(keys []string) uint64 {
	h := fnv.New64a()
	var buf [binary.MaxVarintLen64]byte
	put := func(v uint64) { h.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	putS := func(s string) { put(uint64(len(s))); h.Write([]byte(s)) }
	put(uint64(c.Op))
	put(uint64(len(keys)))
	for _, k := range keys {
		putS(k)
	}
	putS(c.Owner)
	put(uint64(c.Expire))
	put(uint64(c.Wait))
	if c.HasToken {
		put(1)
		put(c.Token)
	} else {
		put(0)
	}
	if c.Mode != ModeExclusive || c.Permits != 0 || c.Limit != 0 {
		// Only then: an exclusive request keeps the fingerprint it had
		// before modes existed (fingerprints are in snapshots).
		put(uint64(c.Mode))
		put(uint64(c.Permits))
		put(uint64(c.Limit))
	}
	return h.Sum64()
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// reader decodes the primitives shared by commands and snapshots; the first
// error sticks and later reads return zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uint32 reads a uvarint that must fit 32 bits.
func (r *reader) uint32(field string) uint32 {
	v := r.uvarint()
	if v > uint64(^uint32(0)) {
		r.fail("%s %d out of range", field, v)
		return 0
	}
	return uint32(v)
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("string of %d bytes in %d", n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("unexpected end")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

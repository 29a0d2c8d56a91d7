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
)

var opNames = [...]string{
	OpTick:         "tick",
	OpAcquire:      "acquire",
	OpRelease:      "release",
	OpReleaseAll:   "release_all",
	OpRefresh:      "refresh",
	OpCancelWait:   "cancel_wait",
	OpForceRelease: "force_release",
}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

func (o Op) valid() bool { return o >= OpTick && o <= OpForceRelease }

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
	// RequestID makes the command exactly-once; for OpCancelWait it names
	// the Acquire to withdraw.
	RequestID string
}

// Encoding: a version byte, the op, the time as 8 big-endian bytes (at a
// fixed offset so the leader can stamp an encoded command in place), then
// the fields.
const (
	// EncodingVersion is the version byte this build writes.
	EncodingVersion byte = 1
	// TimeOffset is where the 8-byte time sits in an encoded command.
	TimeOffset = 2
	headerLen  = TimeOffset + 8
)

const flagHasToken = 1

// Encode appends the encoding of c to dst.
func (c *Command) Encode(dst []byte) []byte {
	dst = append(dst, EncodingVersion, byte(c.Op))
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
	return dst
}

// StampTime overwrites the time of an encoded command in place.
func StampTime(encoded []byte, t int64) {
	binary.BigEndian.PutUint64(encoded[TimeOffset:], uint64(t))
}

// Decode parses an encoded command. It never panics; any malformed input
// yields an error wrapping ErrCorrupt or ErrUnsupportedVersion.
func Decode(b []byte) (*Command, error) {
	if len(b) < headerLen+1 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	if b[0] != EncodingVersion {
		return nil, fmt.Errorf("%w: command version %d", ErrUnsupportedVersion, b[0])
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
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
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

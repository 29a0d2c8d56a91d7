package fsm

import (
	"encoding/binary"
	"fmt"
)

// resultEncoding is the version byte of an encoded Result. Results cross
// the wire only between the nodes of one cluster (a follower forwards a
// command and gets its result back), so the encoding lives here, beside the
// command encoding, and carries every field but Changes: nothing is copied
// by hand. Changes stay on the node that applied the entry: every node
// derives its own from its own log (they feed its watch streams), and a
// forwarded answer has no use for them.
const resultEncoding = 1

const (
	resultReleased = 1 << iota // flag bits of an encoded Result
	resultDuplicate
	resultSlots // Slots follow Deadlines
)

// AppendBinary appends the encoding of r, events included, to dst.
func (r *Result) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, resultEncoding)
	return r.appendFields(dst, true), nil
}

func (r *Result) appendFields(dst []byte, withEvents bool) []byte {
	var flags byte
	if r.Released {
		flags |= resultReleased
	}
	if r.Duplicate {
		flags |= resultDuplicate
	}
	if len(r.Slots) > 0 {
		flags |= resultSlots
	}
	dst = append(dst, byte(r.Op), byte(r.Code), flags)
	dst = appendString(dst, r.Key)
	dst = appendString(dst, r.Msg)
	dst = appendString(dst, r.RequestID)
	dst = appendStrings(dst, r.Keys)
	dst = appendString(dst, r.Owner)
	dst = appendUvarints(dst, r.Tokens)
	dst = appendVarints(dst, r.Deadlines)
	if len(r.Slots) > 0 {
		dst = appendUint32s(dst, r.Slots)
	}
	dst = binary.AppendVarint(dst, int64(r.Count))
	dst = binary.AppendVarint(dst, r.Now)
	dst = binary.AppendUvarint(dst, r.Index)
	dst = binary.AppendVarint(dst, int64(r.Expired))
	if withEvents {
		dst = binary.AppendUvarint(dst, uint64(len(r.Events)))
		for i := range r.Events {
			dst = r.Events[i].appendFields(dst, false)
		}
	}
	return dst
}

// DecodeResult parses a Result encoded by AppendBinary. It never panics;
// malformed input yields an error wrapping ErrCorrupt, an unknown version
// one wrapping ErrUnsupportedVersion.
func DecodeResult(b []byte) (*Result, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty result", ErrCorrupt)
	}
	if b[0] != resultEncoding {
		return nil, fmt.Errorf("%w: result encoding %d, this build reads %d", ErrUnsupportedVersion, b[0], resultEncoding)
	}
	rd := reader{b: b[1:]}
	r := rd.result(true)
	if rd.err == nil && len(rd.b) != 0 {
		rd.fail("%d trailing bytes", len(rd.b))
	}
	if rd.err != nil {
		return nil, rd.err
	}
	return r, nil
}

func (rd *reader) result(withEvents bool) *Result {
	r := &Result{Op: Op(rd.byte()), Code: Code(rd.byte())}
	flags := rd.byte()
	if flags&^(resultReleased|resultDuplicate|resultSlots) != 0 {
		rd.fail("unknown result flags %#x", flags)
	}
	r.Released, r.Duplicate = flags&resultReleased != 0, flags&resultDuplicate != 0
	r.Key, r.Msg, r.RequestID = rd.string(), rd.string(), rd.string()
	r.Keys = rd.strings()
	r.Owner = rd.string()
	if n := rd.count(); n > 0 {
		r.Tokens = make([]uint64, n)
		for i := range r.Tokens {
			r.Tokens[i] = rd.uvarint()
		}
	}
	if n := rd.count(); n > 0 {
		r.Deadlines = make([]int64, n)
		for i := range r.Deadlines {
			r.Deadlines[i] = rd.varint()
		}
	}
	if flags&resultSlots != 0 {
		r.Slots = rd.uint32s()
	}
	r.Count = int(rd.varint())
	r.Now = rd.varint()
	r.Index = rd.uvarint()
	r.Expired = int(rd.varint())
	if withEvents {
		if n := rd.count(); n > 0 {
			r.Events = make([]Result, n)
			for i := range r.Events {
				if ev := rd.result(false); ev != nil {
					r.Events[i] = *ev
				}
			}
		}
	}
	return r
}

// appendUvarints appends the count, then each value, as uvarints.
func appendUvarints(dst []byte, vs []uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, v := range vs {
		dst = binary.AppendUvarint(dst, v)
	}
	return dst
}

// appendVarints appends the count as a uvarint, then each value as a varint.
func appendVarints(dst []byte, vs []int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, v := range vs {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

func appendUint32s(dst []byte, vs []uint32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, v := range vs {
		dst = binary.AppendUvarint(dst, uint64(v))
	}
	return dst
}

func uint32sLen(vs []uint32) int {
	n := uvarintLen(uint64(len(vs)))
	for _, v := range vs {
		n += uvarintLen(uint64(v))
	}
	return n
}

// uint32s reads what appendUint32s wrote (nil when empty).
func (rd *reader) uint32s() []uint32 {
	n := rd.count()
	if n == 0 {
		return nil
	}
	vs := make([]uint32, n)
	for i := range vs {
		vs[i] = rd.uint32("slot")
	}
	return vs
}

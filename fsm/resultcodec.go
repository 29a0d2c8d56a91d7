package fsm

import (
	"encoding/binary"
	"fmt"
)

// resultEncoding is the version byte of an encoded Result. Results cross
// the wire only between the nodes of one cluster (a follower forwards a
// command and gets its result back), so the encoding lives here, beside the
// command encoding, and carries every field: nothing is copied by hand.
const resultEncoding = 1

const (
	resultReleased = 1 << iota // flag bits of an encoded Result
	resultDuplicate
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
	dst = append(dst, byte(r.Op), byte(r.Code), flags)
	dst = appendString(dst, r.Key)
	dst = appendString(dst, r.Msg)
	dst = appendString(dst, r.RequestID)
	dst = appendStrings(dst, r.Keys)
	dst = appendString(dst, r.Owner)
	dst = binary.AppendUvarint(dst, uint64(len(r.Tokens)))
	for _, v := range r.Tokens {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Deadlines)))
	for _, v := range r.Deadlines {
		dst = binary.AppendVarint(dst, v)
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
	if flags&^(resultReleased|resultDuplicate) != 0 {
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

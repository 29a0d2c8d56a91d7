package fsm

import (
	"errors"
	"reflect"
	"testing"
)

// fill sets every field of the struct v points to a non-zero value that
// depends on seed, recursing into slices of structs (one level of Events).
func fill(t *testing.T, v reflect.Value, seed int, depth int) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		n := seed + i + 1
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(n))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(-n * 1000003))
		case reflect.String:
			f.SetString(name + "-" + string(rune('a'+n%26)))
		case reflect.Slice:
			s := reflect.MakeSlice(f.Type(), 2, 2)
			for j := 0; j < 2; j++ {
				e := s.Index(j)
				switch e.Kind() {
				case reflect.String:
					e.SetString(name + string(rune('0'+j)))
				case reflect.Uint64, reflect.Uint32:
					e.SetUint(uint64(n*10 + j))
				case reflect.Int64:
					e.SetInt(int64(-(n*10 + j)))
				case reflect.Struct:
					if depth > 0 {
						fill(t, e, seed*7+j, depth-1)
						if ev := e.FieldByName("Events"); ev.IsValid() {
							ev.Set(reflect.Zero(ev.Type())) // events carry no events
						}
					}
				default:
					t.Fatalf("field %s: no filler for slices of %s: extend the test and the encoding", name, e.Kind())
				}
			}
			f.Set(s)
		default:
			t.Fatalf("field %s: no filler for %s: extend the test and the encoding", name, f.Kind())
		}
	}
}

// A forwarded result arrives whole: every field of Result, set by
// reflection (so a field added later is covered without editing this
// test), survives the encoding. This is what a follower's answer is built
// from (issue 15: "op(0)" from a follower).
func TestResultRoundTripEveryField(t *testing.T) {
	var r Result
	fill(t, reflect.ValueOf(&r).Elem(), 3, 1)
	b, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Changes) != 0 {
		t.Fatalf("changes crossed the wire: %+v", got.Changes)
	}
	// Changes are node-local (resultEncoding's comment): not encoded.
	r.Changes = nil
	for i := range r.Events {
		r.Events[i].Changes = nil
	}
	if !reflect.DeepEqual(got, &r) {
		t.Fatalf("round trip lost something:\n got %+v\nwant %+v", got, &r)
	}
	for i := range reflect.ValueOf(r).NumField() {
		if reflect.TypeOf(r).Field(i).Name == "Changes" {
			continue
		}
		if reflect.ValueOf(r).Field(i).IsZero() {
			t.Fatalf("the filler left field %s zero", reflect.TypeOf(r).Field(i).Name)
		}
	}
	if _, err := DecodeResult(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := DecodeResult(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	b[0] = 9
	if _, err := DecodeResult(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("unknown encoding: %v", err)
	}
}

// An empty result (a tick's) round-trips too, with nil slices kept nil.
func TestResultRoundTripEmpty(t *testing.T) {
	r := Result{Op: OpCancelWait, Code: CodeCancelled}
	b, _ := r.AppendBinary(nil)
	got, err := DecodeResult(b)
	if err != nil || !reflect.DeepEqual(got, &r) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

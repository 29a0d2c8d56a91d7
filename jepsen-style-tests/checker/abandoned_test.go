package checker

import "testing"

// The checker fails when a key ends up with an owner that gave up, and
// passes when every such key is free or held by someone else.
func TestAbandoned(t *testing.T) {
	given := []Given{{Key: "k1-ab", Owner: "gone-1", How: "deadline"}, {Key: "k1-ab", Owner: "gone-2", How: "disconnect"}}
	if r := Abandoned(given, map[string]string{"k1-ab": "", "k2-ab": "holder"}); !r.OK {
		t.Fatalf("free keys: %+v", r)
	}
	r := Abandoned(given, map[string]string{"k1-ab": "gone-2"})
	if r.OK || len(r.Problems) != 1 || r.Stats["by_disconnect"] != 1 {
		t.Fatalf("a key held by a caller that gave up: %+v", r)
	}
	if r := Abandoned(given, map[string]string{}); r.OK {
		t.Fatal("nothing read at the end passed")
	}
	given[1].Crashed = true // its node was killed after the call: counted, not judged
	if r := Abandoned(given, map[string]string{"k1-ab": "gone-2"}); !r.OK || r.Stats["held_after_a_crash"] != 1 {
		t.Fatalf("a grant to a crashed node's caller: %+v", r)
	}
}

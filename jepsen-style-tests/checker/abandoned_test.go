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
	given[1].Fault = "killed" // its node was killed after the call: counted, not judged
	if r := Abandoned(given, map[string]string{"k1-ab": "gone-2"}); !r.OK || r.Stats["held_after_killed"] != 1 {
		t.Fatalf("a grant to a crashed node's caller: %+v", r)
	}
	given[1].Fault = "cut off"
	if r := Abandoned(given, map[string]string{"k1-ab": "gone-2"}); !r.OK || r.Stats["held_after_cut_off"] != 1 {
		t.Fatalf("a grant to a caller cut off the nodes: %+v", r)
	}
	if r := Abandoned(given, map[string]string{"k1-ab": "gone-1"}); r.OK {
		t.Fatal("a fault on another caller excused this one")
	}
}

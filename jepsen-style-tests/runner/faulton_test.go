package runner

import (
	"testing"
	"time"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
	"github.com/raftlock/raftlock/jepsen-style-tests/workload"
)

// faultOn excuses an abandoned acquire only for a fault that could hide
// its caller's departure from the node that took it, while its waiter
// could live.
func TestFaultOn(t *testing.T) {
	s := int64(time.Second)
	a := workload.Abandoned{Node: 1, At: 10 * s, Until: 10*s + 5*int64(time.Millisecond), From: "127.0.0.106"}
	cases := []struct {
		name string
		f    history.Fault
		want string
	}{
		{"a kill of its node after the call", history.Fault{Name: "kill-one", Start: 12 * s, End: 15 * s, Detail: "kill -9 n2"}, "killed"},
		{"a kill of every node", history.Fault{Name: "kill-all", Start: 20 * s, End: 24 * s, Detail: "kill -9 every node"}, "killed"},
		{"a kill of another node", history.Fault{Name: "kill-one", Start: 12 * s, End: 15 * s, Detail: "kill -9 n1"}, ""},
		{"a kill long after the waiter's wait", history.Fault{Name: "kill-one", Start: 60 * s, End: 65 * s, Detail: "kill -9 n2"}, ""},
		{"a kill of its node that began before the call and lasted past it", history.Fault{Name: "kill-leader", Start: 8 * s, End: 14 * s, Detail: "kill -9 leader n2"}, "killed"},
		{"a kill that ended before the call", history.Fault{Name: "kill-one", Start: 2 * s, End: 5 * s, Detail: "kill -9 n2"}, ""},
		{"a pause of its node, begun before the call", history.Fault{Name: "pause-follower", Start: 8 * s, End: 14 * s, Detail: "SIGSTOP follower n2"}, "paused"},
		{"a pause of another node", history.Fault{Name: "pause-leader", Start: 8 * s, End: 14 * s, Detail: "SIGSTOP leader n3"}, ""},
		{"its client cut off", history.Fault{Name: "clients-cut", Start: 9 * s, End: 16 * s, Detail: "cut clients 127.0.0.102,127.0.0.106 off every node"}, "cut off"},
		{"other clients cut off", history.Fault{Name: "clients-cut", Start: 9 * s, End: 16 * s, Detail: "cut clients 127.0.0.102,127.0.0.105 off every node"}, ""},
		{"a partition between nodes", history.Fault{Name: "partition-isolate-leader", Start: 9 * s, End: 16 * s, Detail: "isolate leader n2 from n1,n3"}, ""},
		{"a fault never healed, begun later", history.Fault{Name: "pause-follower", Start: 30 * s, Detail: "SIGSTOP follower n2"}, "paused"},
	}
	for _, c := range cases {
		if got := faultOn([]history.Fault{c.f}, a); got != c.want {
			t.Errorf("%s: faultOn = %q, want %q", c.name, got, c.want)
		}
	}
}

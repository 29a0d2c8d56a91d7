// Package testcluster runs raftlock clusters of real node processes: the
// node binary built once per test binary, each node on its own address
// with its own data directory and log file, and the faults a process can
// suffer (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, a wiped data directory).
//
// Tests use New, which ties the cluster to t (ports picked free, data
// under t.TempDir(), the node logs shown when the test fails, everything
// stopped at cleanup) and adds helpers that wait or fail the test:
//
//	func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }
//
//	func TestFailover(t *testing.T) {
//		c := testcluster.New(t, 3)
//		leader := c.Leader()           // waits until the nodes agree on one
//		if err := c.Kill(leader); err != nil {
//			t.Fatal(err)
//		}
//		c.WaitFor("a new leader", func() bool { l, err := c.FindLeader(t.Context()); return err == nil && l != leader })
//		c.EnsureSame()                 // every replica's table hash, at one index
//	}
//
// The fault suite's process backend uses Start with a Config of its own
// (fixed loopback addresses, a results directory, the journal on). The
// Docker backends share Endpoints (Status, /debug/state, /debug/clock and
// the agreed leader over HTTP), Compose and FreePorts.
//
// Per node, NodeOptions choose the binary, extra flags and environment, so
// a test of a rolling upgrade can run an older build on some nodes and
// switch a stopped node to another binary with SetNode before Restart.
package testcluster

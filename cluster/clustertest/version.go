package clustertest

// WaitForVersion waits until every running node's table is at cluster
// version v or above (the leader raises it within seconds of every voter
// reporting that it supports v), so that a test may use what v brings
// through any node.
func (c *Cluster) WaitForVersion(v uint32) {
	c.t.Helper()
	c.WaitFor("cluster version on every node", func() bool {
		for _, i := range c.Running() {
			if c.Node(i).Status().ClusterVersion < v {
				return false
			}
		}
		return true
	})
}

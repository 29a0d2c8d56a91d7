// Package cluster owns a raftlock node: Raft with its on-disk storage, the
// one TCP port shared by Raft and the HTTP API, membership, the forwarding
// of writes and reads to the leader, cluster time, and the handlers of the
// raftlock.v1 API, health and metrics.
package cluster

// Package fsm owns the lock table: the deterministic state machine that every
// raftlock replica applies, entry by entry, to reach the same state.
//
// A Table holds the held locks, the FIFO wait queues, the remembered request
// ids and the cluster time. It changes only through Apply, which takes a
// Command and the Raft index of its entry and returns a Result. Apply reads no
// clock, draws no random numbers, starts no goroutines and does no I/O: time
// arrives inside each command, stamped by the leader. Snapshot and Restore
// carry the whole state; two equal states write byte-identical snapshots.
//
// The package imports no network and no Raft code; the raftfsm subpackage
// adapts a Table to hashicorp/raft's FSM interface. Commands have their own
// versioned binary encoding (Encode, Decode), independent of the wire API.
package fsm

// Package history owns what a fault-injection run records: the client
// operations, each node's journal of applied Raft entries, and the nemesis
// timeline, with their JSON encodings and the helpers that load and save them.
//
// File formats (all UTF-8 JSON):
//
//   - Operations: JSON lines, one Op per line, in any order (checkers sort
//     what they need). JSON lines survive a runner that dies half-way: every
//     complete line is a usable operation. Durations (Op.Expire) are integer
//     nanoseconds; times (Invoke, Return, Deadline) are nanoseconds since the
//     run started on the runner's one monotonic clock.
//   - Journals: JSON lines, one Entry per line, written by a node started with
//     its debug journal flag, in the order the node applied them. A node killed
//     with SIGKILL may leave a partly written last line, and after a restart the
//     node appends to the same file; ReadJournal recovers from such torn lines
//     and counts them.
//   - Timeline: one indented JSON document, an array of Fault, small and meant
//     to be read by people as well as programs.
//
// The package has no dependency on a running cluster; the checker package
// consumes these types.
package history

// Package loadgen runs the acquire -> release loop of raftlock's load tools
// and measures it the same way whatever lock service sits behind it: the
// raftlock Go client in cmd/lockbench, etcd's concurrency.Mutex in
// bench/etcd. A Driver makes one Caller per concurrent caller; Run drives
// them through a warm-up and a measured window and returns a Result, the
// JSON record that `lockbench report` and `lockbench compare` read.
//
// The loop (Run's contract): each caller takes its key (its own, or one of
// Config.Keys shared keys), releases it, and starts again, until the window
// ends. A pair counts when its release completes inside the window; its
// acquire and release times go into log-linear histograms accurate to
// 1/64 of the value. Errors are counted by kind, not fatal; after an error
// that is not a refusal (the key was busy, the wait timed out) the caller
// pauses 10 ms, so a cluster in trouble is not hammered in a spin.
package loadgen

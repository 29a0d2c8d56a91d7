package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftlock/raftlock/client"
)

// maxKeysPerRequest is the server's limit on the keys of one request.
const maxKeysPerRequest = 64

// FillResult is the outcome of a fill, as --json prints it.
type FillResult struct {
	Owner       string  `json:"owner"`
	Prefix      string  `json:"prefix"`
	Locks       int     `json:"locks"`
	Requests    int     `json:"requests"`
	ElapsedSec  float64 `json:"elapsed_s"`
	LocksPerSec float64 `json:"locks_per_s"`
	Released    int     `json:"released,omitempty"`
}

// fillCmd takes --count locks that never expire (or, with --release, frees
// every lock of --owner), so that memory, snapshots and restarts can be
// measured with a full table.
func fillCmd(args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("lockbench fill", flag.ContinueOnError)
	cf.register(fs)
	count := fs.Int("count", 1_000_000, "locks to take")
	batch := fs.Int("batch", maxKeysPerRequest, "keys per acquire (1-64)")
	callers := fs.Int("callers", 8, "concurrent requests")
	owner := fs.String("owner", "lockbench-fill", "owner of the locks")
	prefix := fs.String("prefix", "fill/", "key prefix; keys are PREFIX%09d")
	expire := fs.Duration("expire", 0, "time to live of the locks (0: never expire)")
	release := fs.Bool("release", false, "free every lock of --owner instead (one ReleaseAll)")
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *count < 1:
		return usagef("--count must be at least 1")
	case *batch < 1 || *batch > maxKeysPerRequest:
		return usagef("--batch must be 1 to %d", maxKeysPerRequest)
	case *callers < 1:
		return usagef("--callers must be at least 1")
	case *owner == "":
		return usagef("--owner must not be empty: anonymous locks cannot be freed by owner")
	}
	cl, err := cf.newClient(nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	if err := waitReady(ctx, cl, 30*time.Second); err != nil {
		return err
	}
	res := FillResult{Owner: *owner, Prefix: *prefix}
	start := time.Now()
	if *release {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if res.Released, err = cl.ReleaseAll(cctx, *owner); err != nil {
			return err
		}
	} else {
		if res.Requests, err = fill(ctx, cl, *count, *batch, *callers, *owner, *prefix, *expire, stderr); err != nil {
			return err
		}
		res.Locks = *count
	}
	res.ElapsedSec = time.Since(start).Seconds()
	if res.Locks > 0 {
		res.LocksPerSec = float64(res.Locks) / res.ElapsedSec
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if *release {
		fmt.Fprintf(stdout, "released %d locks of %q in %.2fs\n", res.Released, res.Owner, res.ElapsedSec)
		return nil
	}
	fmt.Fprintf(stdout, "took %d locks (%s%09d...) in %d requests in %.2fs: %.0f locks/s\n",
		res.Locks, res.Prefix, 0, res.Requests, res.ElapsedSec, res.LocksPerSec)
	return nil
}

// fill takes count keys in batches of batch keys, callers at a time, and
// returns the number of requests. The client keeps a Lock value per
// request (count/batch of them) until it is closed; nothing is refreshed.
func fill(ctx context.Context, cl *client.Client, count, batch, callers int, owner, prefix string, expire time.Duration, progress io.Writer) (int, error) {
	var next, requests, granted atomic.Int64
	var firstErr error
	var once sync.Once
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= count {
					return
				}
				keys := make([]string, 0, batch)
				for i := from; i < min(from+batch, count); i++ {
					keys = append(keys, fmt.Sprintf("%s%09d", prefix, i))
				}
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				_, err := cl.Acquire(cctx, keys, client.WithOwner(owner), client.WithExpire(expire))
				cancel()
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("acquire %s..: %w", keys[0], err); close(stop) })
					return
				}
				requests.Add(1)
				granted.Add(int64(len(keys)))
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-finished:
			if firstErr != nil {
				return int(requests.Load()), firstErr
			}
			if got := granted.Load(); got != int64(count) {
				return int(requests.Load()), errors.New("fill ended early")
			}
			return int(requests.Load()), nil
		case now := <-tick.C:
			g := granted.Load()
			fmt.Fprintf(progress, "lockbench fill: %d of %d locks (%.0f/s)\n", g, count, float64(g)/now.Sub(start).Seconds())
		}
	}
}

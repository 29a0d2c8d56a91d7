package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raftlock/raftlock/client"
)

// watch and top run until interrupted (SIGINT, SIGTERM), not for --timeout:
// run gives them a context that ends on a signal (streaming).

var streaming = map[string]bool{"watch": true, "top": true}

func watchOptions(key string, owner ownerFlag, from uint64, noWaiters bool) []client.WatchOption {
	var opts []client.WatchOption
	if key != "" {
		opts = append(opts, client.WatchKey(key))
	}
	if owner.set {
		opts = append(opts, client.WatchOwner(owner.v))
	}
	if from > 0 {
		opts = append(opts, client.WatchFrom(from))
	}
	if noWaiters {
		opts = append(opts, client.WatchNoWaiters())
	}
	return opts
}

func watchCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var owner ownerFlag
	fs.Var(&owner, "owner", "only events of this owner (\"\" for anonymous locks)")
	key := fs.String("key", "", "watch this one key (instead of PREFIX)")
	from := fs.Uint64("from", 0, "resume after this Raft index instead of starting with the current state")
	noWaiters := fs.Bool("no-waiters", false, "leave out waiters joining and leaving queues")
	count := fs.Int("count", 0, "stop after this many events (0: run until interrupted)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 1 || (len(args) == 1 && *key != "") {
			return usagef("watch takes one PREFIX (or --key KEY)")
		}
		prefix := ""
		if len(args) == 1 {
			prefix = args[0]
		}
		seen := 0
		enc := json.NewEncoder(e.stdout)
		for u, err := range e.cl.Watch(ctx, prefix, watchOptions(*key, owner, *from, *noWaiters)...) {
			if err != nil {
				if ctx.Err() != nil {
					return nil // interrupted
				}
				return err
			}
			switch {
			case u.Snapshot:
				if e.g.json {
					if err := enc.Encode(map[string]any{"snapshot": snapshotJSON(u)}); err != nil {
						return err
					}
					continue
				}
				what := "snapshot"
				if u.Resync {
					what = "resync (" + u.Reason + ")"
				}
				fmt.Fprintf(e.stdout, "%s at index %d: %d keys\n", what, u.Index, len(u.Keys))
				for _, k := range u.Keys {
					fmt.Fprintf(e.stdout, "  %s\n", keyLine(k))
				}
			case len(u.Events) > 0:
				for _, ev := range u.Events {
					if e.g.json {
						if err := enc.Encode(ev); err != nil {
							return err
						}
					} else {
						fmt.Fprintln(e.stdout, eventLine(ev))
					}
					if seen++; *count > 0 && seen >= *count {
						return nil
					}
				}
			}
		}
		return nil
	}
}

// eventLine is one event as `lockctl watch` prints it.
func eventLine(ev client.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s %s owner=%q", ev.Index, fmtClusterTime(ev.ClusterTime), ev.Kind, ev.Key, ev.Owner)
	if ev.Token != 0 {
		fmt.Fprintf(&b, " token=%d", ev.Token)
	}
	if ev.Mode != client.Exclusive {
		fmt.Fprintf(&b, " mode=%s", ev.Mode)
	}
	switch ev.Kind {
	case client.EventAcquired, client.EventHandedOff, client.EventRefreshed:
		if ev.Expire > 0 {
			fmt.Fprintf(&b, " expire=%s", ev.Expire)
		} else {
			b.WriteString(" expire=never")
		}
	case client.EventWaiterJoined:
		fmt.Fprintf(&b, " wait=%s", ev.Expire)
	}
	if ev.Previous != "" {
		fmt.Fprintf(&b, " from=%q", ev.Previous)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", ev.Reason)
	}
	if ev.RequestID != "" {
		fmt.Fprintf(&b, " request=%s", ev.RequestID)
	}
	return b.String()
}

func fmtClusterTime(d time.Duration) string { return "t=" + d.Round(time.Millisecond).String() }

func keyLine(k client.WatchedKey) string {
	s := k.Key + " free"
	if k.Held {
		l := k.Lock
		s = fmt.Sprintf("%s held by %q token=%d expires=%s", k.Key, l.Owner, l.Token, expiry(l))
		if len(l.Holders) > 0 {
			var hs []string
			for _, h := range l.Holders {
				hs = append(hs, fmt.Sprintf("%q", h.Owner))
			}
			s = fmt.Sprintf("%s held %s by %s token=%d", k.Key, l.Mode, strings.Join(hs, ","), l.Token)
		}
	}
	if len(k.Waiters) > 0 {
		var ws []string
		for _, w := range k.Waiters {
			ws = append(ws, fmt.Sprintf("%q", w.Owner))
		}
		s += " waiting: " + strings.Join(ws, " ")
	}
	return s
}

type watchedKeyJSON struct {
	lockJSON
	Queue []waiterJSON `json:"queue,omitempty"`
}

type waiterJSON struct {
	Owner     string `json:"owner"`
	RequestID string `json:"request_id"`
	WaitLeft  string `json:"wait_left"`
}

func snapshotJSON(u client.WatchUpdate) map[string]any {
	keys := make([]watchedKeyJSON, 0, len(u.Keys))
	for _, k := range u.Keys {
		wk := watchedKeyJSON{lockJSON: lockJSON{Key: k.Key, Waiters: len(k.Waiters)}}
		if k.Held {
			wk.lockJSON = lockOut(k.Lock)
		}
		for _, w := range k.Waiters {
			wk.Queue = append(wk.Queue, waiterJSON{Owner: w.Owner, RequestID: w.RequestID, WaitLeft: w.WaitLeft.String()})
		}
		keys = append(keys, wk)
	}
	return map[string]any{"index": u.Index, "resync": u.Resync, "reason": u.Reason, "keys": keys}
}

// top: the hottest keys, from a watch. A key's heat is its queue length,
// then how many events it had in the last minute, then how long it has
// been held.

type topKey struct {
	key     string
	holders []string
	since   time.Duration // cluster time of the current grant; -1: before the watch began
	queue   []string      // request ids in line
	owners  map[string]string
	recent  []time.Duration // cluster times of recent events
}

type topView struct {
	keys map[string]*topKey
	now  time.Duration // latest cluster time seen
}

func (v *topView) get(k string) *topKey {
	t := v.keys[k]
	if t == nil {
		t = &topKey{key: k, since: -1, owners: map[string]string{}}
		v.keys[k] = t
	}
	return t
}

func (v *topView) apply(u client.WatchUpdate) {
	v.now = max(v.now, u.ClusterTime)
	if u.Snapshot {
		v.keys = map[string]*topKey{}
		for _, k := range u.Keys {
			t := v.get(k.Key)
			if k.Held {
				t.holders = []string{k.Lock.Owner}
				if len(k.Lock.Holders) > 0 {
					t.holders = nil
					for _, h := range k.Lock.Holders {
						t.holders = append(t.holders, h.Owner)
					}
				}
			}
			for _, w := range k.Waiters {
				t.queue = append(t.queue, w.RequestID)
				t.owners[w.RequestID] = w.Owner
			}
		}
		return
	}
	for _, ev := range u.Events {
		t := v.get(ev.Key)
		t.recent = append(t.recent, ev.ClusterTime)
		switch ev.Kind {
		case client.EventAcquired, client.EventHandedOff:
			if !slices.Contains(t.holders, ev.Owner) {
				t.holders = append(t.holders, ev.Owner)
				t.since = ev.ClusterTime
			}
			t.dequeue(ev.RequestID)
		case client.EventReleased, client.EventExpired, client.EventForceReleased:
			if i := slices.Index(t.holders, ev.Owner); i >= 0 {
				t.holders = slices.Delete(t.holders, i, i+1)
			}
		case client.EventWaiterJoined:
			t.queue = append(t.queue, ev.RequestID)
			t.owners[ev.RequestID] = ev.Owner
		case client.EventWaiterLeft:
			t.dequeue(ev.RequestID)
		}
	}
}

func (t *topKey) dequeue(rid string) {
	if i := slices.Index(t.queue, rid); i >= 0 {
		t.queue = slices.Delete(t.queue, i, i+1)
		delete(t.owners, rid)
	}
}

// render writes the n hottest keys.
func (v *topView) render(w io.Writer, n int) {
	var rows []*topKey
	for k, t := range v.keys {
		t.recent = slices.DeleteFunc(t.recent, func(at time.Duration) bool { return at < v.now-time.Minute })
		if len(t.holders) == 0 && len(t.queue) == 0 && len(t.recent) == 0 {
			delete(v.keys, k)
			continue
		}
		rows = append(rows, t)
	}
	slices.SortFunc(rows, func(a, b *topKey) int {
		if c := len(b.queue) - len(a.queue); c != 0 {
			return c
		}
		if c := len(b.recent) - len(a.recent); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	if len(rows) > n {
		rows = rows[:n]
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tHOLDER\tHELD FOR\tQUEUE\tEVENTS/MIN\tNEXT")
	for _, t := range rows {
		holder, held := "-", "-"
		if len(t.holders) > 0 {
			holder = fmt.Sprintf("%q", t.holders[0])
			if len(t.holders) > 1 {
				holder += fmt.Sprintf(" +%d", len(t.holders)-1)
			}
			if t.since >= 0 {
				held = (v.now - t.since).Round(100 * time.Millisecond).String()
			} else {
				held = "(before watch)"
			}
		}
		next := "-"
		if len(t.queue) > 0 {
			next = fmt.Sprintf("%q", t.owners[t.queue[0]])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", t.key, holder, held, len(t.queue), len(t.recent), next)
	}
	tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "no locks held or waited for")
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func topCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	n := fs.Int("n", 20, "show this many keys")
	interval := fs.Duration("interval", time.Second, "how often to redraw")
	once := fs.Bool("once", false, "print the current state once and exit (for scripts)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 1 {
			return usagef("top takes at most one PREFIX")
		}
		if *n < 1 || *interval <= 0 {
			return usagef("--n and --interval must be positive")
		}
		prefix := ""
		if len(args) == 1 {
			prefix = args[0]
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		v := &topView{keys: map[string]*topKey{}}
		updates := make(chan client.WatchUpdate, 64)
		errc := make(chan error, 1)
		go func() {
			defer close(updates)
			for u, err := range e.cl.Watch(ctx, prefix) {
				if err != nil {
					errc <- err
					return
				}
				select {
				case updates <- u:
				case <-ctx.Done():
					return
				}
			}
		}()
		tty := isTerminal(e.stdout)
		tick := time.NewTicker(*interval)
		defer tick.Stop()
		lastSeen := time.Now()
		draw := func() {
			now := v.now
			v.now += time.Since(lastSeen) // cluster time moves on between updates
			var b strings.Builder
			if tty {
				b.WriteString("\x1b[H\x1b[2J")
			}
			fmt.Fprintf(&b, "raftlock top %s  (cluster time %s)\n", prefix, v.now.Round(time.Second))
			v.render(&b, *n)
			if !tty {
				b.WriteString("\n")
			}
			io.WriteString(e.stdout, b.String())
			v.now = now
		}
		for {
			select {
			case u, ok := <-updates:
				if !ok {
					select {
					case err := <-errc:
						if ctx.Err() == nil {
							return err
						}
					default:
					}
					return nil
				}
				v.apply(u)
				lastSeen = time.Now()
				if *once && u.Snapshot {
					v.render(e.stdout, *n)
					return nil
				}
			case <-tick.C:
				if !*once {
					draw()
				}
			case <-ctx.Done():
				return nil
			}
		}
	}
}

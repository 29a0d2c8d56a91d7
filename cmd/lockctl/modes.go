package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/raftlock/raftlock/client"
)

// modeFlags are acquire's and exec's --shared, --limit and --permits.
type modeFlags struct {
	shared  *bool
	limit   *int
	permits *int
}

func registerModeFlags(fs *flag.FlagSet) modeFlags {
	return modeFlags{
		shared:  fs.Bool("shared", false, "a shared (read) lock: many shared holders at once, no exclusive one; needs an owner"),
		limit:   fs.Int("limit", 0, "a semaphore with this many permits in all (1 to 1000); every lock on the key names the same"),
		permits: fs.Int("permits", 0, "permits to take of the semaphore (1 to --limit; default 1); needs --limit"),
	}
}

// options returns the lock options the flags ask for.
func (m modeFlags) options() ([]client.LockOption, error) {
	switch {
	case *m.shared && (*m.limit != 0 || *m.permits != 0):
		return nil, usagef("--shared and --limit/--permits do not go together: a lock is shared or a semaphore")
	case *m.shared:
		return []client.LockOption{client.WithShared()}, nil
	case *m.permits != 0 && *m.limit == 0:
		return nil, usagef("--permits needs --limit (the semaphore's number of permits)")
	case *m.limit != 0:
		permits := max(*m.permits, 1)
		return []client.LockOption{client.WithSemaphore(*m.limit, permits)}, nil
	}
	return nil, nil
}

// slotsText is a semaphore lock's slots per key, "key=0,1 other=2".
func slotsText(l *client.Lock) string {
	var parts []string
	for _, k := range l.Keys() {
		var ns []string
		for _, s := range l.Slots()[k] {
			ns = append(ns, strconv.FormatUint(uint64(s), 10))
		}
		parts = append(parts, k+"="+strings.Join(ns, ","))
	}
	return strings.Join(parts, " ")
}

// modeText describes a lock's mode for the text output: "" for exclusive.
func modeText(l *client.Lock) string {
	switch l.Mode() {
	case client.Shared:
		return ", shared"
	case client.Semaphore:
		return fmt.Sprintf(", semaphore limit %d, slots %s", l.Limit(), slotsText(l))
	}
	return ""
}

// holderJSON is one holder of a shared or semaphore key.
type holderJSON struct {
	Owner     string   `json:"owner"`
	Token     uint64   `json:"token"`
	ExpiresIn string   `json:"expires_in,omitempty"`
	Slots     []uint32 `json:"slots,omitempty"`
}

func holdersOut(li client.LockInfo) []holderJSON {
	var out []holderJSON
	for _, h := range li.Holders {
		hj := holderJSON{Owner: h.Owner, Token: h.Token, Slots: h.Slots}
		if h.Expires {
			hj.ExpiresIn = h.ExpiresIn.String()
		}
		out = append(out, hj)
	}
	return out
}

// heldText is how get describes a held key.
func heldText(li client.LockInfo) string {
	if li.Mode == client.Exclusive {
		return fmt.Sprintf("held by %q", li.Owner)
	}
	var owners []string
	for _, h := range li.Holders {
		owners = append(owners, strconv.Quote(h.Owner))
	}
	what := "shared"
	if li.Mode == client.Semaphore {
		what = fmt.Sprintf("as a semaphore of limit %d", li.Limit)
	}
	return fmt.Sprintf("held %s by %s", what, strings.Join(owners, ", "))
}

package fsm

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply measures Decode+Apply of an uncontended acquire and
// release, with a request id and an expiry as the client sends them, on a
// table that already holds 1k or 1M locks, in each mode: exclusive
// ("acquire/held=1k"), shared ("acquire-shared/...") and a semaphore of
// limit 4, one permit ("acquire-semaphore/..."). The cost must not grow
// with the number of held locks, and the modes must stay in one cost class.
//
//	go test -run '^$' -bench BenchmarkApply -benchmem ./fsm/
func BenchmarkApply(b *testing.B) {
	for _, held := range []int{1_000, 1_000_000} {
		tab, index := prefilled(b, held)
		for _, mode := range []Mode{ModeExclusive, ModeShared, ModeSemaphore} {
			index = benchApply(b, tab, index, held, mode)
		}
	}
}

func benchApply(b *testing.B, tab *Table, index uint64, held int, mode Mode) uint64 {
	{
		name := fmt.Sprintf("held=%s", count(held))
		suffix := ""
		if mode != ModeExclusive {
			suffix = "-" + mode.String()
		}
		encode := func(op Op, i int) []byte {
			c := Command{Op: op, Time: tab.Now(), Keys: []string{fmt.Sprintf("bench/%09d", i)}, Owner: "worker-17",
				Expire: 30 * time.Second, RequestID: fmt.Sprintf("%s%s-%09d-%s", name, suffix, i, op)}
			if op == OpAcquire && mode != ModeExclusive {
				c.Mode = mode
				if mode == ModeSemaphore {
					c.Limit, c.Permits = 4, 1
				}
			}
			return c.Encode(nil)
		}
		apply := func(b *testing.B, enc []byte) {
			c, err := Decode(enc)
			if err != nil {
				b.Fatal(err)
			}
			index++
			if r := tab.Apply(index, c); r.Code != CodeOK {
				b.Fatalf("%s: %s", c.Op, r.Code)
			}
		}
		b.Run("acquire"+suffix+"/"+name, func(b *testing.B) {
			cmds := make([][]byte, b.N)
			for i := range cmds {
				cmds[i] = encode(OpAcquire, i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				apply(b, cmds[i])
			}
			b.StopTimer()
			for i := range b.N { // back to `held` locks for the next run
				apply(b, encode(OpRelease, i))
			}
		})
		b.Run("release"+suffix+"/"+name, func(b *testing.B) {
			cmds := make([][]byte, b.N)
			for i := range cmds {
				apply(b, encode(OpAcquire, i))
				cmds[i] = encode(OpRelease, i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				apply(b, cmds[i])
			}
		})
	}
	return index
}

// prefilled returns a table holding n locks with expiries spread over an
// hour, as a busy cluster would.
func prefilled(b *testing.B, n int) (*Table, uint64) {
	b.Helper()
	tab := New(DefaultConfig())
	now := int64(time.Hour)
	index := uint64(1)
	tab.Apply(index, &Command{Op: OpSetVersion, Time: now, ClusterVersion: Version2}) // modes need it
	for i := range n {
		index++
		c := &Command{Op: OpAcquire, Time: now, Keys: []string{fmt.Sprintf("held/%09d", i)}, Owner: fmt.Sprintf("o%d", i%1000),
			Expire: time.Hour + time.Duration(i)*time.Millisecond}
		if r := tab.Apply(index, c); r.Code != CodeOK {
			b.Fatalf("prefill: %s", r.Code)
		}
	}
	return tab, index
}

func count(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1_000)
}

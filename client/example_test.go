package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster"
)

// startExampleNode starts a real one-node raftlock cluster on a free port
// in a temporary directory, and returns its address and a function that
// stops it. In production the endpoints are those of a running cluster.
func startExampleNode() (addr string, stop func()) {
	n, stop := startNode()
	return n.Addr(), stop
}

func startNode() (*cluster.Node, func()) {
	dir, err := os.MkdirTemp("", "raftlock-example")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	cfg := cluster.DefaultConfig()
	cfg.DataDir, cfg.Listener, cfg.Logger = dir, ln, slog.New(slog.DiscardHandler)
	n, err := cluster.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return n, func() { _ = n.Close(); _ = os.RemoveAll(dir) }
}

// fencedStore is a resource that takes fencing tokens: it refuses a write
// whose token is lower than the highest it has seen, so a client that
// lost its lock without noticing cannot overwrite a newer holder's work.
type fencedStore struct {
	mu      sync.Mutex
	highest uint64
	value   string
}

func (s *fencedStore) Write(token uint64, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return fmt.Errorf("stale fencing token %d (highest seen %d)", token, s.highest)
	}
	s.highest, s.value = token, value
	return nil
}

// Execute runs a function while holding a lock, and releases it however
// the function ends. The function's context carries the lock, whose
// fencing token goes along with every write to the protected resource.
func ExampleClient_Execute() {
	addr, stop := startExampleNode()
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stock := 5
	store := &fencedStore{}
	err = c.Execute(ctx, []string{"stock:prod_123"}, func(ctx context.Context) error {
		lock, _ := client.LockFromContext(ctx)
		if stock == 0 {
			return errors.New("sold out")
		}
		stock--
		return store.Write(lock.Token(), fmt.Sprintf("stock=%d", stock))
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(store.value)
	// Output: stock=4
}

// Acquire takes a lock and returns a handle to it; Release gives it back.
// A try-lock (no wait) on a busy key fails at once with ErrLockHeld,
// whose text is the server's message.
func ExampleClient_Acquire() {
	addr, stop := startExampleNode()
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lock, err := c.Acquire(ctx, []string{"invoice-42"}, client.WithOwner("billing-worker-1"), client.WithExpire(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held by", lock.Owner(), "until well before", time.Until(lock.Deadline()) < 30*time.Second)

	_, err = c.Acquire(ctx, []string{"invoice-42"}, client.WithOwner("billing-worker-2"))
	fmt.Println(errors.Is(err, client.ErrLockHeld), err)

	if err := lock.Release(ctx); err != nil {
		log.Fatal(err)
	}
	info, err := c.Get(ctx, "invoice-42")
	fmt.Println("free after release:", info == nil, err)
	// Output:
	// held by billing-worker-1 until well before true
	// true Failed to acquire lock for key "invoice-42"
	// free after release: true <nil>
}

// Fencing tokens protect a resource when a lock holder stalls: here the
// first holder's lock expires (it never refreshed), a second holder gets
// the key with a higher token, and the first holder's late write is
// refused by the resource.
func Example_fencingToken() {
	addr, stop := startExampleNode()
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := &fencedStore{}

	first, err := c.Acquire(ctx, []string{"report"}, client.WithOwner("a"), client.WithExpire(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	// The first holder stalls; its lock expires on the server, and the
	// second holder, waiting in the queue, is granted the key.
	second, err := c.Acquire(ctx, []string{"report"}, client.WithOwner("b"), client.WithWait(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	<-first.Done() // the client knew all along that the first lock was gone
	fmt.Println("first lock:", first.Err() != nil)
	fmt.Println("second token is higher:", second.Token() > first.Token())
	fmt.Println("second writes:", store.Write(second.Token(), "from b"))
	fmt.Println("first writes late:", store.Write(first.Token(), "from a") != nil)
	fmt.Println("store holds:", store.value)
	_ = second.Release(ctx)
	// Output:
	// first lock: true
	// second token is higher: true
	// second writes: <nil>
	// first writes late: true
	// store holds: from b
}

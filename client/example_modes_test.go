package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/raftlock/raftlock/client"
)

// startModesNode is startExampleNode for shared and semaphore locks: it
// also waits until the new cluster has raised its version to 2, which it
// does within seconds of its start (a long-running cluster has long done
// so).
func startModesNode() (addr string, stop func()) {
	n, stop := startNode()
	for end := time.Now().Add(30 * time.Second); n.Status().ClusterVersion < 2; {
		if time.Now().After(end) {
			log.Fatal("the cluster version was not raised to 2")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n.Addr(), stop
}

// A shared lock lets many readers in at once and keeps the writer out;
// the writer's fencing token is above every reader grant it waited for.
func Example_sharedLock() {
	addr, stop := startModesNode()
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r1, err := c.Acquire(ctx, []string{"stock"}, client.WithShared(), client.WithOwner("report-1"))
	if err != nil {
		log.Fatal(err)
	}
	r2, err := c.Acquire(ctx, []string{"stock"}, client.WithShared(), client.WithOwner("report-2"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("readers:", r1.Mode(), r2.Mode())
	_, err = c.Acquire(ctx, []string{"stock"}, client.WithOwner("recount"))
	fmt.Println("writer meanwhile:", errors.Is(err, client.ErrLockHeld))

	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	w, err := c.Acquire(ctx, []string{"stock"}, client.WithOwner("recount"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("writer after:", w.Mode(), w.Token() > r2.Token())
	_ = w.Release(ctx)
	// Output:
	// readers: shared shared
	// writer meanwhile: true
	// writer after: exclusive true
}

// A semaphore of two permits: two holders at once, each with its own slot
// (what a resource fences per key and slot), a third refused; a lock that
// names another limit for the key fails with ErrWrongMode.
func Example_semaphore() {
	addr, stop := startModesNode()
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, who := range []string{"import-1", "import-2", "import-3"} {
		l, err := c.Acquire(ctx, []string{"supplier-api"}, client.WithSemaphore(2, 1), client.WithOwner(who))
		if err != nil {
			fmt.Println(who, "refused:", errors.Is(err, client.ErrLockHeld))
			continue
		}
		fmt.Println(who, "slots", l.Slots()["supplier-api"])
	}
	_, err = c.Acquire(ctx, []string{"supplier-api"}, client.WithSemaphore(3, 1), client.WithOwner("import-4"))
	fmt.Println(errors.Is(err, client.ErrWrongMode), err)
	// Output:
	// import-1 slots [0]
	// import-2 slots [1]
	// import-3 refused: true
	// true wrong lock mode: key "supplier-api" is a semaphore with limit 2, the request names limit 3
}

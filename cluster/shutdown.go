package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Shutdown stops the node gracefully: it stops taking new waits, hands
// leadership to another voter if it leads, drains the API, lets the
// abandons of callers it sent away reach the log, then stops Raft and
// closes its storage and port. It is safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.stop(ctx, true)
}

// Close stops the node abruptly: no hand-off, no draining. Tests use it to
// simulate a crash; it is safe to call more than once.
func (n *Node) Close() error {
	return n.stop(context.Background(), false)
}

func (n *Node) stop(ctx context.Context, graceful bool) error {
	first := false
	n.shutdownOnce.Do(func() { first = true })
	if !first {
		<-n.stopped
		return nil
	}
	defer close(n.stopped)
	n.log.Info("node stopping", "graceful", graceful)
	close(n.shutdownCh)
	var errs []error
	if graceful {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
		defer cancel()
		if other, _ := n.hasOtherVoter(); n.leading() != nil && other {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("leadership transfer failed", "err", err)
			}
		}
		if err := n.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain http: %w", err))
		}
		n.abandons.wait(ctx)
	}
	_ = n.srv.Close()
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("stop raft: %w", err))
	}
	close(n.raftDown)
	_ = n.trans.Close()
	n.port.close()
	n.peers.close()
	n.wg.Wait()
	n.abandons.wait(context.Background()) // they end once Raft is down
	if err := n.store.close(); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
		errs = append(errs, fmt.Errorf("close raft store: %w", err))
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

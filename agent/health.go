package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/edge-agent/edge-agent/localapi"
)

// Healthy reports whether the agent works end to end: the queue's committer completes a cycle (a
// stuck disk or a deadlock would hang it) and the local API answers on its own socket. systemd's
// watchdog is pinged only while this holds, so a wedged agent is restarted instead of sitting there.
// Call it only after Run's ready callback (it reads what Run set up); safe concurrently with Run.
func (a *Agent) Healthy(ctx context.Context) error {
	store := a.store
	if store == nil {
		return errors.New("not running")
	}
	if err := store.Flush(ctx); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	c := localapi.NewClient(a.cfg.Socket)
	defer c.Close()
	if _, err := c.Status(ctx); err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	return nil
}

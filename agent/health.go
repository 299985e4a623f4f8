package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Healthy reports whether the agent works end to end: the queue's committer completes a cycle (a
// stuck disk or a deadlock would hang it) and the local API answers on its own socket. systemd's
// watchdog is pinged only while this holds, so a wedged agent is restarted instead of sitting there.
// Call it only after Run's ready callback (it reads what Run set up); safe concurrently with Run.
func (a *Agent) Healthy(ctx context.Context) error {
	q := a.q
	if q == nil {
		return errors.New("not running")
	}
	if err := q.Flush(ctx); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.cfg.Socket)
	}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://edge-agent/v1/status", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("local API: GET /v1/status answered %s", resp.Status)
	}
	return nil
}

package transport

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// A failing Endpoint hook reaches OnConnectError as ErrEndpoint wrapping the hook's own error, so a
// caller classifies it with errors.Is instead of reading the message; the next attempt calls it again.
func TestEndpointErrorIsSentinel(t *testing.T) {
	b := startBroker(t, devbroker.Options{})
	cause := errors.New("no credentials yet")
	var calls atomic.Int64
	var mu sync.Mutex
	var got []error
	cfg := Config{
		ClientID: "ep-err", Backoff: fastBackoff,
		OnConnectError: func(err error) { mu.Lock(); got = append(got, err); mu.Unlock() },
		Endpoint: func(ctx context.Context) (string, http.Header, error) {
			if calls.Add(1) == 1 {
				return "", nil, cause
			}
			return b.URL(), nil, nil
		},
	}
	c := startClient(t, cfg, newFakeSource())
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return c.Status().State == StateConnected })
	c.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !errors.Is(got[0], ErrEndpoint) || !errors.Is(got[0], cause) ||
		got[0].Error() != "resolving the broker endpoint: no credentials yet" {
		t.Fatalf("OnConnectError got %v, want one ErrEndpoint wrapping the hook's error", got)
	}
}

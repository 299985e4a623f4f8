package rabbitmq

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

var shared struct {
	mu  sync.Mutex
	b   *Broker
	err error
	dir string
}

// Shared returns the test binary's one shared broker, starting it on first use
// (t.Fatal if it cannot start; later calls fail the same way without retrying).
// Its directory is not a t.TempDir: CloseShared, called from TestMain, stops it and
// removes the directory. Tests that Stop, Kill or Restart the broker should use
// Start instead (or Restart it before they end).
func Shared(t testing.TB) *Broker {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "edge-agent-rabbitmq-")
		if err != nil {
			shared.err = err
		} else {
			shared.dir = dir
			shared.b, shared.err = start(dir)
			if shared.err != nil && shared.b != nil {
				shared.b.close()
				shared.b = nil
			}
			if shared.err == nil {
				t.Logf("rabbitmq: shared node %s booted in %v", shared.b.node, shared.b.BootTime().Round(time.Millisecond))
			}
		}
	}
	if shared.err != nil {
		t.Fatalf("rabbitmq: shared broker: %v", shared.err)
	}
	return shared.b
}

// CloseShared kills the shared broker (if Shared started one) and removes its
// directory. For TestMain, after m.Run; safe to call when none was started.
func CloseShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b != nil {
		shared.b.close()
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			fmt.Fprintf(os.Stderr, "rabbitmq: remove %s: %v\n", shared.dir, err)
		}
	}
	shared.b, shared.err, shared.dir = nil, nil, ""
}

package localapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

func TestBudgetAcquireGrowRelease(t *testing.T) {
	b := newBudget(1000)
	ctx := context.Background()
	r1, err := b.acquire(ctx, 600, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Not enough left: refused after the wait, counted, naming the key.
	if _, err := b.acquire(ctx, 500, 20*time.Millisecond); !errors.Is(err, errBudgetExhausted) || b.refused.Load() != 1 {
		t.Fatalf("acquire past the budget: %v, refused %d", err, b.refused.Load())
	} else if want := "api.body_budget"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
	// grow never waits: it fails at once when the bytes are not there.
	r2, err := b.acquire(ctx, 300, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.grow(200); !errors.Is(err, errBudgetExhausted) {
		t.Fatalf("grow past the budget: %v", err)
	}
	if err := r1.grow(100); err != nil || b.inUse() != 1000 {
		t.Fatalf("grow within: %v, in use %d", err, b.inUse())
	}
	r2.release()
	// A waiter is served, in order, once bytes are released.
	got := make(chan error, 1)
	go func() {
		r, err := b.acquire(ctx, 700, 10*time.Second)
		if err == nil {
			r.release()
		}
		got <- err
	}()
	testutil.WaitFor(t, 5*time.Second, "a waiter", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	r1.release()
	r1.release() // idempotent
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if n := b.inUse(); n != 0 {
		t.Fatalf("in use %d after every release", n)
	}
	// One request never needs more than the whole budget: it is clamped, and alone it fits.
	r, err := b.acquire(ctx, 5000, time.Millisecond)
	if err != nil || r.n != 1000 {
		t.Fatalf("clamped acquire: %v, %d", err, r.n)
	}
	if err := r.grow(1); err != nil {
		t.Fatalf("grow at the clamp: %v", err)
	}
	r.release()
}

// A waiter that gives up (its context ends) leaves the queue, and the waiters behind it are served.
func TestBudgetWaiterGivesUp(t *testing.T) {
	b := newBudget(100)
	r, _ := b.acquire(context.Background(), 100, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := b.acquire(ctx, 100, time.Minute); first <- err }()
	testutil.WaitFor(t, 5*time.Second, "the first waiter", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	second := make(chan error, 1)
	go func() {
		r, err := b.acquire(context.Background(), 10, time.Minute)
		if err == nil {
			r.release()
		}
		second <- err
	}()
	testutil.WaitFor(t, 5*time.Second, "the second waiter", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 2 })
	cancel()
	if err := <-first; !errors.Is(err, errBudgetExhausted) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	r.release()
	if err := <-second; err != nil {
		t.Fatalf("second waiter: %v", err)
	}
	if b.inUse() != 0 {
		t.Fatalf("in use %d", b.inUse())
	}
}

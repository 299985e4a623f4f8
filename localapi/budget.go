package localapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the body budget (api.body_budget): one byte semaphore over every request body the
// local API holds in memory at once, so that no mix of legal requests takes the agent past the
// memory limit of its unit.
//
// What a request is charged is what it really holds at its peak, which is inside queue.Append's one
// commit: the decoded message (payload and topic), the queue's encoding of it (a second copy), and the
// dirty bbolt pages of the commit (a third copy; the queue fills its data pages completely and maps
// its file ahead, so bbolt no longer adds half-full leaf splits or copies on remapping). Measured with
// TestMaxBatchPeakHeap and TestConcurrentRequestsPeakHeap (runtime/metrics, heap profiles):
//   - a raw publish holds about 3 × its payload: it reserves chargeFactor × Content-Length (or
//     × api.max_payload when the length is not known) before reading the body;
//   - an NDJSON publish reserves as it reads: chargeFactor × (topic + decoded payload) plus
//     perMessageCharge for each line (the queue.Message, its record header, bbolt's node entry), plus
//     its line buffer.
//
// A request is never charged more than the whole budget (config makes sure body_budget holds
// max_batch_bytes and max_payload, not three times them), so one request at the size limits can
// always run, alone. A request the budget cannot cover within budgetWait is answered 503 with
// Retry-After and counted; nothing waits without bound and nothing is read before it is covered.
const (
	// chargeFactor is how many copies of a message's bytes a request holds at its peak.
	chargeFactor = 3
	// perMessageCharge is the memory of one message beyond its bytes, measured over 10,000 tiny lines.
	perMessageCharge = 512
	// budgetWait bounds how long a request waits, in arrival order, for the budget to cover it.
	budgetWait = 2 * time.Second
	// retryAfterSeconds is the Retry-After of a 503 for an exhausted budget or connection limit.
	retryAfterSeconds = 1
)

// errBudgetExhausted is returned when the body budget cannot cover a request in time.
var errBudgetExhausted = errors.New("body budget exhausted")

// budget is a byte semaphore with FIFO waiters. All methods are safe for concurrent use.
type budget struct {
	size int64

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // FIFO: a large request is not starved by a stream of small ones

	refused atomic.Uint64 // requests answered 503 because the budget could not cover them
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once n is granted
}

func newBudget(size int64) *budget {
	return &budget{size: size}
}

// reservation is what one request holds of a budget. Its methods are for the one goroutine that
// serves the request; release may be called any number of times.
type reservation struct {
	b *budget
	n int64
}

// acquire reserves n bytes (at most the whole budget), waiting in arrival order up to wait or until
// ctx ends. It fails with an error wrapping errBudgetExhausted, counted, when they cannot be had.
func (b *budget) acquire(ctx context.Context, n int64, wait time.Duration) (*reservation, error) {
	n = min(max(n, 0), b.size)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return &reservation{b: b, n: n}, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return &reservation{b: b, n: n}, nil
	case <-t.C:
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted while we gave up: keep it
		b.mu.Unlock()
		return &reservation{b: b, n: n}, nil
	default:
	}
	for i, o := range b.waiters {
		if o == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			break
		}
	}
	b.grantLocked() // the head may have changed
	b.mu.Unlock()
	b.refused.Add(1)
	return nil, b.exhausted(n)
}

// grow adds n bytes to r without waiting (a request that holds part of the budget must not wait for
// more: two of them could wait for each other), ahead of waiters, so that a request let in can
// finish and release. r never holds more than the whole budget.
func (r *reservation) grow(n int64) error {
	b := r.b
	n = min(max(n, 0), b.size-r.n)
	if n == 0 {
		return nil
	}
	b.mu.Lock()
	if b.used+n > b.size {
		b.mu.Unlock()
		b.refused.Add(1)
		return b.exhausted(r.n + n)
	}
	b.used += n
	b.mu.Unlock()
	r.n += n
	return nil
}

// release gives everything r holds back to the budget.
func (r *reservation) release() {
	if r == nil || r.n == 0 {
		return
	}
	b := r.b
	b.mu.Lock()
	b.used -= r.n
	r.n = 0
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked hands free bytes to waiters in arrival order.
func (b *budget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.size {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *budget) exhausted(need int64) error {
	return fmt.Errorf("%w: this request needs %d bytes of api.body_budget (%d bytes), which other requests hold; retry after %ds, send smaller requests, or raise api.body_budget",
		errBudgetExhausted, need, b.size, retryAfterSeconds)
}

// rawCharge is what a raw publish of a body of length bytes is charged (length < 0: not known).
func rawCharge(length, maxPayload int64) int64 {
	if length < 0 {
		length = maxPayload
	}
	return chargeFactor*length + perMessageCharge
}

// messageCharge is what one NDJSON message is charged once decoded.
func messageCharge(topic string, payload []byte) int64 {
	return chargeFactor*int64(len(topic)+len(payload)) + perMessageCharge
}

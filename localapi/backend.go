package localapi

import (
	"context"
	"errors"
	"time"

	"github.com/edge-agent/edge-agent/queue"
)

// Backend is what the local API needs of the agent. *agent.Agent implements it; the HTTP layer
// holds no state of its own beyond its bounds (body budget, connection limit) and counters.
// Every method must be safe for concurrent use.
type Backend interface {
	// CheckTopic validates a publish topic against MQTT's rules and the provider's limits;
	// CheckFilter does the same for a subscription filter.
	CheckTopic(topic string) error
	CheckFilter(filter string) error
	// Store stores msgs durably (fsync'd) in one commit, in order, all or nothing, and returns
	// their ids. Its errors are the queue's (queue.ErrFull, queue.ErrDiskFull, …).
	Store(ctx context.Context, msgs ...queue.Message) ([]uint64, error)
	// WaitDelivered blocks until the message id has left the queue: nil once the broker
	// acknowledged it, queue.ErrDeadLettered, queue.ErrExpired or queue.ErrDropped otherwise.
	WaitDelivered(ctx context.Context, id uint64) error
	// Subscribe opens a subscriber stream for filters; it returns once the broker has
	// acknowledged them when the agent is online. Errors marked ErrBusy answer 503, ErrBadInput
	// 400, anything else 502.
	Subscribe(ctx context.Context, filters []string) (Subscription, error)
	// Status is the agent's state; the server fills in Status.LocalAPI's counters.
	Status() Status
	// DeadLetters returns up to n dead letters with ids above after, in order.
	DeadLetters(after uint64, n int) ([]queue.DeadLetter, error)
	// Requeue moves dead letters back to the tail of the queue with new ids, durably, all or
	// nothing (queue.ErrNotDeadLettered when one is not there).
	Requeue(ctx context.Context, ids ...uint64) ([]uint64, error)
	// DeleteDeadLetters deletes dead letters and returns how many there were.
	DeleteDeadLetters(ctx context.Context, ids ...uint64) (int, error)
	// Identity returns the Cognito identity, creating it (GetId) if the device has none yet; an
	// error marked ErrNotFound when the agent has no Cognito identity pool.
	Identity(ctx context.Context) (Identity, error)
}

// Subscription is one local subscriber stream's buffer, filled by the agent as broker messages
// arrive. Its methods are called by the one goroutine that serves the stream.
type Subscription interface {
	// Wake receives when something was queued.
	Wake() <-chan struct{}
	// Drain hands each queued message to write, in order, and releases it once written; it stops
	// at write's first error (releasing the rest) and returns it.
	Drain(write func(topic string, payload []byte, qos byte, retain bool) error) error
	// Pending reports whether messages are queued (the stream flushes when it has caught up).
	Pending() bool
	// Close ends the subscription and releases what it holds.
	Close()
}

// Classes of Backend errors that decide the answer; a Backend marks an error with Mark.
var (
	ErrBusy     = errors.New("busy")        // 503 with Retry-After: retry later
	ErrBadInput = errors.New("bad request") // 400
	ErrNotFound = errors.New("not found")   // 404
)

// Mark returns an error whose text is err's and which errors.Is matches with class and with
// whatever err matches.
func Mark(err error, class error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, class: class}
}

type marked struct{ err, class error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.class} }

// Limits bound every input of the local API ([api] in the config, with the provider's quotas
// applied by the agent).
type Limits struct {
	MaxPayload     int64 // bytes per message
	MaxTopicBytes  int   // bytes per topic (sizes the longest NDJSON line)
	MaxBatchBytes  int64 // bytes per NDJSON request body
	MaxBatchLines  int   // messages per NDJSON request
	MaxFilters     int   // filters per subscribe request
	BodyBudget     int64 // request-body bytes held at once, all requests
	MaxConnections int   // connections at once
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	// QueueMaxBytes and Overflow are queue.max_bytes and queue.overflow, named in 507 answers.
	QueueMaxBytes int64
	Overflow      string
}

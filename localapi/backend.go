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
	// Route says which brokers a message on topic goes to and checks topic against MQTT's rules
	// and each of those brokers' limits. broker "" routes by the brokers' publish filters (every
	// broker whose filters match); a name sends to that broker only, whatever its filters. Errors
	// are marked ErrBadInput: an unknown broker, a topic no broker takes (the error names the
	// topic and every broker's routes), a topic a target broker cannot carry.
	Route(topic, broker string) (queue.Targets, error)
	// CheckFilter validates a subscription filter against MQTT's rules and the limits of the
	// broker named broker ("" = every broker); an unknown broker is ErrBadInput.
	CheckFilter(filter, broker string) error
	// Store stores msgs[i] for every broker of to[i] durably (fsync'd), all in one commit, in
	// order, all or nothing, and returns their ids (one id per message, the same at every
	// broker). Its errors are the queue's (queue.ErrFull, queue.ErrDiskFull, …).
	Store(ctx context.Context, msgs []queue.Message, to []queue.Targets) ([]uint64, error)
	// WaitDelivered blocks until message id has left the queue of every broker in to: nil once
	// each acknowledged it; otherwise the first failure (queue.ErrDeadLettered, queue.ErrExpired,
	// queue.ErrDropped), naming the broker.
	WaitDelivered(ctx context.Context, id uint64, to queue.Targets) error
	// Subscribe opens a subscriber stream for filters with the broker named broker ("" = every
	// broker); it returns once the brokers have acknowledged them when they are online. Errors
	// marked ErrBusy answer 503, ErrBadInput 400, anything else 502.
	Subscribe(ctx context.Context, filters []string, broker string) (Subscription, error)
	// Status is the agent's state; the server fills in Status.LocalAPI's counters.
	Status() Status
	// DeadLetters returns up to n dead letters with ids above after, in id order, of the broker
	// named broker; "" = of every broker (merged by id; each DeadLetter says its broker).
	DeadLetters(broker string, after uint64, n int) ([]DeadLetterOf, error)
	// Requeue moves dead letters of the broker named broker back to the tail of its queue with new
	// ids, durably, all or nothing (queue.ErrNotDeadLettered when one is not there). broker "" is
	// the only broker; with several, ErrBadInput.
	Requeue(ctx context.Context, broker string, ids ...uint64) ([]uint64, error)
	// DeleteDeadLetters deletes dead letters of the broker named broker ("" as for Requeue) and
	// returns how many there were.
	DeleteDeadLetters(ctx context.Context, broker string, ids ...uint64) (int, error)
	// Identity returns the Cognito identity of the aws-iot broker named broker ("" = the only
	// aws-iot broker), creating it (GetId) if the device has none yet; an error marked ErrNotFound
	// when that broker has no Cognito identity pool, ErrBadInput for an unknown or ambiguous name.
	Identity(ctx context.Context, broker string) (Identity, error)
}

// DeadLetterOf is a dead letter and the broker whose queue holds it.
type DeadLetterOf struct {
	queue.DeadLetter
	Broker string
}

// Subscription is one local subscriber stream's buffer, filled by the agent as broker messages
// arrive. Its methods are called by the one goroutine that serves the stream.
type Subscription interface {
	// Wake receives when something was queued.
	Wake() <-chan struct{}
	// Drain hands each queued message to write, in order, and releases it once written; it stops
	// at write's first error (releasing the rest) and returns it.
	// broker is the name of the broker the message came from.
	Drain(write func(broker, topic string, payload []byte, qos byte, retain bool) error) error
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

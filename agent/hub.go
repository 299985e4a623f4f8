package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/topic"
	"github.com/edge-agent/edge-agent/transport"
)

// subscriberMessages bounds, in number, the broker messages a local subscriber may fall behind;
// api.subscriber_buffer bounds them in bytes, api.subscriber_budget over all subscribers. Past any
// bound further messages to that subscriber are dropped and counted by reason. The transport is
// never blocked by a local reader.
const subscriberMessages = 1024

// messageOverhead is what a queued message holds beyond its topic and payload.
const messageOverhead = 96

// Reasons an inbound message is dropped inside the agent, as /metrics and /v1/status name them.
const (
	dropSlowSubscriber   = "slow_subscriber"   // the subscriber's own buffer (messages or bytes) is full
	dropSubscriberBudget = "subscriber_budget" // all subscribers' buffers together are full
)

// errTooManySubscribers is returned by add when api.max_subscribers streams are open.
var errTooManySubscribers = errors.New("too many local subscriber streams")

// hub fans the messages of every broker out to local subscriber streams; a stream subscribes with
// one broker or with all of them and gets each message with the name of the broker it came from.
// dispatch is called on each transport's reader goroutine (transport.Config.OnMessage) and must never block: it takes h.mu for reading and
// each matching subscriber's mu, and every holder of those locks (add, remove, offer, take, release,
// pending, count) only touches memory under them — no channel send that can wait, no call into the
// transport, no I/O but one log line on a subscriber's first drop. add/remove and the subscriber methods are called from API handlers. All methods
// are safe for concurrent use.
type hub struct {
	log *slog.Logger
	// links are the brokers, by index (a subscriber's brokers and inbound.link index them); each
	// link's tr is set before the first add.
	links []*link
	lim   hubLimits

	mu   sync.RWMutex
	subs map[*subscriber]struct{}

	received atomic.Uint64 // messages received from the brokers
	bytes    atomic.Int64  // bytes held for all subscribers (api.subscriber_budget)

	droppedSlow   atomic.Uint64
	droppedBudget atomic.Uint64
}

// subscriber is one stream's queue: dispatch offers, the stream's handler takes and releases.
type subscriber struct {
	h       *hub
	filters []string
	parsed  []topic.Filter // filters, parsed once for dispatch
	brokers queue.Targets  // the links it subscribed with
	wake    chan struct{}  // capacity 1: something was queued

	mu     sync.Mutex
	queue  []inbound
	count  int   // messages held: queued, or taken and not yet written
	bytes  int64 // their bytes
	closed bool

	dropped atomic.Uint64
}

// inbound is a broker message held for a subscriber, with the index of the link it came from.
type inbound struct {
	transport.Received
	link int
}

func newHub(log *slog.Logger, lim hubLimits, links []*link) *hub {
	return &hub{log: log, lim: lim, links: links, subs: make(map[*subscriber]struct{})}
}

// add registers a subscriber for filters with the brokers of to and asks each of them for the
// filters (reference-counted by each transport), all at once. When a broker is online it returns
// after its SUBACK, so a caller that got the stream's headers knows the subscription is in place.
// If one broker refuses, the others' subscriptions are dropped again and the error names the broker
// (with several brokers).
func (h *hub) add(ctx context.Context, filters []string, to queue.Targets) (*subscriber, error) {
	parsed, err := topic.ParseFilters(filters)
	if err != nil {
		return nil, err
	}
	s := &subscriber{h: h, filters: filters, parsed: parsed, brokers: to, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	if len(h.subs) >= h.lim.maxSubscribers {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w (api.max_subscribers %d); close some first", errTooManySubscribers, h.lim.maxSubscribers)
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	subs := make([]transport.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = transport.Subscription{Filter: f, QoS: 1}
	}
	errs := make([]error, len(h.links))
	var wg sync.WaitGroup
	to.Each(func(i int) {
		wg.Go(func() { errs[i] = h.links[i].tr.Subscribe(ctx, subs...) })
	})
	wg.Wait()
	var failed error
	var done queue.Targets
	to.Each(func(i int) {
		switch {
		case errs[i] == nil:
			done |= queue.Lane(i)
		case failed == nil:
			failed = brokerError(h.links, i, errs[i])
		}
	})
	if failed != nil {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		h.unsubscribe(done, filters)
		return nil, failed
	}
	return s, nil
}

// unsubscribe drops a reference to filters at each broker of to, waiting at most unsubscribeTimeout.
func (h *hub) unsubscribe(to queue.Targets, filters []string) {
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
	defer cancel()
	to.Each(func(i int) {
		if err := h.links[i].tr.Unsubscribe(ctx, filters...); err != nil {
			h.links[i].log.Debug("unsubscribe", "filters", filters, "err", err)
		}
	})
}

// remove unregisters s, releases what it still holds and drops its broker subscriptions' references.
func (h *hub) remove(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.mu.Lock()
	var n int64
	for _, m := range s.queue {
		n += messageCost(m.Received)
	}
	s.bytes -= n
	s.count -= len(s.queue) // messages taken by the handler are released by it (done)
	s.queue, s.closed = nil, true
	s.mu.Unlock()
	h.bytes.Add(-n)
	h.unsubscribe(s.brokers, s.filters)
}

// dispatch hands m, from the broker of link index from, to every matching subscriber of that broker
// without blocking: it runs on that broker's transport reader, and the broker's QoS 1 PUBACK is sent
// once it returns.
func (h *hub) dispatch(from int, m transport.Received) {
	h.received.Add(1)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if s.brokers.Has(from) && s.matches(m.Topic) {
			s.offer(inbound{Received: m, link: from})
		}
	}
}

// offer queues m for s, or drops it and counts why.
func (s *subscriber) offer(m inbound) {
	h := s.h
	n := messageCost(m.Received)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	// A message larger than the whole buffer still goes to a subscriber that is caught up.
	if s.count >= subscriberMessages || (s.bytes > 0 && s.bytes+n > h.lim.subscriberBuffer) {
		s.drop(dropSlowSubscriber)
		return
	}
	for {
		cur := h.bytes.Load()
		if cur+n > h.lim.subscriberBudget {
			s.drop(dropSubscriberBudget)
			return
		}
		if h.bytes.CompareAndSwap(cur, cur+n) {
			break
		}
	}
	s.queue = append(s.queue, m)
	s.count++
	s.bytes += n
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drop counts a message not delivered to s. Called with s.mu held.
func (s *subscriber) drop(reason string) {
	h := s.h
	switch reason {
	case dropSubscriberBudget:
		if h.droppedBudget.Add(1) == 1 {
			h.log.Warn("local subscribers together hold api.subscriber_budget; dropping messages for slow ones",
				"budget", h.lim.subscriberBudget, "filters", s.filters)
		}
	default:
		h.droppedSlow.Add(1)
	}
	if s.dropped.Add(1) == 1 {
		h.log.Warn("local subscriber too slow; dropping messages for it", "filters", s.filters, "reason", reason,
			"buffer", h.lim.subscriberBuffer)
	}
}

// take returns what is queued for s; the caller writes each message out and then calls done for it.
func (s *subscriber) take() []inbound {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// done releases a message taken with take, once written out (or abandoned).
func (s *subscriber) done(m inbound) {
	s.release(messageCost(m.Received), 1)
}

func (s *subscriber) release(n int64, msgs int) {
	s.mu.Lock()
	s.bytes -= n
	s.count -= msgs
	s.mu.Unlock()
	s.h.bytes.Add(-n)
}

// pending reports whether messages are queued (the stream flushes when it has caught up).
func (s *subscriber) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

func messageCost(m transport.Received) int64 {
	return int64(len(m.Topic)+len(m.Payload)) + messageOverhead
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

// dropped returns the inbound messages dropped on their way to local subscribers, by reason.
func (h *hub) dropped() map[string]uint64 {
	return map[string]uint64{
		dropSlowSubscriber:   h.droppedSlow.Load(),
		dropSubscriberBudget: h.droppedBudget.Load(),
	}
}

func (s *subscriber) matches(t string) bool { return topic.MatchAny(s.parsed, t) }

package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/transport"
)

// subscriberBuffer is how many broker messages a local subscriber may fall behind before further
// messages to it are dropped (and counted). The transport is never blocked by a local reader.
const subscriberBuffer = 1024

// maxSubscribers bounds concurrent local subscriber streams (each holds a buffer of subscriberBuffer
// messages), so a misbehaving local program cannot exhaust the gateway's memory.
const maxSubscribers = 128

// errTooManySubscribers is returned by add when maxSubscribers streams are open.
var errTooManySubscribers = fmt.Errorf("too many local subscriber streams (limit %d); close some first", maxSubscribers)

// hub fans broker messages out to local subscriber streams. dispatch is called from the
// transport's dispatcher goroutine; add/remove from API handlers. All methods are safe for
// concurrent use.
type hub struct {
	log *slog.Logger
	tr  *transport.Client

	mu   sync.RWMutex
	subs map[*subscriber]struct{}

	received atomic.Uint64 // messages received from the broker
	dropped  atomic.Uint64 // messages dropped because a subscriber was slow
}

type subscriber struct {
	filters []string
	ch      chan transport.Received
	dropped atomic.Uint64
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, subs: make(map[*subscriber]struct{})}
}

// add registers a subscriber for filters and asks the broker for them (reference-counted by the
// transport). When the agent is online it returns after the broker's SUBACK, so a caller that got
// the stream's headers knows the subscription is in place.
func (h *hub) add(ctx context.Context, filters []string) (*subscriber, error) {
	s := &subscriber{filters: filters, ch: make(chan transport.Received, subscriberBuffer)}
	h.mu.Lock()
	if len(h.subs) >= maxSubscribers {
		h.mu.Unlock()
		return nil, errTooManySubscribers
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	subs := make([]transport.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = transport.Subscription{Filter: f, QoS: 1}
	}
	if err := h.tr.Subscribe(ctx, subs...); err != nil {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// remove unregisters s and drops its broker subscriptions' references.
func (h *hub) remove(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
	defer cancel()
	if err := h.tr.Unsubscribe(ctx, s.filters...); err != nil {
		h.log.Debug("unsubscribe", "filters", s.filters, "err", err)
	}
}

// dispatch hands m to every matching subscriber without blocking.
func (h *hub) dispatch(m transport.Received) {
	h.received.Add(1)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if !s.matches(m.Topic) {
			continue
		}
		select {
		case s.ch <- m:
		default:
			if s.dropped.Add(1) == 1 {
				h.log.Warn("local subscriber too slow; dropping messages for it", "filters", s.filters)
			}
			h.dropped.Add(1)
		}
	}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

func (s *subscriber) matches(topic string) bool {
	for _, f := range s.filters {
		if transport.Match(f, topic) {
			return true
		}
	}
	return false
}

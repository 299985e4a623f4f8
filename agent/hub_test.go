package agent

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/topic"
	"github.com/edge-agent/edge-agent/transport"
)

// The hub bounds each subscriber in bytes and messages and all of them together, counts each drop by
// its reason, and gives every byte back when messages are written out or the stream ends.
func TestHubBoundsAndDropReasons(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(discard{}, nil)), hubLimits{subscriberBuffer: 1000, subscriberBudget: 1500, maxSubscribers: 4}, nil)
	sub := func(filter string) *subscriber {
		parsed, _ := topic.ParseFilters([]string{filter})
		s := &subscriber{h: h, filters: []string{filter}, parsed: parsed, brokers: queue.Lane(0), wake: make(chan struct{}, 1)}
		h.subs[s] = struct{}{}
		return s
	}
	msg := func(topic string, n int) transport.Received {
		return transport.Received{Topic: topic, Payload: []byte(strings.Repeat("x", n-len(topic)-messageOverhead))}
	}
	// a alone: its buffer of 1000 bytes holds three 300-byte messages; the fourth is dropped.
	a := sub("a/#")
	for i := 0; i < 4; i++ {
		h.dispatch(0, msg("a/x", 300))
	}
	if got := h.dropped(); got[dropSlowSubscriber] != 1 || got[dropSubscriberBudget] != 0 || h.bytes.Load() != 900 {
		t.Fatalf("a's own buffer: %v, %d bytes held", got, h.bytes.Load())
	}
	// b: its own buffer has room, but all subscribers together may hold 1500 bytes.
	b := sub("b/#")
	for i := 0; i < 3; i++ {
		h.dispatch(0, msg("b/x", 300))
	}
	if got := h.dropped(); got[dropSlowSubscriber] != 1 || got[dropSubscriberBudget] != 1 || h.bytes.Load() != 1500 {
		t.Fatalf("the global budget: %v, %d bytes held", got, h.bytes.Load())
	}
	// Written out, b's messages free the budget for it again.
	for _, m := range b.take() {
		b.done(m)
	}
	h.dispatch(0, msg("b/x", 300))
	if got := h.dropped(); got[dropSubscriberBudget] != 1 || h.bytes.Load() != 1200 || a.dropped.Load() != 1 || b.dropped.Load() != 1 {
		t.Fatalf("after b caught up: %v, %d bytes held", got, h.bytes.Load())
	}
	// A message larger than a whole buffer still reaches a subscriber that is caught up.
	for _, s := range []*subscriber{a, b} {
		for _, m := range s.take() {
			s.done(m)
		}
	}
	h.dispatch(0, msg("b/big", 1000+messageOverhead+100))
	if len(b.queue) != 1 {
		t.Fatalf("a large message did not reach an empty buffer: %d queued", len(b.queue))
	}
	// The message bound: 1024 messages whatever their size.
	for _, m := range b.take() {
		b.done(m)
	}
	h.lim.subscriberBuffer, h.lim.subscriberBudget = 1<<20, 1<<20
	for i := 0; i < subscriberMessages+10; i++ {
		h.dispatch(0, transport.Received{Topic: "b/n"})
	}
	if b.count != subscriberMessages || b.dropped.Load() != 11 {
		t.Fatalf("b holds %d messages, dropped %d", b.count, b.dropped.Load())
	}
	// Ending the streams gives everything back.
	h.subs = map[*subscriber]struct{}{}
	for _, s := range []*subscriber{a, b} {
		s.mu.Lock()
		q := s.queue
		s.queue, s.closed = nil, true
		s.mu.Unlock()
		for _, m := range q {
			s.done(m)
		}
	}
	if h.bytes.Load() != 0 || a.count != 0 || b.count != 0 {
		t.Fatalf("held after the end: %d bytes, %d + %d messages", h.bytes.Load(), a.count, b.count)
	}
}

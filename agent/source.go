package agent

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/transport"
)

// source adapts a broker's lane of the queue to transport.Source: its transport reads from it in
// order and reports what the broker acknowledged or refused.
type source link

func (s *source) Next(ctx context.Context, after uint64, max int) ([]transport.Message, error) {
	msgs, err := s.q.Next(ctx, after, max)
	if err != nil {
		return nil, err
	}
	out := make([]transport.Message, len(msgs))
	for i, m := range msgs {
		out[i] = transport.Message{Seq: m.Seq, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Expires: m.Expires}
	}
	return out, nil
}

func (s *source) Ack(seq uint64) {
	s.q.Ack(seq)
	s.stats.delivered.Add(1)
	s.stats.lastDelivery.mark()
}

// Expire: the message expired on its way out and was not sent. It leaves the queue counted as
// expired, and a publisher waiting with wait=delivered is told so (410), not that it was delivered.
func (s *source) Expire(seq uint64) {
	s.q.Expire(seq)
}

// Quarantine takes a message that can never be delivered out of the way so that it cannot block the
// queue: one the broker refused (PUBACK reason code >= 0x80), that made the broker hang up each time it
// was sent (transport.ErrPoison) or that cannot be published at all goes to the dead-letter store with
// the reason, where it can be listed, requeued or deleted through the API and the CLI.
func (s *source) Quarantine(seq uint64, reason error) {
	if errors.Is(reason, transport.ErrPoison) {
		s.stats.poisoned.Add(1)
	}
	s.stats.rejected.Add(1)
	s.q.DeadLetter(seq, reason.Error())
}

// counters are the agent's own monotonic counters, read by /metrics and /v1/status. Typed atomics:
// they stay 8-byte aligned on 32-bit ARM, where plain uint64 fields used with atomic.AddUint64 panic.
type counters struct {
	accepted  atomic.Uint64 // messages durably stored through the API for this broker
	received  atomic.Uint64 // messages received from this broker
	delivered atomic.Uint64 // acknowledged by the broker (QoS 1) or written (QoS 0)
	rejected  atomic.Uint64 // refused by the broker: moved to the dead-letter store
	poisoned  atomic.Uint64 // dead-lettered: the broker hung up each time it was sent (transport.ErrPoison)

	lastDelivery lastDelivery    // when the broker last acknowledged a message (reconnects.go)
	reconnects   reconnectCounts // failed attempts and lost connections by reason (reconnects.go)
}

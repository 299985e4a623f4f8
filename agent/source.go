package agent

import (
	"context"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/transport"
)

// source adapts the queue to transport.Source: the transport reads from it in order and reports
// what the broker acknowledged or refused.
type source Agent

// maxRejectedKept bounds the memory of broker refusals kept for ?wait=delivered callers.
const maxRejectedKept = 1024

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
	atomic.AddUint64(&s.stats.delivered, 1)
}

// Reject removes a message the broker refused, so that it cannot block the queue, and says so in
// the log with the reason. (A dead-letter store that keeps such messages is planned.)
func (s *source) Reject(seq uint64, reason error) {
	s.log.Warn("broker refused a message; removed from the queue", "seq", seq, "reason", reason)
	s.rejectMu.Lock()
	if len(s.rejected) >= maxRejectedKept {
		for k := range s.rejected {
			delete(s.rejected, k)
			break
		}
	}
	s.rejected[seq] = reason.Error()
	s.rejectMu.Unlock()
	atomic.AddUint64(&s.stats.rejected, 1)
	s.q.Ack(seq)
}

// rejection returns the broker's reason if seq was refused.
func (a *Agent) rejection(seq uint64) (string, bool) {
	a.rejectMu.Lock()
	defer a.rejectMu.Unlock()
	r, ok := a.rejected[seq]
	return r, ok
}

// counters are the agent's own monotonic counters, read by /metrics and /v1/status.
type counters struct {
	accepted  uint64 // messages durably stored through the API
	delivered uint64 // acknowledged by the broker (QoS 1) or written (QoS 0)
	rejected  uint64 // refused by the broker
	apiErrors uint64 // API requests answered 4xx/5xx
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/transport"
)

// This file is the agent as the local API sees it: *Agent implements localapi.Backend. A publish
// goes from the socket through localapi straight to Store and the queue.

var _ localapi.Backend = (*Agent)(nil)

// unsubscribeTimeout bounds the UNSUBSCRIBE sent when a local subscriber's stream ends.
const unsubscribeTimeout = 5 * time.Second

// apiOptions are the local API's options for this agent's config.
func (a *Agent) apiOptions() localapi.Options {
	return localapi.Options{
		Socket: a.cfg.Socket,
		Access: a.cfg.Access,
		Logger: a.log.With("component", "api"),
		Limits: apiLimits(a.cfg),
	}
}

// checkBroker accepts "" and the one broker's name (issue 11 scaffold: one broker).
func (a *Agent) checkBroker(broker string) error {
	if broker != "" && broker != a.cfg.Broker.Name {
		return localapi.Mark(fmt.Errorf("no broker named %q (brokers: %s)", broker, a.cfg.Broker.Name), localapi.ErrBadInput)
	}
	return nil
}

// Route validates a publish topic against MQTT's rules and the provider's limits.
func (a *Agent) Route(topic, broker string) (queue.Targets, error) {
	if err := a.checkBroker(broker); err != nil {
		return 0, err
	}
	if err := a.cfg.Broker.Limits.Topic.Validate(topic); err != nil {
		return 0, err
	}
	return queue.Lane(0), nil
}

// CheckFilter validates a subscription filter against MQTT's rules and the provider's limits.
func (a *Agent) CheckFilter(filter, broker string) error {
	if err := a.checkBroker(broker); err != nil {
		return err
	}
	_, err := a.cfg.Broker.Limits.Topic.ParseFilter(filter)
	return err
}

// Store stores msgs durably in one commit and counts them accepted.
func (a *Agent) Store(ctx context.Context, msgs []queue.Message, to []queue.Targets) ([]uint64, error) {
	ids, err := a.q.Append(ctx, msgs...)
	if err == nil {
		a.stats.accepted.Add(uint64(len(ids)))
	}
	return ids, err
}

// WaitDelivered waits until message id has left the queue (see localapi.Backend).
func (a *Agent) WaitDelivered(ctx context.Context, id uint64, to queue.Targets) error {
	return a.q.WaitAcked(ctx, id)
}

// DeadLetters returns up to n dead letters with ids above after.
func (a *Agent) DeadLetters(broker string, after uint64, n int) ([]localapi.DeadLetterOf, error) {
	if err := a.checkBroker(broker); err != nil {
		return nil, err
	}
	dls, err := a.q.DeadLetters(after, n)
	out := make([]localapi.DeadLetterOf, len(dls))
	for i, d := range dls {
		out[i] = localapi.DeadLetterOf{DeadLetter: d, Broker: a.cfg.Broker.Name}
	}
	return out, err
}

// Requeue moves dead letters back to the queue.
func (a *Agent) Requeue(ctx context.Context, broker string, ids ...uint64) ([]uint64, error) {
	if err := a.checkBroker(broker); err != nil {
		return nil, err
	}
	return a.q.Requeue(ctx, ids...)
}

// DeleteDeadLetters deletes dead letters.
func (a *Agent) DeleteDeadLetters(ctx context.Context, broker string, ids ...uint64) (int, error) {
	if err := a.checkBroker(broker); err != nil {
		return 0, err
	}
	return a.q.DeleteDeadLetters(ctx, ids...)
}

// Identity returns the Cognito identity id, creating it (GetId) if this device has none yet.
func (a *Agent) Identity(ctx context.Context, broker string) (localapi.Identity, error) {
	if err := a.checkBroker(broker); err != nil {
		return localapi.Identity{}, err
	}
	if a.aws == nil || a.cfg.Cognito.IdentityPoolID == "" {
		return localapi.Identity{}, localapi.Mark(errors.New("no Cognito identity: broker.provider is not \"aws-iot\" or [cognito] identity_pool_id is not set"), localapi.ErrNotFound)
	}
	id, err := a.aws.IdentityID(ctx)
	if err != nil {
		return localapi.Identity{}, fmt.Errorf("getting the Cognito identity id: %s", a.secrets.String(err.Error()))
	}
	return localapi.Identity{IdentityID: id, IdentityPoolID: a.cfg.Cognito.IdentityPoolID}, nil
}

// Subscribe opens a local subscriber stream on the hub.
func (a *Agent) Subscribe(ctx context.Context, filters []string, broker string) (localapi.Subscription, error) {
	if err := a.checkBroker(broker); err != nil {
		return nil, err
	}
	s, err := a.hub.add(ctx, filters)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, errTooManySubscribers):
		return nil, localapi.Mark(err, localapi.ErrBusy)
	case errors.Is(err, transport.ErrTooManySubscriptions):
		return nil, localapi.Mark(fmt.Errorf("%w (broker.max_subscriptions)", err), localapi.ErrBadInput)
	}
	return nil, err
}

// Wake receives when something was queued for s.
func (s *subscriber) Wake() <-chan struct{} { return s.wake }

// Drain writes out what is queued for s, releasing each message once written.
func (s *subscriber) Drain(write func(broker, topic string, payload []byte, qos byte, retain bool) error) error {
	batch := s.take()
	for i, m := range batch {
		batch[i] = transport.Received{} // the payload is not kept once written
		err := write(s.h.broker, m.Topic, m.Payload, m.QoS, m.Retain)
		s.done(m)
		if err != nil {
			for _, rest := range batch[i+1:] {
				s.done(rest)
			}
			return err
		}
	}
	return nil
}

// Pending reports whether messages are queued for s.
func (s *subscriber) Pending() bool { return s.pending() }

// Close ends s's stream and drops its broker subscriptions' references.
func (s *subscriber) Close() { s.h.remove(s) }

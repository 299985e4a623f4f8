package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edge-agent/edge-agent/config"
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

// Store stores msgs durably in one commit, each in the lanes of its targets, and counts them
// accepted per broker.
func (a *Agent) Store(ctx context.Context, msgs []queue.Message, to []queue.Targets) ([]uint64, error) {
	ids, err := a.store.Append(ctx, msgs, to)
	if err == nil {
		var n [queue.MaxLanes]uint64
		for _, t := range to {
			t.Each(func(i int) { n[i]++ })
		}
		for i, l := range a.links {
			if n[i] > 0 {
				l.stats.accepted.Add(n[i])
			}
		}
	}
	return ids, err
}

// WaitDelivered waits until message id has left the queue of every broker of to (see
// localapi.Backend).
func (a *Agent) WaitDelivered(ctx context.Context, id uint64, to queue.Targets) error {
	return a.store.WaitAcked(ctx, id, to)
}

// DeadLetters returns up to n dead letters with ids above after of the broker named broker; ""
// merges every broker's, ordered by id and then by the broker's place in the config.
func (a *Agent) DeadLetters(broker string, after uint64, n int) ([]localapi.DeadLetterOf, error) {
	links := a.links
	if broker != "" {
		l, err := a.linkNamed(broker)
		if err != nil {
			return nil, err
		}
		links = []*link{l}
	}
	var out []localapi.DeadLetterOf
	for _, l := range links {
		dls, err := l.q.DeadLetters(after, n)
		if err != nil {
			return nil, fmt.Errorf("broker %s: %w", l.name, err)
		}
		for _, d := range dls {
			out = append(out, localapi.DeadLetterOf{DeadLetter: d, Broker: l.name})
		}
	}
	if len(links) > 1 {
		// Each lane's list is in id order and links are in config order: a stable sort by id keeps
		// the broker order among equal ids.
		slices.SortStableFunc(out, func(x, y localapi.DeadLetterOf) int { return cmp.Compare(x.Seq, y.Seq) })
		if n >= 0 && len(out) > n {
			out = out[:n]
		}
	}
	return out, nil
}

// Requeue moves dead letters of the broker named broker ("" = the only one) back to its queue.
func (a *Agent) Requeue(ctx context.Context, broker string, ids ...uint64) ([]uint64, error) {
	l, err := a.onlyOrNamed(broker)
	if err != nil {
		return nil, err
	}
	return l.q.Requeue(ctx, ids...)
}

// DeleteDeadLetters deletes dead letters of the broker named broker ("" = the only one).
func (a *Agent) DeleteDeadLetters(ctx context.Context, broker string, ids ...uint64) (int, error) {
	l, err := a.onlyOrNamed(broker)
	if err != nil {
		return 0, err
	}
	return l.q.DeleteDeadLetters(ctx, ids...)
}

// Identity returns the Cognito identity id of the aws-iot broker named broker ("" = the only aws-iot
// broker), creating it (GetId) if this device has none yet.
func (a *Agent) Identity(ctx context.Context, broker string) (localapi.Identity, error) {
	l, err := a.awsLink(broker)
	if err != nil {
		return localapi.Identity{}, err
	}
	id, err := l.aws.IdentityID(ctx)
	if err != nil {
		return localapi.Identity{}, fmt.Errorf("getting the Cognito identity id: %s", a.secrets.String(err.Error()))
	}
	return localapi.Identity{IdentityID: id, IdentityPoolID: l.cfg.Cognito.IdentityPoolID}, nil
}

// awsLink is the aws-iot broker with an identity pool that Identity(broker) means.
func (a *Agent) awsLink(broker string) (*link, error) {
	if broker != "" {
		l, err := a.linkNamed(broker)
		if err != nil {
			return nil, err
		}
		if l.aws == nil || l.cfg.Cognito.IdentityPoolID == "" {
			return nil, localapi.Mark(fmt.Errorf("no Cognito identity: %s is not %q or has no cognito identity_pool_id",
				l.key("provider"), config.ProviderAWSIoT), localapi.ErrNotFound)
		}
		return l, nil
	}
	var found []*link
	for _, l := range a.links {
		if l.aws != nil {
			found = append(found, l)
		}
	}
	switch {
	case len(found) > 1:
		return nil, localapi.Mark(fmt.Errorf("several aws-iot brokers: name the broker (aws-iot brokers: %s)", names(found)), localapi.ErrBadInput)
	case len(found) == 0 || found[0].cfg.Cognito.IdentityPoolID == "":
		return nil, localapi.Mark(errors.New("no Cognito identity: broker.provider is not \"aws-iot\" or [cognito] identity_pool_id is not set"), localapi.ErrNotFound)
	}
	return found[0], nil
}

// Subscribe opens a local subscriber stream on the hub, with the broker named broker ("" = every
// broker).
func (a *Agent) Subscribe(ctx context.Context, filters []string, broker string) (localapi.Subscription, error) {
	to, err := a.brokersOf(broker)
	if err != nil {
		return nil, err
	}
	s, err := a.hub.add(ctx, filters, to)
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
		batch[i] = inbound{} // the payload is not kept once written
		err := write(s.h.links[m.link].name, m.Topic, m.Payload, m.QoS, m.Retain)
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

package transport

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// maxPerSubscribe keeps each SUBSCRIBE/UNSUBSCRIBE small enough for AWS IoT (8 filters per request).
const maxPerSubscribe = 8

type subRef struct {
	qos  byte
	refs int
}

// Subscribe adds one reference to each filter. A filter that is new (or asked for a higher QoS) is
// subscribed now when connected, and in any case restored after every reconnect. It returns nil once the
// filters are registered: if the connection drops before the SUBACK, the next connection subscribes. A
// SUBACK refusal (error wraps ErrRefused) or ctx ending first removes the references this call added.
func (c *Client) Subscribe(ctx context.Context, subs ...Subscription) error {
	for _, s := range subs {
		if err := validateSubscription(s); err != nil {
			return err
		}
	}
	if err := c.lockSubOp(ctx); err != nil {
		return err
	}
	defer c.unlockSubOp()

	var send []Subscription
	c.mu.Lock()
	if c.cfg.MaxSubscriptions > 0 {
		distinct := len(c.always)
		for f := range c.dyn {
			if _, ok := c.always[f]; !ok {
				distinct++
			}
		}
		added := map[string]bool{}
		for _, s := range subs {
			_, inAlways := c.always[s.Filter]
			if c.dyn[s.Filter] == nil && !inAlways && !added[s.Filter] {
				added[s.Filter] = true
			}
		}
		if distinct+len(added) > c.cfg.MaxSubscriptions {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d filters are subscribed and this adds %d; the limit is %d per connection",
				ErrTooManySubscriptions, distinct, len(added), c.cfg.MaxSubscriptions)
		}
	}
	for _, s := range subs {
		r := c.dyn[s.Filter]
		if r == nil {
			r = &subRef{qos: s.QoS}
			c.dyn[s.Filter] = r
			if q, ok := c.always[s.Filter]; !ok || q < s.QoS {
				send = append(send, s)
			}
		} else if s.QoS > r.qos {
			r.qos = s.QoS
			send = append(send, s)
		}
		r.refs++
	}
	cli := c.cur
	c.mu.Unlock()
	if cli == nil || len(send) == 0 {
		return nil
	}
	refused, err := c.sendSubscribe(ctx, cli, send)
	switch {
	case err == nil:
		return nil
	case len(refused) > 0:
		c.dropRefs(refused)
		return err
	case ctx.Err() != nil:
		c.dropRefs(subs)
		return err
	default:
		return nil // connection lost: registered, restored on reconnect
	}
}

func (c *Client) dropRefs(subs []Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range subs {
		if r := c.dyn[s.Filter]; r != nil {
			if r.refs--; r.refs <= 0 {
				delete(c.dyn, s.Filter)
			}
		}
	}
}

// Unsubscribe drops one reference to each filter; when the last reference goes (and the filter is not in
// Config.Subscriptions) it sends UNSUBSCRIBE if connected. Unknown filters are ignored.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if err := c.lockSubOp(ctx); err != nil {
		return err
	}
	defer c.unlockSubOp()
	var send []string
	c.mu.Lock()
	for _, f := range filters {
		r := c.dyn[f]
		if r == nil {
			continue
		}
		if r.refs--; r.refs > 0 {
			continue
		}
		delete(c.dyn, f)
		if _, ok := c.always[f]; !ok {
			send = append(send, f)
		}
	}
	cli := c.cur
	c.mu.Unlock()
	if cli == nil || len(send) == 0 {
		return nil
	}
	for chunk := range slicesChunk(send, maxPerSubscribe) {
		err := cli.unsubscribe(ctx, chunk)
		if err == nil {
			continue
		}
		if errors.Is(err, errConnectionGone) {
			return nil // not restored on reconnect, so it is gone either way
		}
		c.noteError(err)
		return err
	}
	return nil
}

// restoreSubscriptions runs right after CONNACK (attach made l current, so a Subscribe from now on
// sends its own SUBSCRIBE): it subscribes to every always-on and dynamic filter, also when the broker
// resumed a persistent session (SUBSCRIBE is idempotent, and the session may have expired meanwhile).
// Refusals are logged and kept in Status.LastError; they do not end the connection (publishing must
// go on).
func (c *Client) restoreSubscriptions(ctx context.Context, l *link) {
	if err := c.lockSubOp(ctx); err != nil {
		return
	}
	defer c.unlockSubOp()
	c.mu.Lock()
	subs := c.effectiveSubs()
	c.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	if _, err := c.sendSubscribe(ctx, l, subs); err != nil && !errors.Is(err, errConnectionGone) {
		c.log.Warn("mqtt subscriptions not restored", "error", err)
	} else if err == nil {
		c.log.Debug("mqtt subscriptions restored", "count", len(subs))
	}
}

// effectiveSubs merges always-on and dynamic filters (highest QoS wins). Caller holds c.mu.
func (c *Client) effectiveSubs() []Subscription {
	var out []Subscription
	seen := make(map[string]bool)
	for _, s := range c.cfg.Subscriptions {
		if seen[s.Filter] {
			continue
		}
		seen[s.Filter] = true
		q := c.always[s.Filter]
		if r := c.dyn[s.Filter]; r != nil {
			q = max(q, r.qos)
		}
		out = append(out, Subscription{Filter: s.Filter, QoS: q})
	}
	var dyn []Subscription
	for f, r := range c.dyn {
		if !seen[f] {
			dyn = append(dyn, Subscription{Filter: f, QoS: r.qos})
		}
	}
	sort.Slice(dyn, func(i, j int) bool { return dyn[i].Filter < dyn[j].Filter })
	return append(out, dyn...)
}

// sendSubscribe subscribes in chunks and returns the filters the broker refused.
func (c *Client) sendSubscribe(ctx context.Context, l *link, subs []Subscription) ([]Subscription, error) {
	var refused []Subscription
	var codes []string
	for chunk := range slicesChunk(subs, maxPerSubscribe) {
		reasons, err := l.subscribe(ctx, chunk)
		if err != nil {
			return refused, err
		}
		for i, code := range reasons {
			if code >= 0x80 && i < len(chunk) {
				refused = append(refused, chunk[i])
				codes = append(codes, fmt.Sprintf("%s (0x%02x %s)", chunk[i].Filter, code, subackText(code)))
				c.log.Warn("mqtt subscription refused", "filter", chunk[i].Filter, "reason_code", fmt.Sprintf("0x%02x", code),
					"reason", subackText(code))
			}
		}
	}
	if len(refused) > 0 {
		err := fmt.Errorf("%w: SUBACK refused %s", ErrRefused, strings.Join(codes, ", "))
		c.noteError(err)
		return refused, err
	}
	return nil, nil
}

func subackText(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x8F:
		return "topic filter invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x9E:
		return "shared subscriptions not supported"
	case 0xA1:
		return "subscription identifiers not supported"
	case 0xA2:
		return "wildcard subscriptions not supported"
	}
	return "see MQTT 5 spec 3.9.3"
}

func (c *Client) lockSubOp(ctx context.Context) error {
	select {
	case c.subOp <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) unlockSubOp() { <-c.subOp }

// slicesChunk yields consecutive chunks of at most n elements.
func slicesChunk[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

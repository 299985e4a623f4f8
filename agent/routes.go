package agent

import (
	"fmt"
	"strings"

	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/topic"
)

// This file decides which brokers a message or a subscription is for: by the brokers' publish
// filters, or by a broker named in the request (?broker=, "broker", --broker).

// Route says which brokers a message on topic t goes to: broker "" = every broker whose publish
// filters take t; a name = that broker only, whatever its filters. t is checked against MQTT's
// rules and the limits of every target.
func (a *Agent) Route(t, broker string) (queue.Targets, error) {
	var to queue.Targets
	if broker != "" {
		var err error
		if to, err = a.brokersOf(broker); err != nil {
			return 0, err
		}
	} else {
		for _, l := range a.links {
			if l.takes(t) {
				to |= queue.Lane(l.idx)
			}
		}
	}
	if to == 0 {
		if err := topic.Validate(t); err != nil {
			return 0, err
		}
		return 0, localapi.Mark(a.unrouted(t), localapi.ErrBadInput)
	}
	if err := a.checkEach(to, func(lim topic.Limits) error { return lim.Validate(t) }); err != nil {
		return 0, err
	}
	return to, nil
}

// checkEach runs check with the topic limits of every broker of to and returns the first error,
// naming the broker when there are several.
func (a *Agent) checkEach(to queue.Targets, check func(topic.Limits) error) error {
	var err error
	to.Each(func(i int) {
		if err == nil {
			err = brokerError(a.links, i, check(a.links[i].cfg.Limits.Topic))
		}
	})
	return err
}

// brokerError is err of the broker at index i of links, prefixed with its name when there are
// several brokers (with one, the name would say nothing).
func brokerError(links []*link, i int, err error) error {
	if err == nil || len(links) < 2 {
		return err
	}
	return fmt.Errorf("broker %s: %w", links[i].name, err)
}

// unrouted is the error for a topic that no broker's publish filters take: it names the topic and
// every broker's routes.
func (a *Agent) unrouted(t string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "no broker takes topic %q:", t)
	for i, l := range a.links {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %s takes %s", l.name, strings.Join(l.cfg.Publish, ", "))
	}
	b.WriteString("; add a publish filter to a broker, or name one (?broker=NAME, pub --broker NAME)")
	return fmt.Errorf("%s", b.String())
}

// CheckFilter validates a subscription filter against MQTT's rules and the limits of the broker
// named broker ("" = of every broker).
func (a *Agent) CheckFilter(filter, broker string) error {
	to, err := a.brokersOf(broker)
	if err != nil {
		return err
	}
	return a.checkEach(to, func(lim topic.Limits) error {
		_, err := lim.ParseFilter(filter)
		return err
	})
}

// brokersOf is the set of brokers a request means: "" = every broker, a name = that one.
func (a *Agent) brokersOf(broker string) (queue.Targets, error) {
	if broker == "" {
		return queue.Targets(1)<<uint(len(a.links)) - 1, nil
	}
	l, err := a.linkNamed(broker)
	if err != nil {
		return 0, err
	}
	return queue.Lane(l.idx), nil
}

// linkNamed is the broker named name; an unknown name is ErrBadInput listing the names.
func (a *Agent) linkNamed(name string) (*link, error) {
	for _, l := range a.links {
		if l.name == name {
			return l, nil
		}
	}
	return nil, localapi.Mark(fmt.Errorf("no broker named %q (brokers: %s)", name, names(a.links)), localapi.ErrBadInput)
}

// onlyOrNamed is the broker named name, or for "" the only broker; with several, "" is ErrBadInput.
func (a *Agent) onlyOrNamed(name string) (*link, error) {
	if name != "" {
		return a.linkNamed(name)
	}
	if len(a.links) > 1 {
		return nil, localapi.Mark(fmt.Errorf("name the broker (brokers: %s)", names(a.links)), localapi.ErrBadInput)
	}
	return a.links[0], nil
}

// names lists the brokers' names for an error: "aws, plant".
func names(links []*link) string {
	s := make([]string, len(links))
	for i, l := range links {
		s[i] = l.name
	}
	return strings.Join(s, ", ")
}

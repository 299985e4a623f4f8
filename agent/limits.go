package agent

import (
	"time"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/topic"
)

// limits bound every input of the local API. They are read from a Config that config.Parse or
// config.Load resolved: its [api] keys and, for topics, Broker.Limits (the provider's rules).
type limits struct {
	maxPayload    int64        // bytes per message
	topics        topic.Limits // bytes and levels per topic and filter, beyond MQTT's rules
	maxBatchBytes int64        // bytes per NDJSON request body
	maxBatchLines int          // messages per NDJSON request
	maxFilters    int          // filters per subscribe request

	// The memory budget ([api]; see budget.go and hub.go).
	bodyBudget       int64 // request-body bytes held at once, all requests
	subscriberBuffer int64 // bytes queued for one subscriber stream
	subscriberBudget int64 // bytes queued for all subscriber streams
	maxSubscribers   int   // subscriber streams at once
	maxConnections   int   // local API connections at once
	readTimeout      time.Duration
	idleTimeout      time.Duration
}

func limitsFor(cfg *config.Config) limits {
	return limits{
		maxPayload:    int64(cfg.API.MaxPayload),
		topics:        cfg.Broker.Limits.Topic,
		maxBatchBytes: int64(cfg.API.MaxBatchBytes),
		maxBatchLines: cfg.API.MaxBatchLines,
		maxFilters:    16,

		bodyBudget:       int64(cfg.API.BodyBudget),
		subscriberBuffer: int64(cfg.API.SubscriberBuffer),
		subscriberBudget: int64(cfg.API.SubscriberBudget),
		maxSubscribers:   cfg.API.MaxSubscribers,
		maxConnections:   cfg.API.MaxConnections,
		readTimeout:      cfg.API.ReadTimeout.Duration,
		idleTimeout:      cfg.API.IdleTimeout.Duration,
	}
}

// checkTopic validates a publish topic against MQTT's rules and the provider's limits.
func (l limits) checkTopic(t string) error { return l.topics.Validate(t) }

// checkFilter validates a subscription filter against MQTT's rules and the provider's limits.
func (l limits) checkFilter(f string) error {
	_, err := l.topics.ParseFilter(f)
	return err
}

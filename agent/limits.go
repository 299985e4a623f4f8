package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/transport"
)

// limits bound every input of the local API.
type limits struct {
	maxPayload    int64 // bytes per message
	maxTopicBytes int   // bytes per topic
	maxTopicSlash int   // slashes per topic; -1 = no limit
	maxBatchBytes int64 // bytes per NDJSON request body
	maxBatchLines int   // messages per NDJSON request
	maxFilters    int   // filters per subscribe request

	// The memory budget ([api]; see budget.go and hub.go).
	bodyBudget       int64 // request-body bytes held at once, all requests
	subscriberBuffer int64 // bytes queued for one subscriber stream
	subscriberBudget int64 // bytes queued for all subscriber streams
	maxSubscribers   int   // subscriber streams at once
	maxConnections   int   // local API connections at once
	readTimeout      time.Duration
	idleTimeout      time.Duration
}

const (
	defaultMaxPayload = 256 << 10
	mqttMaxTopic      = 65535 // MQTT UTF-8 string length limit [MQTT-1.5.4]
)

func limitsFor(cfg *config.Config) limits {
	l := limits{
		maxPayload:    int64(cfg.API.MaxPayload),
		maxTopicBytes: mqttMaxTopic,
		maxTopicSlash: -1,
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
	// config.Parse fills these in; a Config built by hand may leave them zero.
	d := config.Default().API
	if l.maxBatchBytes <= 0 {
		l.maxBatchBytes = int64(d.MaxBatchBytes)
	}
	if l.maxBatchLines <= 0 {
		l.maxBatchLines = d.MaxBatchLines
	}
	if l.subscriberBuffer <= 0 {
		l.subscriberBuffer = int64(d.SubscriberBuffer)
	}
	if l.subscriberBudget <= 0 {
		l.subscriberBudget = int64(d.SubscriberBudget)
	}
	if l.maxSubscribers <= 0 {
		l.maxSubscribers = d.MaxSubscribers
	}
	if l.maxPayload <= 0 {
		l.maxPayload = defaultMaxPayload
	}
	if cfg.Broker.Provider == "aws-iot" {
		l.maxTopicBytes, l.maxTopicSlash = awsMaxTopicBytes, awsMaxTopicSlashes
		l.maxPayload = min(l.maxPayload, 128<<10) // AWS IoT message payload quota
	}
	if l.bodyBudget <= 0 {
		l.bodyBudget = max(int64(d.BodyBudget), l.maxPayload, l.maxBatchBytes)
	}
	if l.maxConnections <= 0 {
		l.maxConnections = d.MaxConnections
	}
	if l.readTimeout <= 0 {
		l.readTimeout = d.ReadTimeout.Duration
	}
	if l.idleTimeout <= 0 {
		l.idleTimeout = d.IdleTimeout.Duration
	}
	return l
}

// checkTopic validates a publish topic against MQTT's rules and the provider's limits.
func (l limits) checkTopic(topic string) error {
	if err := transport.ValidateTopic(topic); err != nil {
		return err
	}
	if len(topic) > l.maxTopicBytes {
		return fmt.Errorf("topic is %d bytes, over the limit of %d", len(topic), l.maxTopicBytes)
	}
	if l.maxTopicSlash >= 0 {
		if n := strings.Count(topic, "/"); n > l.maxTopicSlash {
			return fmt.Errorf("topic has %d slashes, over the limit of %d", n, l.maxTopicSlash)
		}
	}
	return nil
}

// checkFilter validates a subscription filter.
func (l limits) checkFilter(filter string) error {
	if err := transport.ValidateFilter(filter); err != nil {
		return err
	}
	if len(filter) > l.maxTopicBytes {
		return fmt.Errorf("filter is %d bytes, over the limit of %d", len(filter), l.maxTopicBytes)
	}
	if l.maxTopicSlash >= 0 {
		if n := strings.Count(filter, "/"); n > l.maxTopicSlash {
			return fmt.Errorf("filter has %d slashes, over the limit of %d", n, l.maxTopicSlash)
		}
	}
	return nil
}

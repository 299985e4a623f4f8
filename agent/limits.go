package agent

import (
	"fmt"
	"strings"

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
		maxBatchBytes: 8 << 20,
		maxBatchLines: 10000,
		maxFilters:    16,
	}
	if l.maxPayload <= 0 {
		l.maxPayload = defaultMaxPayload
	}
	if cfg.Broker.Provider == "aws-iot" {
		l.maxTopicBytes, l.maxTopicSlash = awsMaxTopicBytes, awsMaxTopicSlashes
		l.maxPayload = min(l.maxPayload, 128<<10) // AWS IoT message payload quota
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

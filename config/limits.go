package config

import (
	"time"

	"github.com/edge-agent/edge-agent/topic"
)

// Limits are what a broker's provider allows beyond MQTT's own limits: the AWS IoT Core quotas for
// provider "aws-iot", none for "mqtt". Parse sets Broker.Limits from the provider once and applies
// them there (the defaults and caps of broker.keepalive, max_inflight, max_publish_rate,
// max_byte_rate, max_subscriptions and api.max_payload, the checks of client_id and [[subscribe]]);
// the agent reads Topic from here and every other bound from its key. Nothing else decides a limit
// from the provider's name. A zero field adds no limit.
type Limits struct {
	Name  string       // the provider in messages: "AWS IoT"; "" adds no limit
	Topic topic.Limits // topic names and filters: AWS IoT 256 bytes, 8 levels

	MaxPayload     Size          // bytes of one message; api.max_payload may not exceed it
	DefaultPayload Size          // api.max_payload when the file leaves it out
	MaxClientID    int           // bytes of client_id
	NoDollarID     bool          // client_id may not start with '$' (reserved)
	MinKeepalive   time.Duration // broker.keepalive below it is raised to it (a warning)
	MaxKeepalive   time.Duration // broker.keepalive above it is lowered to it (a warning)
	MaxInflight    int           // unacknowledged QoS 1 publishes; broker.max_inflight is capped (a warning)
	// MaxSubscriptions is the subscriptions allowed per connection: the default of
	// broker.max_subscriptions and the most [[subscribe]] entries.
	MaxSubscriptions int
	// MinReconnect is the shortest time between two CONNECTs of one client id: broker.reconnect_min
	// below it is a warning (tests against a fake broker may want quicker retries).
	MinReconnect time.Duration
	PublishRate  float64 // publishes per second per connection: the default of broker.max_publish_rate
	ByteRate     Size    // bytes per second per connection: the default of broker.max_byte_rate
}

// MQTT's own limits, which hold for every provider.
const (
	mqttMaxPacketSize = 268435455 // [MQTT-2.2.3] Variable Byte Integer limit
	mqttMaxString     = topic.MaxLen
	mqttMaxKeepalive  = 65535 * time.Second // [MQTT-3.1.2.10] a two-byte integer of seconds
	mqttMaxInflight   = 65535               // [MQTT-3.3.4] Receive Maximum is a two-byte integer
)

// providerLimits are the limits of each provider, from the AWS IoT Core quotas
// (https://docs.aws.amazon.com/general/latest/gr/iot-core.html) for "aws-iot".
var providerLimits = map[string]Limits{
	ProviderMQTT: {DefaultPayload: DefaultMaxPayloadMQTT},
	ProviderAWSIoT: {
		Name:             "AWS IoT",
		Topic:            topic.Limits{MaxBytes: 256, MaxLevels: 8}, // 7 slashes
		MaxPayload:       DefaultMaxPayloadAWSIoT,
		DefaultPayload:   DefaultMaxPayloadAWSIoT,
		MaxClientID:      128,
		NoDollarID:       true,
		MinKeepalive:     30 * time.Second,
		MaxKeepalive:     1200 * time.Second,
		MaxInflight:      100,
		MaxSubscriptions: 50,
		MinReconnect:     time.Second, // 1 CONNECT per second per client id
		PublishRate:      100,
		ByteRate:         512 * KiB,
	},
}

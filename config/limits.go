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

	DefaultProtocol string   // broker.protocol when the file leaves it out
	Protocols       []string // the broker.protocol values the provider takes; nil = all
	// CloseIsPolicy: a connection closed right after CONNECT means a policy problem, never a refused
	// MQTT version (no fallback under "auto", no version hint in the error).
	CloseIsPolicy bool
}

// Protocols is every value of broker.protocol.
var Protocols = []string{"auto", "5", "3.1.1", "3.1"}

// DefaultMaxInflight3 is the QoS 1 window on an MQTT 3.x connection when broker.max_inflight is not set.
const DefaultMaxInflight3 = 20

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
	ProviderMQTT: {DefaultPayload: DefaultMaxPayloadMQTT, DefaultProtocol: "auto"},
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
		// AWS IoT speaks MQTT 5 and 3.1.1, and closes the connection after CONNECT for a missing policy.
		DefaultProtocol: "5",
		Protocols:       []string{"auto", "5", "3.1.1"},
		CloseIsPolicy:   true,
	},
}

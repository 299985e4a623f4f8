package localapi

import "time"

// Status is the JSON behind GET /v1/status and `edge-agent status --json`: the agent's own fields
// and, embedded (its keys at the top level), a BrokerStatus for the whole agent.
type Status struct {
	// BrokerStatus, at the top level: with one broker, that broker's (without its name); with
	// several, State is "connected" only when all are ("degraded" when some are), Received is the
	// hub's total, Queue and the counters are sums over the brokers (a message for two brokers
	// counts twice in Accepted, Delivered and Queue: it is two records, one in each broker's
	// lane, delivered twice), and the connection fields (Endpoint, Since, LastError,
	// Protocol, Diagnosis, AWS, …) are the first broker's.
	BrokerStatus
	Subscribers int `json:"subscribers"`
	// InboundDropped counts broker messages dropped inside the agent on their way to local
	// subscribers, by reason: "slow_subscriber" (its own buffer, api.subscriber_buffer or 1024
	// messages, was full), "subscriber_budget" (all subscribers together held
	// api.subscriber_budget), "too_large" (a PUBLISH over broker.max_packet_size, discarded
	// unread). "incoming_buffer" and "incoming_bytes" are always 0: they counted drops in a
	// transport-side buffer that no longer exists (messages are buffered once, per subscriber); the
	// keys stay so that dashboards and alerts naming them keep working.
	InboundDropped map[string]uint64 `json:"inbound_dropped"`
	// MaxPacketSize is broker.max_packet_size, announced to the broker in CONNECT.
	MaxPacketSize uint32 `json:"max_packet_size"`
	// LocalAPI is the local API's memory budget and connection limit.
	LocalAPI      LocalAPIStatus `json:"local_api"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Version       string         `json:"version"`
	Commit        string         `json:"commit,omitempty"` // VCS revision of the build, when known
	// Brokers is every broker's own state, in config order (issue 11).
	Brokers []BrokerStatus `json:"brokers,omitempty"`
}

// BrokerStatus is one broker's state: its connection, its queue and its counters.
type BrokerStatus struct {
	Name      string    `json:"name,omitempty"`
	State     string    `json:"state"`
	Provider  string    `json:"provider"`
	Endpoint  string    `json:"endpoint"`
	ClientID  string    `json:"client_id"`
	Publish   []string  `json:"publish,omitempty"` // its routes; empty = every topic
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error"`
	// LastErrorAt is when LastError happened (absent if there was none).
	LastErrorAt *time.Time  `json:"last_error_at,omitempty"`
	Queue       QueueStatus `json:"queue"`
	Accepted    uint64      `json:"accepted"`
	Delivered   uint64      `json:"delivered"`
	Rejected    uint64      `json:"rejected"`
	Received    uint64      `json:"received"`
	Connects    uint64      `json:"connects"`
	Inflight    int         `json:"inflight"`
	// ReceiveMaximum is the broker's in-flight QoS 1 limit from its CONNACK (MQTT 5 only).
	ReceiveMaximum uint16 `json:"receive_maximum"`
	// Protocol is the MQTT version of the current (or last) connection: "5", "3.1.1" or "3.1"; absent
	// before the first connection. With broker.protocol "auto" it is the version that was negotiated.
	Protocol string `json:"protocol,omitempty"`
	// SessionPresent: the broker resumed our persistent session (broker.session_expiry) on the current
	// or last connection, so messages held for our subscriptions while we were away are delivered.
	SessionPresent bool `json:"session_present"`
	// InboundTooLarge counts inbound packets over broker.max_packet_size (PUBLISHes discarded unread,
	// other packets refused by closing the connection).
	InboundTooLarge uint64 `json:"inbound_too_large"`
	// Poisoned counts messages moved to the dead-letter store because the broker closed the
	// connection each time they were sent (broker.poison_after times in a row).
	Poisoned uint64 `json:"poisoned"`
	// LastDeliveryAt is when the broker last acknowledged a message (absent: none since start).
	LastDeliveryAt *time.Time `json:"last_delivery_at,omitempty"`
	// Reconnects counts failed connection attempts and lost connections by reason (every reason
	// present, 0 when never seen): endpoint, upgrade_refused, connack_refused, closed_after_connect,
	// server_disconnect, keepalive, packet_too_large, timeout, network, other.
	Reconnects map[string]uint64 `json:"reconnects"`
	// AWS IoT only.
	AWS *AWSStatus `json:"aws,omitempty"`
	// Diagnosis is advice on why the broker refuses the connection; empty when connected.
	Diagnosis string `json:"diagnosis,omitempty"`
}

// AWSStatus is the AWS IoT part of Status.
type AWSStatus struct {
	IdentityID        string     `json:"identity_id,omitempty"`
	CredentialSource  string     `json:"credential_source,omitempty"`
	CredentialsExpire *time.Time `json:"credentials_expire,omitempty"`
	ClockSkewSeconds  float64    `json:"clock_skew_seconds"`
	Region            string     `json:"region"`
	LastError         string     `json:"last_error,omitempty"`
	Authenticated     bool       `json:"authenticated"` // Cognito identity signed in with [cognito] login_provider
}

// LocalAPIStatus describes the bounds of the local API ([api] in the config) and what they refused.
type LocalAPIStatus struct {
	Connections        int    `json:"connections"`
	MaxConnections     int    `json:"max_connections"`
	ConnectionsRefused uint64 `json:"connections_refused"` // answered 503 at api.max_connections
	BodyBudget         int64  `json:"body_budget"`
	BodyBudgetInUse    int64  `json:"body_budget_in_use"`
	BodyBudgetRefused  uint64 `json:"body_budget_refused"` // requests answered 503 for want of api.body_budget
	SubscriberBudget   int64  `json:"subscriber_budget"`
	SubscriberBytes    int64  `json:"subscriber_bytes"` // held for local subscribers now
}

// QueueStatus describes the durable queue.
type QueueStatus struct {
	Depth            int     `json:"depth"`
	Bytes            int64   `json:"bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	Dropped          uint64  `json:"dropped"`
	MaxBytes         int64   `json:"max_bytes"`
	Overflow         string  `json:"overflow"`
	// Expired counts messages dropped because their ttl or queue.max_age passed before delivery.
	Expired uint64 `json:"expired"`
	// DeadLetters is how many refused messages wait in the dead-letter store (GET /v1/deadletters).
	DeadLetters  int    `json:"dead_letters"`
	DeadLettered uint64 `json:"dead_lettered"`
	// CorruptRecords counts records that could not be decoded and were discarded.
	CorruptRecords uint64 `json:"corrupt_records"`
	// Recovered is set when the queue file was found damaged at start and moved aside.
	Recovered *RecoveryStatus `json:"recovered,omitempty"`
}

// RecoveryStatus says where a damaged queue file went.
type RecoveryStatus struct {
	MovedTo string    `json:"moved_to"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	// Salvaged is how many messages of the damaged file were read back into the fresh queue.
	Salvaged int `json:"salvaged"`
	// SalvageError says why the salvage stopped early or what it skipped; empty if it read everything.
	SalvageError string `json:"salvage_error"`
}

// This file declares the JSON of every answer of the local API, once, for the server and its
// clients (Client, cmd/agent, cmd/benchclient).

// ErrorAnswer is the body of every error answer: {"error":"…"}.
type ErrorAnswer struct {
	Error string `json:"error"`
}

// Published answers a raw POST /v1/publish: 202 {"id":…} once stored; with wait=delivered 200
// {"id":…,"delivered":true}, or an error status with the id and "error".
type Published struct {
	ID        uint64 `json:"id"`
	Delivered bool   `json:"delivered,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Accepted answers an NDJSON POST /v1/publish: 202 once every line is stored.
type Accepted struct {
	Accepted int    `json:"accepted"`
	FirstID  uint64 `json:"first_id"`
	LastID   uint64 `json:"last_id"`
}

// BatchLine is one line of an NDJSON publish: payload (UTF-8) or payload_base64; qos defaults to 1.
// Pointers tell a field left out from a zero value.
type BatchLine struct {
	Topic         *string `json:"topic"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 *string `json:"payload_base64,omitempty"`
	QoS           *int    `json:"qos,omitempty"`
	Retain        *bool   `json:"retain,omitempty"`
	TTL           *string `json:"ttl,omitempty"`
	// Broker sends the message to that broker only, whatever its publish filters; it overrides
	// POST /v1/publish?broker= for this line, and "" routes it by the publish filters.
	Broker *string `json:"broker,omitempty"`
}

// Message is one line of GET /v1/subscribe (NDJSON, or an SSE event's data) and the message part
// of a dead letter: the payload as text when it is UTF-8, else in base64.
type Message struct {
	// Broker is the name of the broker the message came from (subscribe) or whose queue holds it
	// (dead letters); always present, "default" for the single [broker] form.
	Broker        string  `json:"broker"`
	Topic         string  `json:"topic"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 *string `json:"payload_base64,omitempty"`
	QoS           byte    `json:"qos"`
	Retain        bool    `json:"retain"`
}

// DeadLetter is one entry of GET /v1/deadletters.
type DeadLetter struct {
	ID uint64 `json:"id"`
	Message
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	Created time.Time `json:"created"`
}

// DeadLetterPage answers GET /v1/deadletters; NextAfter is set when more follow (ask again with
// after=NextAfter).
type DeadLetterPage struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	Total       int          `json:"total"`
	NextAfter   *uint64      `json:"next_after,omitempty"`
}

// Requeued answers POST /v1/deadletters/requeue.
type Requeued struct {
	Requeued int      `json:"requeued"`
	IDs      []uint64 `json:"ids"`
}

// Deleted answers DELETE /v1/deadletters.
type Deleted struct {
	Deleted int `json:"deleted"`
}

// Identity answers GET /v1/identity.
type Identity struct {
	IdentityID     string `json:"identity_id"`
	IdentityPoolID string `json:"identity_pool_id"`
}

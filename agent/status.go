package agent

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Status is the JSON behind GET /v1/status and `edge-agent status --json`.
type Status struct {
	State     string    `json:"state"`
	Provider  string    `json:"provider"`
	Endpoint  string    `json:"endpoint"`
	ClientID  string    `json:"client_id"`
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
	// ReceiveMaximum is the broker's in-flight QoS 1 limit from its CONNACK.
	ReceiveMaximum uint16 `json:"receive_maximum"`
	Subscribers    int    `json:"subscribers"`
	// InboundDropped counts broker messages dropped inside the agent on their way to local
	// subscribers, by reason: "slow_subscriber" (its own buffer, api.subscriber_buffer or 1024
	// messages, was full), "subscriber_budget" (all subscribers together held
	// api.subscriber_budget), "incoming_buffer" (the transport's buffer in front of the hub held
	// 1024 messages), "incoming_bytes" (it held broker.incoming_buffer bytes), "too_large" (a
	// PUBLISH over broker.max_packet_size, discarded unread).
	InboundDropped map[string]uint64 `json:"inbound_dropped"`
	// InboundTooLarge counts inbound packets over broker.max_packet_size (PUBLISHes discarded unread,
	// other packets refused by closing the connection).
	InboundTooLarge uint64 `json:"inbound_too_large"`
	// MaxPacketSize is broker.max_packet_size, announced to the broker in CONNECT.
	MaxPacketSize uint32 `json:"max_packet_size"`
	// Poisoned counts messages moved to the dead-letter store because the broker closed the
	// connection each time they were sent (broker.poison_after times in a row).
	Poisoned uint64 `json:"poisoned"`
	// LocalAPI is the local API's memory budget and connection limit.
	LocalAPI      LocalAPIStatus `json:"local_api"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Version       string         `json:"version"`
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

// Status reports the agent's state; it is cheap and safe to call at any time during Run.
func (a *Agent) Status() Status {
	ts := a.tr.Status()
	qs := a.q.Stats()
	now := time.Now()
	st := Status{
		State:          ts.State,
		Provider:       a.cfg.Broker.Provider,
		Endpoint:       ts.URL,
		ClientID:       a.cfg.ClientID,
		Since:          ts.Since,
		LastError:      a.secrets.String(ts.LastError), // may quote a server's answer
		Accepted:       a.stats.accepted.Load(),
		Delivered:      a.stats.delivered.Load(),
		Rejected:       a.stats.rejected.Load(),
		Received:       a.hub.received.Load(),
		Connects:       ts.Connects,
		Inflight:       ts.Inflight,
		ReceiveMaximum: ts.ReceiveMaximum,
		Subscribers:    a.hub.count(),
		InboundDropped: a.hub.dropped(),
		LocalAPI: LocalAPIStatus{
			MaxConnections:   a.limits.maxConnections,
			SubscriberBudget: a.limits.subscriberBudget,
			SubscriberBytes:  a.hub.bytes.Load(),
		},
		UptimeSeconds: math.Round(now.Sub(a.started).Seconds()*1000) / 1000,
		Version:       Version,
		Queue: QueueStatus{
			Depth:          qs.Depth,
			Bytes:          qs.Bytes,
			Dropped:        qs.Dropped,
			MaxBytes:       int64(a.cfg.Queue.MaxBytes),
			Overflow:       a.cfg.Queue.Overflow,
			Expired:        qs.Expired, // read-time expiries and the sender's (source.Expire) alike
			DeadLetters:    qs.DeadLetters,
			DeadLettered:   qs.DeadLettered,
			CorruptRecords: qs.Corrupt,
		},
	}
	st.InboundDropped["incoming_buffer"] = ts.DroppedIncomingFull
	st.InboundDropped["incoming_bytes"] = ts.DroppedIncomingBytes
	st.InboundDropped["too_large"] = ts.DroppedIncomingTooLarge
	st.InboundTooLarge = ts.InboundTooLarge
	st.MaxPacketSize = uint32(a.cfg.Broker.MaxPacketSize)
	st.Poisoned = a.stats.poisoned.Load()
	if c := a.conns; c != nil {
		st.LocalAPI.Connections = int(c.active.Load())
		st.LocalAPI.ConnectionsRefused = c.refused.Load()
	}
	if b := a.body; b != nil {
		st.LocalAPI.BodyBudget = b.size
		st.LocalAPI.BodyBudgetInUse = b.inUse()
		st.LocalAPI.BodyBudgetRefused = b.refused.Load()
	}
	if r := a.recovery; r != nil {
		st.Queue.Recovered = &RecoveryStatus{MovedTo: r.MovedTo, Reason: r.Reason, At: r.At.UTC(),
			Salvaged: r.Salvaged, SalvageError: r.SalvageError}
	}
	if !ts.LastErrorAt.IsZero() {
		at := ts.LastErrorAt.UTC()
		st.LastErrorAt = &at
	}
	if a.aws != nil {
		as := a.aws.Status()
		st.AWS = &AWSStatus{
			IdentityID:       as.IdentityID,
			CredentialSource: as.CredentialSource,
			ClockSkewSeconds: as.ClockSkew.Seconds(),
			Region:           a.aws.Region(),
			LastError:        a.secrets.String(as.LastError),
			Authenticated:    as.Authenticated,
		}
		if !as.CredentialsExpire.IsZero() {
			exp := as.CredentialsExpire.UTC()
			st.AWS.CredentialsExpire = &exp
		}
		diag, _ := a.diag.get()
		st.Diagnosis = a.secrets.String(diag)
	}
	if !qs.Oldest.IsZero() {
		st.Queue.OldestAgeSeconds = math.Max(0, math.Round(now.Sub(qs.Oldest).Seconds()*1000)/1000)
	}
	return st
}

func (a *Agent) handleStatus(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, a.Status())
}

// handleMetrics serves the Prometheus text exposition format (version 0.0.4).
func (a *Agent) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	st := a.Status()
	var b strings.Builder
	metric := func(name, typ, help string, v any) {
		fmt.Fprintf(&b, "# HELP edge_agent_%s %s\n# TYPE edge_agent_%s %s\nedge_agent_%s %v\n", name, help, name, typ, name, v)
	}
	connected := 0
	if st.State == "connected" {
		connected = 1
	}
	metric("connected", "gauge", "1 when connected to the broker.", connected)
	metric("connects_total", "counter", "Successful broker connections.", st.Connects)
	metric("queue_depth", "gauge", "Messages in the durable queue.", st.Queue.Depth)
	metric("queue_bytes", "gauge", "Bytes in the durable queue.", st.Queue.Bytes)
	metric("queue_max_bytes", "gauge", "Configured queue bound in bytes.", st.Queue.MaxBytes)
	metric("queue_oldest_age_seconds", "gauge", "Age of the oldest queued message.", st.Queue.OldestAgeSeconds)
	metric("queue_dropped_total", "counter", "Messages dropped by overflow drop-oldest.", st.Queue.Dropped)
	metric("queue_expired_total", "counter", "Messages dropped because their ttl or queue.max_age passed.", st.Queue.Expired)
	metric("dead_letters", "gauge", "Refused messages waiting in the dead-letter store.", st.Queue.DeadLetters)
	metric("dead_lettered_total", "counter", "Messages moved to the dead-letter store.", st.Queue.DeadLettered)
	metric("queue_corrupt_records_total", "counter", "Queue records that could not be decoded and were discarded.", st.Queue.CorruptRecords)
	recovered := 0
	if st.Queue.Recovered != nil {
		recovered = 1
	}
	metric("queue_recovered", "gauge", "1 when a damaged queue file was moved aside at start (see /v1/status).", recovered)
	metric("accepted_total", "counter", "Messages durably accepted through the local API.", st.Accepted)
	metric("delivered_total", "counter", "Messages acknowledged by the broker (QoS 1) or written (QoS 0).", st.Delivered)
	metric("rejected_total", "counter", "Messages refused by the broker.", st.Rejected)
	metric("received_total", "counter", "Messages received from broker subscriptions.", st.Received)
	metric("poisoned_total", "counter", "Messages dead-lettered because the broker closed the connection each time they were sent.", st.Poisoned)
	metric("inbound_too_large_total", "counter", "Inbound packets over broker.max_packet_size (discarded or refused).", st.InboundTooLarge)
	reasons := make([]string, 0, len(st.InboundDropped))
	for r := range st.InboundDropped {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	b.WriteString("# HELP edge_agent_inbound_dropped_total Broker messages dropped inside the agent before reaching local subscribers, by reason.\n# TYPE edge_agent_inbound_dropped_total counter\n")
	for _, r := range reasons {
		fmt.Fprintf(&b, "edge_agent_inbound_dropped_total{reason=%q} %d\n", r, st.InboundDropped[r])
	}
	api := st.LocalAPI
	metric("api_connections", "gauge", "Open local API connections.", api.Connections)
	metric("api_max_connections", "gauge", "api.max_connections.", api.MaxConnections)
	metric("api_connections_refused_total", "counter", "Local API connections refused (503) at api.max_connections.", api.ConnectionsRefused)
	metric("api_body_budget_bytes", "gauge", "api.body_budget: request-body bytes the local API may hold at once.", api.BodyBudget)
	metric("api_body_budget_in_use_bytes", "gauge", "Request-body bytes held now.", api.BodyBudgetInUse)
	metric("api_body_budget_refused_total", "counter", "Local API requests refused (503) for want of api.body_budget.", api.BodyBudgetRefused)
	metric("subscriber_budget_bytes", "gauge", "api.subscriber_budget: bytes all local subscribers may hold.", api.SubscriberBudget)
	metric("subscriber_buffered_bytes", "gauge", "Bytes held now for local subscribers.", api.SubscriberBytes)
	metric("inflight", "gauge", "Unacknowledged QoS 1 publishes.", st.Inflight)
	metric("subscribers", "gauge", "Open local subscriber streams.", st.Subscribers)
	metric("api_errors_total", "counter", "Local API requests answered with an error.", a.stats.apiErrors.Load())
	if st.AWS != nil {
		metric("aws_clock_skew_seconds", "gauge", "AWS time minus this device's clock, learnt from AWS responses.", st.AWS.ClockSkewSeconds)
		if st.AWS.CredentialsExpire != nil {
			metric("aws_credentials_expiry_timestamp_seconds", "gauge", "When the current AWS credentials expire (Unix time).", st.AWS.CredentialsExpire.Unix())
		}
		diag := 0
		if st.Diagnosis != "" {
			diag = 1
		}
		metric("aws_refused", "gauge", "1 while AWS IoT refuses the connection (see diagnosis in /v1/status).", diag)
	}
	fmt.Fprintf(&b, "# HELP edge_agent_info Build information.\n# TYPE edge_agent_info gauge\nedge_agent_info{version=%q,provider=%q} 1\n", st.Version, st.Provider)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

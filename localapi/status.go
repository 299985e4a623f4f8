package localapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// status serves GET /v1/status.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statusNow())
}

// statusNow is the agent's status with the local API's own bounds and counters filled in.
func (s *Server) statusNow() Status {
	st := s.b.Status()
	st.LocalAPI.Connections = int(s.conns.active.Load())
	st.LocalAPI.ConnectionsRefused = s.conns.refused.Load()
	st.LocalAPI.BodyBudget = s.body.size
	st.LocalAPI.BodyBudgetInUse = s.body.inUse()
	st.LocalAPI.BodyBudgetRefused = s.body.refused.Load()
	return st
}

// metrics serves GET /metrics in the Prometheus text exposition format (version 0.0.4).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	st := s.statusNow()
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
	metric("api_errors_total", "counter", "Local API requests answered with an error.", s.errors.Load())
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
	if st.Protocol != "" {
		fmt.Fprintf(&b, "# HELP edge_agent_mqtt_protocol_info The MQTT version of the current or last broker connection.\n# TYPE edge_agent_mqtt_protocol_info gauge\nedge_agent_mqtt_protocol_info{protocol=%q} 1\n", st.Protocol)
	}
	fmt.Fprintf(&b, "# HELP edge_agent_info Build information.\n# TYPE edge_agent_info gauge\nedge_agent_info{version=%q,provider=%q} 1\n", st.Version, st.Provider)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

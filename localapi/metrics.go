package localapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// metrics serves GET /metrics in the Prometheus text exposition format (version 0.0.4).
//
// One broker (Status.Brokers empty or of one): the output is what it was before several brokers,
// from the top-level Status fields (which are that broker's), series without a broker label, so
// that a single-broker gateway's dashboards, alerts and joins work unchanged.
//
// Several brokers: every family about one broker's connection, queue or counters has one series
// per broker with a "broker" label, and no unlabelled series beside them (a sum over the brokers
// would count twice), plus edge_agent_broker_info{broker,provider}. Families about the whole
// agent (the local API, local subscribers, the queue file, the build) stay unlabelled. The names
// are the same, so a query without a broker matcher (edge_agent_queue_depth > 0) matches every
// broker's series and sum() gives totals; an expression that joins a broker family with an
// agent-wide one needs ignoring(broker).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	st := s.statusNow()
	var b strings.Builder
	metric := func(name, typ, help string, v any) {
		family(&b, name, typ, help, sample{"", v})
	}
	brokers, labelled := st.Brokers, true
	if len(brokers) < 2 {
		brokers, labelled = []BrokerStatus{agentWide(st)}, false
	}
	// per writes a family with one series per broker; v says whether the broker has one.
	per := func(name, typ, help string, v func(BrokerStatus) (any, bool)) {
		var samples []sample
		for _, bs := range brokers {
			if x, ok := v(bs); ok {
				samples = append(samples, sample{brokerLabels(bs.Name, labelled), x})
			}
		}
		family(&b, name, typ, help, samples...)
	}
	all := func(f func(BrokerStatus) any) func(BrokerStatus) (any, bool) {
		return func(bs BrokerStatus) (any, bool) { return f(bs), true }
	}
	per("connected", "gauge", "1 when connected to the broker.", all(func(bs BrokerStatus) any { return boolGauge(bs.State == "connected") }))
	per("connects_total", "counter", "Successful broker connections.", all(func(bs BrokerStatus) any { return bs.Connects }))
	per("queue_depth", "gauge", "Messages in the durable queue.", all(func(bs BrokerStatus) any { return bs.Queue.Depth }))
	per("queue_bytes", "gauge", "Bytes in the durable queue.", all(func(bs BrokerStatus) any { return bs.Queue.Bytes }))
	per("queue_max_bytes", "gauge", "Configured queue bound in bytes.", all(func(bs BrokerStatus) any { return bs.Queue.MaxBytes }))
	per("queue_oldest_age_seconds", "gauge", "Age of the oldest queued message.", all(func(bs BrokerStatus) any { return bs.Queue.OldestAgeSeconds }))
	per("queue_dropped_total", "counter", "Messages dropped by overflow drop-oldest.", all(func(bs BrokerStatus) any { return bs.Queue.Dropped }))
	per("queue_expired_total", "counter", "Messages dropped because their ttl or queue.max_age passed.", all(func(bs BrokerStatus) any { return bs.Queue.Expired }))
	per("dead_letters", "gauge", "Refused messages waiting in the dead-letter store.", all(func(bs BrokerStatus) any { return bs.Queue.DeadLetters }))
	per("dead_lettered_total", "counter", "Messages moved to the dead-letter store.", all(func(bs BrokerStatus) any { return bs.Queue.DeadLettered }))
	metric("queue_corrupt_records_total", "counter", "Queue records that could not be decoded and were discarded.", st.Queue.CorruptRecords)
	metric("queue_recovered", "gauge", "1 when a damaged queue file was moved aside at start (see /v1/status).", boolGauge(st.Queue.Recovered != nil))
	// Since the last delivery, or since start when nothing was delivered yet: either way how long
	// this gateway has delivered nothing, which with queue_depth > 0 is the fleet alert.
	per("seconds_since_last_delivery", "gauge", "Seconds since the broker last acknowledged a message (since start if none was).", all(func(bs BrokerStatus) any {
		if bs.LastDeliveryAt == nil {
			return st.UptimeSeconds
		}
		return max(0, math.Round(time.Since(*bs.LastDeliveryAt).Seconds()*1000)/1000)
	}))
	per("accepted_total", "counter", "Messages durably accepted through the local API.", all(func(bs BrokerStatus) any { return bs.Accepted }))
	per("delivered_total", "counter", "Messages acknowledged by the broker (QoS 1) or written (QoS 0).", all(func(bs BrokerStatus) any { return bs.Delivered }))
	per("rejected_total", "counter", "Messages refused by the broker.", all(func(bs BrokerStatus) any { return bs.Rejected }))
	per("received_total", "counter", "Messages received from broker subscriptions.", all(func(bs BrokerStatus) any { return bs.Received }))
	per("poisoned_total", "counter", "Messages dead-lettered because the broker closed the connection each time they were sent.", all(func(bs BrokerStatus) any { return bs.Poisoned }))
	per("inbound_too_large_total", "counter", "Inbound packets over broker.max_packet_size (discarded or refused).", all(func(bs BrokerStatus) any { return bs.InboundTooLarge }))
	family(&b, "inbound_dropped_total", "counter", "Broker messages dropped inside the agent before reaching local subscribers, by reason.", byReason("", st.InboundDropped)...)
	var reconnects []sample
	for _, bs := range brokers {
		reconnects = append(reconnects, byReason(brokerPair(bs.Name, labelled), bs.Reconnects)...)
	}
	family(&b, "reconnects_total", "counter", "Failed connection attempts and lost connections, by reason.", reconnects...)
	api := st.LocalAPI
	metric("api_connections", "gauge", "Open local API connections.", api.Connections)
	metric("api_max_connections", "gauge", "api.max_connections.", api.MaxConnections)
	metric("api_connections_refused_total", "counter", "Local API connections refused (503) at api.max_connections.", api.ConnectionsRefused)
	metric("api_body_budget_bytes", "gauge", "api.body_budget: request-body bytes the local API may hold at once.", api.BodyBudget)
	metric("api_body_budget_in_use_bytes", "gauge", "Request-body bytes held now.", api.BodyBudgetInUse)
	metric("api_body_budget_refused_total", "counter", "Local API requests refused (503) for want of api.body_budget.", api.BodyBudgetRefused)
	metric("subscriber_budget_bytes", "gauge", "api.subscriber_budget: bytes all local subscribers may hold.", api.SubscriberBudget)
	metric("subscriber_buffered_bytes", "gauge", "Bytes held now for local subscribers.", api.SubscriberBytes)
	per("inflight", "gauge", "Unacknowledged QoS 1 publishes.", all(func(bs BrokerStatus) any { return bs.Inflight }))
	metric("subscribers", "gauge", "Open local subscriber streams.", st.Subscribers)
	metric("api_errors_total", "counter", "Local API requests answered with an error.", s.errors.Load())
	metric("metrics_connections_refused_total", "counter", "Connections to metrics.listen closed unanswered at its connection limit.", s.metricsRefused.Load())
	per("aws_clock_skew_seconds", "gauge", "AWS time minus this device's clock, learnt from AWS responses.", func(bs BrokerStatus) (any, bool) {
		if bs.AWS == nil {
			return nil, false
		}
		return bs.AWS.ClockSkewSeconds, true
	})
	per("aws_credentials_expiry_timestamp_seconds", "gauge", "When the current AWS credentials expire (Unix time).", func(bs BrokerStatus) (any, bool) {
		if bs.AWS == nil || bs.AWS.CredentialsExpire == nil {
			return nil, false
		}
		return bs.AWS.CredentialsExpire.Unix(), true
	})
	per("aws_refused", "gauge", "1 while AWS IoT refuses the connection (see diagnosis in /v1/status).", func(bs BrokerStatus) (any, bool) {
		return boolGauge(bs.Diagnosis != ""), bs.AWS != nil
	})
	var protocols []sample
	for _, bs := range brokers {
		if bs.Protocol != "" {
			protocols = append(protocols, sample{labels(brokerPair(bs.Name, labelled), "protocol", bs.Protocol), 1})
		}
	}
	family(&b, "mqtt_protocol_info", "gauge", "The MQTT version of the current or last broker connection.", protocols...)
	if labelled {
		var info []sample
		for _, bs := range brokers {
			info = append(info, sample{labels("", "broker", bs.Name, "provider", bs.Provider), 1})
		}
		family(&b, "broker_info", "gauge", "Each configured broker and its provider.", info...)
	}
	fmt.Fprintf(&b, "# HELP edge_agent_info Build information.\n# TYPE edge_agent_info gauge\nedge_agent_info{version=%s,provider=%s} 1\n", label(st.Version), label(st.Provider))
	fmt.Fprintf(&b, "# HELP edge_agent_build_info The agent's build.\n# TYPE edge_agent_build_info gauge\nedge_agent_build_info{version=%s,commit=%s,goversion=%s} 1\n",
		label(st.Version), label(st.Commit), label(runtime.Version()))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

// sample is one series of a family: its labels ("" or {a="x",…}) and value.
type sample struct {
	labels string
	v      any
}

// family writes a family's HELP and TYPE and its samples; nothing when it has none.
func family(b *strings.Builder, name, typ, help string, samples ...sample) {
	if len(samples) == 0 {
		return
	}
	fmt.Fprintf(b, "# HELP edge_agent_%s %s\n# TYPE edge_agent_%s %s\n", name, help, name, typ)
	for _, s := range samples {
		fmt.Fprintf(b, "edge_agent_%s%s %v\n", name, s.labels, s.v)
	}
}

// byReason is one sample per reason, in reason order, each labelled pairs (a `broker="x"` or "")
// and its reason.
func byReason(pairs string, counts map[string]uint64) []sample {
	var out []sample
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, sample{labels(pairs, "reason", r), counts[r]})
	}
	return out
}

// brokerPair is `broker="name"`, or "" when the series are not labelled by broker.
func brokerPair(name string, labelled bool) string {
	if !labelled {
		return ""
	}
	return "broker=" + label(name)
}

// brokerLabels is {broker="name"}, or "" when the series are not labelled by broker.
func brokerLabels(name string, labelled bool) string { return labels(brokerPair(name, labelled)) }

// labels is {pairs,k1="v1",…}: pairs is label pairs already written, kv names and values to add.
func labels(pairs string, kv ...string) string {
	parts := []string{}
	if pairs != "" {
		parts = append(parts, pairs)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+label(kv[i+1]))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func boolGauge(b bool) int {
	if b {
		return 1
	}
	return 0
}

// agentWide is the broker part of a Status with one broker: its top-level connection, queue and
// counter fields (Status.Brokers may be empty: a Backend from before several brokers).
func agentWide(st Status) BrokerStatus {
	return BrokerStatus{State: st.State, Provider: st.Provider, Queue: st.Queue, Accepted: st.Accepted,
		Delivered: st.Delivered, Rejected: st.Rejected, Received: st.Received, Connects: st.Connects,
		Inflight: st.Inflight, Protocol: st.Protocol, InboundTooLarge: st.InboundTooLarge, Poisoned: st.Poisoned,
		LastDeliveryAt: st.LastDeliveryAt, Reconnects: st.Reconnects, AWS: st.AWS, Diagnosis: st.Diagnosis}
}

// label quotes a label value as the text exposition format wants: backslash, double quote and line
// feed escaped, everything else as is (Go's %q would escape more, in ways Prometheus does not read).
func label(v string) string {
	return `"` + labelEscaper.Replace(v) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Bounds of the metrics listener (config key metrics.listen). A scrape is one small GET answered
// from memory, so the bounds are tight.
const (
	metricsMaxConns       = 8                // connections served at once; more are closed and counted
	metricsHeaderTimeout  = 5 * time.Second  // reading a request's headers
	metricsWriteTimeout   = 10 * time.Second // from the end of the headers to the end of the answer
	metricsIdleTimeout    = 60 * time.Second // a kept-alive connection between scrapes
	metricsMaxHeaderBytes = 8 << 10
	metricsShutdownGrace  = 2 * time.Second
)

// metricsOnly answers GET /metrics with the same text as the socket's /metrics, any other method
// there 405 (Allow: GET), every other path 404; nothing else of the API is reachable through it.
func (s *Server) metricsOnly() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/metrics":
			http.Error(w, "not found: this port serves only GET /metrics", http.StatusNotFound)
		case r.Method != http.MethodGet:
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, r.Method+" /metrics: use GET", http.StatusMethodNotAllowed)
		default:
			s.metrics(w, r)
		}
	})
}

// ServeMetrics serves GET /metrics, and nothing else, on ln (a TCP listener for metrics.listen)
// until ctx is done; then it stops accepting, lets scrapes in progress finish for a moment, closes
// ln and what is left and returns nil. It bounds connections in number (metricsMaxConns; more are
// closed at once and counted in edge_agent_metrics_connections_refused_total), time and header
// size. Call it once the Server is serving its socket (the Backend's Status must be ready).
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.metricsOnly(),
		ReadHeaderTimeout: metricsHeaderTimeout,
		ReadTimeout:       metricsHeaderTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    metricsMaxHeaderBytes,
	}
	lim := &countedListener{Listener: ln, slots: make(chan struct{}, metricsMaxConns), refused: &s.metricsRefused}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lim) }()
	select {
	case err := <-done: // the listener failed
		return fmt.Errorf("metrics listener %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shCtx, cancel := context.WithTimeout(context.Background(), metricsShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics listener %s: %w", ln.Addr(), err)
	}
	return nil
}

// countedListener serves at most cap(slots) connections at once; one more is closed at accept and
// counted in refused.
type countedListener struct {
	net.Listener
	slots   chan struct{}
	refused interface{ Add(uint64) uint64 }
}

func (l *countedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
			l.refused.Add(1)
			c.Close()
		}
	}
}

// slotConn frees its slot once, when closed.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

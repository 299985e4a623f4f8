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
	// Since the last delivery, or since start when nothing was delivered yet: either way how long
	// this gateway has delivered nothing, which with queue_depth > 0 is the fleet alert.
	sinceDelivery := st.UptimeSeconds
	if st.LastDeliveryAt != nil {
		sinceDelivery = max(0, math.Round(time.Since(*st.LastDeliveryAt).Seconds()*1000)/1000)
	}
	metric("seconds_since_last_delivery", "gauge", "Seconds since the broker last acknowledged a message (since start if none was).", sinceDelivery)
	metric("accepted_total", "counter", "Messages durably accepted through the local API.", st.Accepted)
	metric("delivered_total", "counter", "Messages acknowledged by the broker (QoS 1) or written (QoS 0).", st.Delivered)
	metric("rejected_total", "counter", "Messages refused by the broker.", st.Rejected)
	metric("received_total", "counter", "Messages received from broker subscriptions.", st.Received)
	metric("poisoned_total", "counter", "Messages dead-lettered because the broker closed the connection each time they were sent.", st.Poisoned)
	metric("inbound_too_large_total", "counter", "Inbound packets over broker.max_packet_size (discarded or refused).", st.InboundTooLarge)
	labelled(&b, "inbound_dropped_total", "counter", "Broker messages dropped inside the agent before reaching local subscribers, by reason.", st.InboundDropped)
	labelled(&b, "reconnects_total", "counter", "Failed connection attempts and lost connections, by reason.", st.Reconnects)
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
	metric("metrics_connections_refused_total", "counter", "Connections to metrics.listen closed unanswered at its connection limit.", s.metricsRefused.Load())
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
		fmt.Fprintf(&b, "# HELP edge_agent_mqtt_protocol_info The MQTT version of the current or last broker connection.\n# TYPE edge_agent_mqtt_protocol_info gauge\nedge_agent_mqtt_protocol_info{protocol=%s} 1\n", label(st.Protocol))
	}
	fmt.Fprintf(&b, "# HELP edge_agent_info Build information.\n# TYPE edge_agent_info gauge\nedge_agent_info{version=%s,provider=%s} 1\n", label(st.Version), label(st.Provider))
	fmt.Fprintf(&b, "# HELP edge_agent_build_info The agent's build.\n# TYPE edge_agent_build_info gauge\nedge_agent_build_info{version=%s,commit=%s,goversion=%s} 1\n",
		label(st.Version), label(st.Commit), label(runtime.Version()))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}

// labelled writes a counter family with one series per reason, in reason order.
func labelled(b *strings.Builder, name, typ, help string, byReason map[string]uint64) {
	fmt.Fprintf(b, "# HELP edge_agent_%s %s\n# TYPE edge_agent_%s %s\n", name, help, name, typ)
	for _, r := range slices.Sorted(maps.Keys(byReason)) {
		fmt.Fprintf(b, "edge_agent_%s{reason=%s} %d\n", name, label(r), byReason[r])
	}
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

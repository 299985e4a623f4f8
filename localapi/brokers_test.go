package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/queue"
)

// Tests of the API with several brokers (issue 11), against memBackend's routing.

// twoBrokers routes telemetry/# to both brokers and alarms/# to plant only.
func twoBrokers() *memBackend {
	return &memBackend{brokers: []memBroker{
		{name: "aws", publish: []string{"telemetry/#"}},
		{name: "plant", publish: []string{"alarms/#", "telemetry/#"}},
	}}
}

const (
	laneAWS   = queue.Targets(1)
	lanePlant = queue.Targets(2)
)

// call sends a request and returns its status and body.
func call(t *testing.T, c *Client, method, pathQuery, contentType, body string) (int, string) {
	t.Helper()
	resp, err := c.Do(context.Background(), method, pathQuery, contentType, strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (b *memBackend) storedTo() []queue.Targets {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.to)
}

func TestPublishRoutes(t *testing.T) {
	b := twoBrokers()
	c := startServer(t, b, nil, nil)
	cases := []struct {
		query  string
		status int
		want   string        // in the body
		to     queue.Targets // stored for, when 202
		route  string        // the Route call
	}{
		{"topic=telemetry/t1", 202, `"id":1`, laneAWS | lanePlant, "Route telemetry/t1 "},
		{"topic=alarms/a", 202, `"id":2`, lanePlant, "Route alarms/a "},
		{"topic=other/x&broker=aws", 202, `"id":3`, laneAWS, "Route other/x aws"},                 // whatever its routes
		{"topic=telemetry/t2&broker=plant", 202, `"id":4`, lanePlant, "Route telemetry/t2 plant"}, // to that one only
		{"topic=other/x", 400, `no broker takes topic \"other/x\" (routes: aws telemetry/#; plant alarms/#,telemetry/#)`, 0, "Route other/x "},
		{"topic=alarms/a&broker=nope", 400, `cannot publish \"alarms/a\" to broker \"nope\": no broker named \"nope\" (brokers: aws, plant)`, 0, "Route alarms/a nope"},
		{"topic=alarms/a&broker=aws&broker=plant", 400, `query parameter \"broker\" given 2 times`, 0, ""},
	}
	for _, tc := range cases {
		before := len(b.called())
		status, body := call(t, c, "POST", "/v1/publish?"+tc.query, "application/octet-stream", "x")
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.query, status, body, tc.status, tc.want)
		}
		calls := b.called()[before:]
		if tc.route != "" && !slices.Contains(calls, tc.route) {
			t.Errorf("%s: backend calls %q, want %q", tc.query, calls, tc.route)
		}
	}
	want := []queue.Targets{laneAWS | lanePlant, lanePlant, laneAWS, lanePlant}
	if got := b.storedTo(); !slices.Equal(got, want) {
		t.Fatalf("stored for %v, want %v", got, want)
	}
	// wait=delivered waits for every target of the message.
	status, body := call(t, c, "POST", "/v1/publish?topic=telemetry/w&wait=delivered", "", "x")
	b.mu.Lock()
	waited := b.waitedTo
	b.mu.Unlock()
	if status != 200 || waited != laneAWS|lanePlant {
		t.Fatalf("wait=delivered: %d %s, waited for %v", status, body, waited)
	}
}

func TestPublishBatchBroker(t *testing.T) {
	b := twoBrokers()
	c := startServer(t, b, nil, nil)
	batch := strings.Join([]string{
		`{"topic":"alarms/a","payload":"1"}`,                 // ?broker=aws
		`{"topic":"other/b","payload":"2","broker":"plant"}`, // its own broker wins
		`{"topic":"telemetry/t","payload":"3","broker":""}`,  // "" routes by the filters
		`{"topic":"telemetry/u","payload":"4","broker":"aws"}`,
	}, "\n")
	status, body := call(t, c, "POST", "/v1/publish?broker=aws", "application/x-ndjson", batch)
	if status != 202 || !strings.Contains(body, `"accepted":4`) {
		t.Fatalf("batch: %d %s", status, body)
	}
	want := []queue.Targets{laneAWS, lanePlant, laneAWS | lanePlant, laneAWS}
	if got := b.storedTo(); !slices.Equal(got, want) {
		t.Fatalf("stored for %v, want %v", got, want)
	}
	// Without ?broker=, lines route by the filters.
	status, body = call(t, c, "POST", "/v1/publish", "application/x-ndjson", `{"topic":"alarms/z"}`)
	if status != 202 || b.storedTo()[4] != lanePlant {
		t.Fatalf("unrouted batch: %d %s %v", status, body, b.storedTo())
	}

	// A bad broker on line 3, or an unrouted topic on line 2: 400 naming the line, nothing stored.
	for _, tc := range []struct{ query, batch, want string }{
		{"?broker=aws", `{"topic":"a"}` + "\n" + `{"topic":"b"}` + "\n" + `{"topic":"c","broker":"nope"}`,
			`line 3: cannot publish \"c\" to broker \"nope\": no broker named \"nope\" (brokers: aws, plant); nothing was stored`},
		{"?broker=nope", `{"topic":"a","broker":"aws"}` + "\n" + `{"topic":"b"}`,
			`line 2: cannot publish \"b\" to broker \"nope\": no broker named \"nope\"`},
		{"", `{"topic":"alarms/a"}` + "\n" + `{"topic":"other/b"}`,
			`line 2: bad topic \"other/b\": no broker takes topic \"other/b\"`},
		{"?broker=aws&qos=1", `{"topic":"a"}`, `unknown query parameter \"qos\"`},
	} {
		status, body := call(t, c, "POST", "/v1/publish"+tc.query, "application/x-ndjson", tc.batch)
		if status != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s %q: %d %s, want 400 with %s", tc.query, tc.batch, status, body, tc.want)
		}
	}
	if n := len(b.storedTo()); n != 5 {
		t.Fatalf("%d messages stored, want the 5 of the good batches", n)
	}
}

// readStream reads n NDJSON lines (or SSE data lines) of GET pathQuery, then ends the stream.
func readStream(t *testing.T, c *Client, pathQuery string, sse bool, n int) []Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://edge-agent"+pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sse {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v", pathQuery, ReadError(resp))
	}
	br := bufio.NewReader(resp.Body)
	var out []Message
	for len(out) < n {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream after %d messages: %v", len(out), err)
		}
		line = strings.TrimSpace(line)
		if sse {
			var ok bool
			if line, ok = strings.CutPrefix(line, "data: "); !ok {
				continue
			}
		}
		if line == "" {
			continue
		}
		var m Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if !strings.Contains(line, `"broker":`) {
			t.Errorf("line without broker: %s", line)
		}
		out = append(out, m)
	}
	return out
}

func TestSubscribeBrokers(t *testing.T) {
	b := twoBrokers()
	b.inbound = []memInbound{{"aws", "cmd/a", "from aws"}, {"plant", "cmd/p", "from plant"}}
	c := startServer(t, b, nil, nil)
	for _, sse := range []bool{false, true} {
		got := readStream(t, c, "/v1/subscribe?topic=cmd/%23", sse, 2)
		if got[0].Broker != "aws" || got[0].Topic != "cmd/a" || got[1].Broker != "plant" || *got[1].Payload != "from plant" {
			t.Fatalf("sse %v: %+v", sse, got)
		}
	}
	got := readStream(t, c, "/v1/subscribe?topic=cmd/%23&broker=plant", false, 1)
	if got[0].Broker != "plant" {
		t.Fatalf("broker=plant: %+v", got)
	}
	calls := b.called()
	for _, want := range []string{"CheckFilter cmd/# ", "Subscribe cmd/# ", "CheckFilter cmd/# plant", "Subscribe cmd/# plant"} {
		if !slices.Contains(calls, want) {
			t.Errorf("backend calls %q lack %q", calls, want)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{"topic=cmd/%23&broker=nope", `cannot subscribe to \"cmd/#\" with broker \"nope\": no broker named \"nope\"`},
		{"topic=cmd/%23&broker=aws&broker=plant", `query parameter \"broker\" given 2 times`},
	} {
		if status, body := call(t, c, "GET", "/v1/subscribe?"+tc.query, "", ""); status != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %s", tc.query, status, body, tc.want)
		}
	}
}

func TestDeadLettersBrokers(t *testing.T) {
	b := twoBrokers()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dead := func(seq uint64, broker string) DeadLetterOf {
		return DeadLetterOf{Broker: broker, DeadLetter: queue.DeadLetter{Message: queue.Message{Seq: seq, Topic: fmt.Sprintf("t/%d", seq), Payload: []byte("p")}, Reason: "refused", At: at}}
	}
	// Message 4 was refused by both brokers: one id, two entries, across a read of deadLetterFetch.
	b.dead = []DeadLetterOf{dead(1, "aws"), dead(2, "aws"), dead(3, "plant"), dead(4, "aws"), dead(4, "plant"), dead(5, "plant")}
	c := startServer(t, b, nil, nil)
	list := func(query string) (DeadLetterPage, []string) {
		t.Helper()
		var page DeadLetterPage
		if err := c.GetJSON(context.Background(), "/v1/deadletters"+query, &page); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		var got []string
		for _, d := range page.DeadLetters {
			got = append(got, fmt.Sprintf("%d%s", d.ID, d.Broker))
		}
		return page, got
	}
	page, got := list("")
	if want := []string{"1aws", "2aws", "3plant", "4aws", "4plant", "5plant"}; !slices.Equal(got, want) || page.Total != 6 || page.NextAfter != nil {
		t.Fatalf("every broker: %v total %d next %v, want %v", got, page.Total, page.NextAfter, want)
	}
	// A page never ends between the two entries of id 4.
	page, got = list("?limit=4")
	if want := []string{"1aws", "2aws", "3plant", "4aws", "4plant"}; !slices.Equal(got, want) || page.NextAfter == nil || *page.NextAfter != 4 {
		t.Fatalf("limit=4: %v next %v", got, page.NextAfter)
	}
	if _, got = list("?after=4"); !slices.Equal(got, []string{"5plant"}) {
		t.Fatalf("after=4: %v", got)
	}
	page, got = list("?broker=plant")
	if want := []string{"3plant", "4plant", "5plant"}; !slices.Equal(got, want) || page.Total != 3 {
		t.Fatalf("broker=plant: %v total %d", got, page.Total)
	}
	if status, body := call(t, c, "GET", "/v1/deadletters?broker=nope", "", ""); status != 400 || !strings.Contains(body, `no broker named \"nope\"`) {
		t.Fatalf("broker=nope: %d %s", status, body)
	}

	// Requeue and delete pass the broker; the backend decides what none means.
	for _, tc := range []struct {
		method, query string
		status        int
		call          string
	}{
		{"POST", "/v1/deadletters/requeue?id=4&broker=plant", 200, "Requeue plant [4]"},
		{"POST", "/v1/deadletters/requeue?all=1&broker=aws", 200, "Requeue aws [1 2 4]"},
		{"POST", "/v1/deadletters/requeue?id=1", 400, "Requeue  [1]"}, // several brokers: name one
		{"DELETE", "/v1/deadletters?id=3&broker=plant", 200, "DeleteDeadLetters plant [3]"},
		{"DELETE", "/v1/deadletters?all=1", 200, "DeleteDeadLetters  [1 2 3 4 5]"}, // id 4 once
		{"DELETE", "/v1/deadletters?id=3&broker=nope", 400, "DeleteDeadLetters nope [3]"},
		{"DELETE", "/v1/deadletters?id=3&broker=a&broker=b", 400, ""},
	} {
		before := len(b.called())
		status, body := call(t, c, tc.method, tc.query, "", "")
		if status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.query, status, body, tc.status)
		}
		if calls := b.called()[before:]; tc.call != "" && !slices.Contains(calls, tc.call) {
			t.Errorf("%s %s: backend calls %q, want %q", tc.method, tc.query, calls, tc.call)
		}
	}
}

func TestIdentityBroker(t *testing.T) {
	b := twoBrokers()
	c := startServer(t, b, nil, nil)
	var id Identity
	if err := c.GetJSON(context.Background(), "/v1/identity?broker=aws", &id); err != nil || id.IdentityID != "eu-west-1:aws" {
		t.Fatalf("broker=aws: %+v %v", id, err)
	}
	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{"", 404, "no Cognito identity"},
		{"?broker=plant", 404, `broker \"plant\" is not aws-iot`},
		{"?broker=nope", 400, `no broker named \"nope\"`},
		{"?broker=aws&broker=plant", 400, "given 2 times"},
		{"?brokr=aws", 400, `unknown query parameter \"brokr\"`},
	} {
		if status, body := call(t, c, "GET", "/v1/identity"+tc.query, "", ""); status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.query, status, body, tc.status, tc.want)
		}
	}
	if calls := b.called(); !slices.Contains(calls, "Identity aws") || !slices.Contains(calls, "Identity plant") {
		t.Fatalf("backend calls %q", calls)
	}
}

// fleet2Backend reports two brokers, one of them AWS IoT and down.
type fleet2Backend struct{ memBackend }

func (b *fleet2Backend) Status() Status {
	expire := time.Unix(1_800_000_000, 0)
	delivered := time.Now().Add(-time.Minute)
	return Status{Version: "1.2.3", UptimeSeconds: 42, InboundDropped: map[string]uint64{"slow_subscriber": 2},
		BrokerStatus: BrokerStatus{State: "connecting", Provider: "aws-iot", Queue: QueueStatus{Depth: 5, CorruptRecords: 1}},
		Brokers: []BrokerStatus{
			{Name: "aws", State: "connecting", Provider: "aws-iot", Queue: QueueStatus{Depth: 4, Bytes: 400, MaxBytes: 1000, DeadLetters: 1},
				Reconnects: map[string]uint64{"network": 3, "closed_after_connect": 2}, Diagnosis: "attach a policy",
				AWS: &AWSStatus{ClockSkewSeconds: 1.5, CredentialsExpire: &expire}},
			{Name: "plant", State: "connected", Provider: "mqtt", Protocol: "5", Delivered: 7, LastDeliveryAt: &delivered,
				Queue: QueueStatus{Depth: 1, Bytes: 100, MaxBytes: 2000}, Reconnects: map[string]uint64{"network": 1}},
		}}
}

func TestMetricsBrokers(t *testing.T) {
	_, _, addr := startMetrics(t, &fleet2Backend{})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	samples := checkExposition(t, string(body))
	for series, want := range map[string]float64{
		`edge_agent_connected{broker="aws"}`:                                      0,
		`edge_agent_connected{broker="plant"}`:                                    1,
		`edge_agent_queue_depth{broker="aws"}`:                                    4,
		`edge_agent_queue_depth{broker="plant"}`:                                  1,
		`edge_agent_queue_bytes{broker="plant"}`:                                  100,
		`edge_agent_queue_max_bytes{broker="plant"}`:                              2000,
		`edge_agent_dead_letters{broker="aws"}`:                                   1,
		`edge_agent_delivered_total{broker="plant"}`:                              7,
		`edge_agent_seconds_since_last_delivery{broker="aws"}`:                    42, // none: since start
		`edge_agent_reconnects_total{broker="aws",reason="closed_after_connect"}`: 2,
		`edge_agent_reconnects_total{broker="plant",reason="network"}`:            1,
		`edge_agent_aws_refused{broker="aws"}`:                                    1,
		`edge_agent_aws_clock_skew_seconds{broker="aws"}`:                         1.5,
		`edge_agent_aws_credentials_expiry_timestamp_seconds{broker="aws"}`:       1_800_000_000,
		`edge_agent_mqtt_protocol_info{broker="plant",protocol="5"}`:              1,
		`edge_agent_broker_info{broker="plant",provider="mqtt"}`:                  1,
		`edge_agent_queue_corrupt_records_total`:                                  1, // the file's: no broker
		`edge_agent_inbound_dropped_total{reason="slow_subscriber"}`:              2,
		`edge_agent_info{version="1.2.3",provider="aws-iot"}`:                     1,
	} {
		if got, ok := samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if s := samples[`edge_agent_seconds_since_last_delivery{broker="plant"}`]; s < 59 || s > 3600 {
		t.Errorf("plant's seconds since last delivery %v, want about 60", s)
	}
	// No unlabelled series beside the per-broker ones, and nothing AWS for the mqtt broker.
	for series := range samples {
		for _, name := range []string{"edge_agent_queue_depth", "edge_agent_connected", "edge_agent_delivered_total", "edge_agent_reconnects_total"} {
			if strings.HasPrefix(series, name) && !strings.Contains(series, "broker=") {
				t.Errorf("unlabelled series %s", series)
			}
		}
		if strings.HasPrefix(series, "edge_agent_aws_") && strings.Contains(series, `broker="plant"`) {
			t.Errorf("AWS series for the mqtt broker: %s", series)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// oneBrokerBackend is fleetBackend's status with its one broker in Brokers as well.
type oneBrokerBackend struct{ fleetBackend }

func (b *oneBrokerBackend) Status() Status {
	st := b.fleetBackend.Status()
	st.Brokers = []BrokerStatus{{Name: "default", State: "connected", Provider: "mqtt", Queue: st.Queue, Reconnects: st.Reconnects}}
	return st
}

// With one broker /metrics is what it was before several brokers: no broker label.
func TestMetricsOneBroker(t *testing.T) {
	scrape := func(b Backend) string {
		t.Helper()
		c := startServer(t, b, nil, nil)
		status, body := call(t, c, "GET", "/metrics", "", "")
		if status != 200 {
			t.Fatalf("GET /metrics: %d %s", status, body)
		}
		checkExposition(t, body)
		return regexp.MustCompile(`(?m)^edge_agent_(api_connections|seconds_since_last_delivery) .*$`).ReplaceAllString(body, "")
	}
	none, one := scrape(&fleetBackend{}), scrape(&oneBrokerBackend{})
	if none != one || strings.Contains(one, "broker=") {
		t.Fatalf("one broker in Status.Brokers changed /metrics:\n%s\n---\n%s", one, none)
	}
}

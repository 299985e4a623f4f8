package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/topic"
)

// doc joins lines with "\n": the case's line numbers are its argument positions.
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

const wsURL = `url = "ws://broker.test:8080/mqtt"`

func mustParse(t *testing.T, d string) *Config {
	t.Helper()
	c, err := Parse([]byte(d), "agent.toml")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", d, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Fatalf("this test needs a host name: %v", err)
	}
	c := mustParse(t, doc("[broker]", wsURL))
	want := &Config{
		ClientID: host,
		StateDir: "/var/lib/edge-agent",
		Socket:   "/run/edge-agent/agent.sock",
		Broker: Broker{Provider: "mqtt", URL: "ws://broker.test:8080/mqtt",
			Keepalive: Duration{60 * time.Second}, MaxInflight: 64,
			ReconnectMin: Duration{time.Second}, ReconnectMax: Duration{2 * time.Minute},
			MaxPacketSize: 264 * KiB, PoisonAfter: 3,
			Protocol: "auto", SessionExpiry: Duration{time.Hour}, MaxInflight3: 20,
			Limits: Limits{DefaultPayload: 256 * KiB, DefaultProtocol: "auto"}}, // MQTT's own limits only
		Queue: Queue{MaxBytes: 256 << 20, Overflow: "drop-oldest", MaxDeadLetters: 10000},
		Log:   Log{Level: "info", Format: "text"},
		API:   wantAPI(256 << 10),
	}
	// The single [broker] is the broker named "default", with the top-level client_id and queue bounds.
	want.Broker.Name, want.Broker.ClientID, want.Broker.Queue = DefaultBrokerName, host, want.Queue
	want.Brokers = []Broker{want.Broker}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	aws := mustParse(t, doc("[broker]", `provider = "aws-iot"`, `url = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"`))
	if aws.API.MaxPayload != 128<<10 || aws.Broker.Region != "eu-west-1" || aws.Broker.MaxInflight != 64 {
		t.Fatalf("aws-iot defaults: %+v", aws)
	}
	if len(c.Warnings)+len(aws.Warnings) != 0 {
		t.Fatalf("unexpected warnings: %q %q", c.Warnings, aws.Warnings)
	}
	if d := Default(); d.API.MaxPayload != 0 || d.Broker.Keepalive.Duration != time.Minute || d.Queue.MaxBytes != 256*MiB {
		t.Fatalf("Default(): %+v", d)
	}
}

// wantAPI is the default [api] table with the given max_payload.
func wantAPI(maxPayload Size) API {
	return API{MaxPayload: maxPayload, MaxBatchBytes: 8 * MiB, MaxBatchLines: 10000, BodyBudget: 24 * MiB,
		SubscriberBuffer: MiB, SubscriberBudget: 8 * MiB, MaxSubscribers: 128, MaxConnections: 64,
		ReadTimeout: Duration{30 * time.Second}, IdleTimeout: Duration{2 * time.Minute}}
}

func intp(i int) *int { return &i }

// TestKeys sets every key once and checks where it lands.
func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(c *Config) bool
	}{
		{"client_id", doc(`client_id = "gw-0001"`, "[broker]", wsURL), func(c *Config) bool { return c.ClientID == "gw-0001" }},
		{"client_id unicode", doc(`client_id = "gw-ü"`, "[broker]", wsURL), func(c *Config) bool { return c.ClientID == "gw-ü" }},
		{"state_dir", doc(`state_dir = "/data/q"`, "[broker]", wsURL), func(c *Config) bool { return c.StateDir == "/data/q" }},
		{"socket", doc(`socket = "/tmp/a.sock"`, "[broker]", wsURL), func(c *Config) bool { return c.Socket == "/tmp/a.sock" }},
		{"provider mqtt", doc("[broker]", `provider = "mqtt"`, wsURL), func(c *Config) bool { return c.Broker.Provider == "mqtt" }},
		{"url wss", doc("[broker]", `url = "wss://b.example/mqtt"`), func(c *Config) bool { return c.Broker.URL == "wss://b.example/mqtt" }},
		{"region explicit", doc("[broker]", `provider = "aws-iot"`, `url = "wss://my.host.example/mqtt"`, `region = "us-gov-west-1"`),
			func(c *Config) bool { return c.Broker.Region == "us-gov-west-1" }},
		{"region from host", doc("[broker]", `provider = "aws-iot"`, `url = "wss://a1b2c3-ats.iot.ap-southeast-2.amazonaws.com:443/mqtt"`),
			func(c *Config) bool { return c.Broker.Region == "ap-southeast-2" }},
		{"region from china host", doc("[broker]", `provider = "aws-iot"`, `url = "wss://a1b2c3.ats.iot.cn-north-1.amazonaws.com.cn/mqtt"`),
			func(c *Config) bool { return c.Broker.Region == "cn-north-1" }},
		{"username", doc("[broker]", wsURL, `username = "dev"`), func(c *Config) bool { return c.Broker.Username == "dev" }},
		{"password_file", doc("[broker]", wsURL, `password_file = "/etc/pw"`), func(c *Config) bool { return c.Broker.PasswordFile == "/etc/pw" }},
		{"ca_file", doc("[broker]", wsURL, `ca_file = "/etc/ca.pem"`), func(c *Config) bool { return c.Broker.CAFile == "/etc/ca.pem" }},
		{"keepalive", doc("[broker]", wsURL, `keepalive = "1m30s"`), func(c *Config) bool { return c.Broker.Keepalive.Duration == 90*time.Second }},
		{"keepalive min", doc("[broker]", wsURL, `keepalive = "1s"`), func(c *Config) bool { return c.Broker.Keepalive.Duration == time.Second }},
		{"keepalive max", doc("[broker]", wsURL, `keepalive = "65535s"`), func(c *Config) bool { return c.Broker.Keepalive.Duration == 65535*time.Second }},
		{"max_inflight", doc("[broker]", wsURL, `max_inflight = 500`), func(c *Config) bool { return c.Broker.MaxInflight == 500 }},
		{"cognito", doc("[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`, "[cognito]",
			`identity_pool_id = "eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab"`, `endpoint = "http://127.0.0.1:9999"`),
			func(c *Config) bool {
				return c.HasCognito && c.Cognito.IdentityPoolID == "eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab" && c.Cognito.Endpoint == "http://127.0.0.1:9999"
			}},
		{"cognito login", doc("[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`, "[cognito]",
			`identity_pool_id = "eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab"`,
			`login_provider = "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"`, `login_token_file = "/run/edge-agent/id-token"`),
			func(c *Config) bool {
				return c.Cognito.LoginProvider == "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf" && c.Cognito.LoginTokenFile == "/run/edge-agent/id-token"
			}},
		{"cognito developer login", doc("[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`, "[cognito]",
			`identity_pool_id = "eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab"`, `login_provider = "login.example.devices"`, `login_token_file = "tok"`),
			func(c *Config) bool {
				return c.Cognito.LoginProvider == "login.example.devices" && c.Cognito.LoginTokenFile == "tok"
			}},
		{"no cognito", doc("[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`), func(c *Config) bool { return !c.HasCognito }},
		{"max_bytes MiB", doc("[broker]", wsURL, "[queue]", `max_bytes = "1MiB"`), func(c *Config) bool { return c.Queue.MaxBytes == 1<<20 }},
		{"max_bytes integer", doc("[broker]", wsURL, "[queue]", `max_bytes = 1_048_576`), func(c *Config) bool { return c.Queue.MaxBytes == 1<<20 }},
		{"max_bytes hex integer", doc("[broker]", wsURL, "[queue]", `max_bytes = 0x100000`), func(c *Config) bool { return c.Queue.MaxBytes == 1<<20 }},
		{"max_bytes GB", doc("[broker]", wsURL, "[queue]", `max_bytes = "2GB"`), func(c *Config) bool { return c.Queue.MaxBytes == 2e9 }},
		{"overflow reject", doc("[broker]", wsURL, "[queue]", `overflow = "reject"`), func(c *Config) bool { return c.Queue.Overflow == "reject" }},
		{"subscribe", doc("[broker]", wsURL, "[[subscribe]]", `topic = "a/+/c/#"`, "qos = 1", "[[subscribe]]", `topic = "#"`),
			func(c *Config) bool {
				return reflect.DeepEqual(c.Subscribe, []Subscribe{{Topic: "a/+/c/#", QoS: 1}, {Topic: "#", QoS: 0}})
			}},
		{"subscribe inline", doc(`subscribe = [{topic = "x", qos = 1}]`, "[broker]", wsURL),
			func(c *Config) bool { return reflect.DeepEqual(c.Subscribe, []Subscribe{{Topic: "x", QoS: 1}}) }},
		{"access", doc("[broker]", wsURL, "[[access]]", `user = "reader"`, `publish = ["sensors/#"]`, `subscribe = ["cmd/+"]`,
			"[[access]]", "uid = 1001", `publish = ["a"]`, "[[access]]", "gid = 0", `subscribe = ["b"]`, "[[access]]", `group = "edge"`, `publish = ["c"]`),
			func(c *Config) bool {
				return reflect.DeepEqual(c.Access, []Access{
					{User: "reader", Publish: []string{"sensors/#"}, Subscribe: []string{"cmd/+"}},
					{UID: intp(1001), Publish: []string{"a"}},
					{GID: intp(0), Subscribe: []string{"b"}},
					{Group: "edge", Publish: []string{"c"}},
				})
			}},
		{"log", doc("[broker]", wsURL, "[log]", `level = "debug"`, `format = "json"`), func(c *Config) bool { return c.Log == Log{"debug", "json"} }},
		{"max_payload", doc("[broker]", wsURL, "[api]", `max_payload = "1MiB"`), func(c *Config) bool { return c.API.MaxPayload == MiB }},
		{"max_payload aws", doc("[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`, "[api]", `max_payload = "64KiB"`),
			func(c *Config) bool { return c.API.MaxPayload == 64*KiB }},
		{"dotted keys", doc(`broker.url = "ws://h/mqtt"`, `queue.overflow = "reject"`), func(c *Config) bool { return c.Broker.URL == "ws://h/mqtt" && c.Queue.Overflow == "reject" }},
		{"comments and blank lines", doc("# hi", "", "[broker] # b", wsURL+" # u", ""), func(c *Config) bool { return c.Broker.URL != "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.doc)
			if !tt.check(c) {
				t.Fatalf("unexpected result for\n%s%+v", tt.doc, c)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	aws := []string{"[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`}
	tests := []struct {
		name  string
		doc   string
		warn  string
		check func(c *Config) bool
	}{
		{"aws keepalive low", doc(append(aws, `keepalive = "10s"`)...), `agent.toml:4: broker.keepalive: 10s is below the AWS IoT minimum; using 30s`,
			func(c *Config) bool { return c.Broker.Keepalive.Duration == 30*time.Second }},
		{"aws keepalive high", doc(append(aws, `keepalive = "1h"`)...), `agent.toml:4: broker.keepalive: 1h0m0s is above the AWS IoT maximum; using 20m0s`,
			func(c *Config) bool { return c.Broker.Keepalive.Duration == 1200*time.Second }},
		{"aws max_inflight", doc(append(aws, `max_inflight = 200`)...), `agent.toml:4: broker.max_inflight: 200 is above the AWS IoT limit`,
			func(c *Config) bool { return c.Broker.MaxInflight == 100 }},
		{"region with mqtt", doc("[broker]", wsURL, `region = "eu-west-1"`), `agent.toml:3: broker.region: ignored`,
			func(c *Config) bool { return true }},
		{"access grants nothing", doc("[broker]", wsURL, "[[access]]", `user = "x"`), `agent.toml:3: access[0]: grants neither`,
			func(c *Config) bool { return true }},
		// Kept so that old files load; messages are buffered once, by the hub.
		{"incoming_buffer", doc("[broker]", wsURL, `incoming_buffer = "2MiB"`), `agent.toml:3: broker.incoming_buffer: has no effect any more`,
			func(c *Config) bool { return strings.Contains(c.Warnings[0], "api.subscriber_buffer") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.doc)
			if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], tt.warn) {
				t.Fatalf("warnings %q, want one starting %q", c.Warnings, tt.warn)
			}
			if !tt.check(c) {
				t.Fatalf("value not adjusted: %+v", c.Broker)
			}
		})
	}
}

// TestErrors checks every error path: the first error's line, key and text.
func TestCognitoWithMQTTIsAWarning(t *testing.T) {
	c, err := Parse([]byte("[broker]\nurl = \"ws://broker.test:8080/mqtt\"\n\n[cognito]\nidentity_pool_id = 'eu-west-1:0000'\n"), "agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `agent.toml:4: cognito: ignored: only used with provider "aws-iot"`) {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

func TestErrors(t *testing.T) {
	aws := func(lines ...string) string {
		return doc(append([]string{"[broker]", `provider = "aws-iot"`, `url = "wss://x.iot.eu-west-1.amazonaws.com/mqtt"`}, lines...)...)
	}
	mq := func(lines ...string) string { return doc(append([]string{"[broker]", wsURL}, lines...)...) }
	tests := []struct {
		name string
		doc  string
		line int
		key  string
		msg  string // substring of the full message
	}{
		// unknown keys
		{"unknown top key", doc("clientid = 1"), 1, "clientid", "agent.toml:1: unknown key clientid"},
		{"unknown broker key", mq("", "", "", "", "urll = 'x'"), 7, "broker.urll", "agent.toml:7: unknown key broker.urll"},
		{"unknown table", mq("[brokr]", "url = 1"), 3, "brokr", "unknown key brokr"},
		{"unknown subtable", mq("[broker.tls]", "x = 1"), 3, "broker.tls", "unknown key broker.tls"},
		{"unknown in array table", mq("[[subscribe]]", "topic = 'a'", "[[subscribe]]", "topik = 'b'"), 6, "subscribe[1].topik", "unknown key subscribe[1].topik"},
		{"unknown in inline table", mq("[queue]", "x = 1", "[log]", "level = 'info'"), 4, "queue.x", "unknown key queue.x"},
		{"unknown in inline value", doc(`broker = {url = "ws://h/mqtt", nope = 1}`), 1, "broker.nope", "unknown key broker.nope"},
		{"unknown in inline array", doc("", `subscribe = [{topic = "a"},`, `  {topic = "b", q = 1}]`), 3, "subscribe[1].q", "unknown key subscribe[1].q"},
		{"unknown dotted", doc("queue.size = 1", "[broker]", wsURL), 1, "queue.size", "unknown key queue.size"},
		{"unknown escaped key", doc(`"cli\u0065nt" = 1`), 1, "client", "unknown key client"},
		{"unknown key wrong case", doc("Client_ID = 'x'"), 1, "Client_ID", "unknown key Client_ID"},
		{"warnings is not a key", doc("warnings = []", "[broker]", wsURL), 1, "warnings", "unknown key warnings"},
		// syntax and TOML errors
		{"syntax", mq("[queue", "x=1"), 3, "", "agent.toml:3: "},
		{"bad string", mq("", "state_dir = \"abc"), 4, "", "agent.toml:4: "},
		{"duplicate key", mq("", "url = 'ws://b/mqtt'"), 4, "broker.url", "already defined"},
		{"duplicate table", mq("[queue]", "[queue]"), 4, "queue", "agent.toml:4: "},
		// type errors
		{"string for int", mq("[[subscribe]]", "topic = 'a'", "qos = '1'"), 5, "subscribe[0].qos", "must be an integer"},
		{"int for string", mq("[log]", "level = 3"), 4, "log.level", "must be a string"},
		{"bool for string", doc("state_dir = false", "[broker]", wsURL), 1, "state_dir", "wrong type: a boolean"},
		{"bool for string 2", mq("[log]", "format = true"), 4, "log.format", "wrong type"},
		{"array for string", mq("[log]", "format = [", "  'a',", "]"), 4, "log.format", "wrong type"},
		{"inline table for string", mq("[log]", "format = {a = 1}"), 4, "log.format", "wrong type"},
		{"string for array", mq("[[access]]", "user = 'x'", "publish = 'a/#'"), 5, "access[0].publish", "wrong type"},
		{"table header over string", mq("[log.format]"), 3, "log.format", "agent.toml:3: log.format: wrong type: a value, not a table"},
		{"table header below string", mq("[log.format.x]", "y = 1"), 3, "log.format", "agent.toml:3: log.format: wrong type: a value, not a table"},
		{"dotted key below string", mq("[log]", "format.x = 1"), 4, "log.format", "agent.toml:4: log.format: wrong type"},
		{"header below array of tables", mq("[access.x]"), 3, "access", "write [[access]]"},
		{"table for array of tables", mq("[subscribe]", "topic = 'a'"), 3, "subscribe", "agent.toml:3: subscribe: wrong type: an array of tables: write [[subscribe]]"},
		{"array of tables for table", mq("[[queue]]", "overflow = 'reject'"), 3, "queue[0]", "agent.toml:3: "},
		{"int too large", mq("max_inflight = 99999999999999999999"), 3, "broker.max_inflight", "agent.toml:3: "},
		{"float for int", mq("max_inflight = 1.5"), 3, "broker.max_inflight", "wrong type"},
		{"negative uid", mq("[[access]]", "uid = -1", "publish = ['a']"), 4, "access[0].uid", "-1 is negative"},
		// sizes
		{"size garbage", mq("[queue]", "max_bytes = 'lots'"), 4, "queue.max_bytes", `agent.toml:4: queue.max_bytes: size "lots" does not start with a number`},
		{"size unit", mq("[queue]", "max_bytes = '12XB'"), 4, "queue.max_bytes", `unknown unit "XB"`},
		{"size negative", mq("[queue]", "", "max_bytes = -5"), 5, "queue.max_bytes", `size "-5" is negative`},
		{"size negative string", mq("[queue]", "max_bytes = '-1MiB'"), 4, "queue.max_bytes", "negative"},
		{"size overflow", mq("[queue]", "max_bytes = '9999999999TiB'"), 4, "queue.max_bytes", "too large"},
		{"size overflow digits", mq("[queue]", "max_bytes = '99999999999999999999'"), 4, "queue.max_bytes", "out of range"},
		{"size float", mq("[queue]", "max_bytes = 1.5"), 4, "queue.max_bytes", "unknown unit"},
		{"size bool", mq("[api]", "max_payload = true"), 4, "api.max_payload", `size "true"`},
		{"size array", mq("[api]", "max_payload = [1]"), 4, "api.max_payload", "size"},
		{"size empty", mq("[api]", "max_payload = ''"), 4, "api.max_payload", "empty size"},
		{"size in inline table", doc(`queue = {max_bytes = "x"}`, "[broker]", wsURL), 1, "queue.max_bytes", "size"},
		// durations
		{"duration no unit", mq("keepalive = 60"), 3, "broker.keepalive", `invalid duration "60"`},
		{"duration garbage", mq("keepalive = 'soon'"), 3, "broker.keepalive", `invalid duration "soon"`},
		// provider, url, region, credentials
		{"provider", doc("[broker]", "provider = 'amqp'", wsURL), 2, "broker.provider", `"amqp" is not a provider`},
		{"url missing", doc("[broker]", "provider = 'mqtt'"), 1, "broker.url", "missing"},
		{"url missing no table", doc("client_id = 'x'"), 0, "broker.url", "agent.toml: broker.url: missing"},
		{"url scheme", doc("[broker]", "url = 'tcp://h:1883'"), 2, "broker.url", `scheme "tcp"`},
		{"url no host", doc("[broker]", "url = 'ws:///mqtt'"), 2, "broker.url", "no host"},
		{"url unparsable", doc("[broker]", "url = 'ws://h:port/mqtt'"), 2, "broker.url", "not a URL"},
		{"url credentials", doc("[broker]", "url = 'ws://u:secret@h/mqtt'"), 2, "broker.url", "must not hold credentials"},
		{"aws url ws", aws()[:len(aws())-len("wss://x.iot.eu-west-1.amazonaws.com/mqtt\"\n")] + "ws://x.iot.eu-west-1.amazonaws.com/mqtt\"\n", 3, "broker.url", "AWS IoT needs wss://"},
		{"aws url query", doc("[broker]", "provider = 'aws-iot'", "url = 'wss://x.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Signature=1'"), 3, "broker.url", "query string"},
		{"aws region unknown host", doc("[broker]", "provider = 'aws-iot'", "url = 'wss://broker.example.com/mqtt'"), 1, "broker.region", "missing, and the host"},
		{"aws region bad", aws("region = 'Europe'"), 4, "broker.region", `"Europe" is not an AWS region`},
		{"aws username", aws("username = 'u'"), 4, "broker.username", "not used with provider"},
		{"aws password_file", aws("password_file = '/pw'"), 4, "broker.password_file", "not used with provider"},
		// keepalive, inflight
		{"keepalive zero", mq("keepalive = '0s'"), 3, "broker.keepalive", "0s is outside 1s..65535s"},
		{"keepalive large", mq("keepalive = '65536s'"), 3, "broker.keepalive", "outside 1s..65535s"},
		{"keepalive negative", mq("keepalive = '-5s'"), 3, "broker.keepalive", "outside"},
		{"keepalive fraction", mq("keepalive = '1500ms'"), 3, "broker.keepalive", "whole seconds"},
		{"max_inflight zero", mq("max_inflight = 0"), 3, "broker.max_inflight", "0 is outside 1..65535"},
		{"max_inflight large", mq("max_inflight = 70000"), 3, "broker.max_inflight", "outside"},
		// client id
		{"client_id empty", doc("client_id = ''", "[broker]", wsURL), 1, "client_id", "empty"},
		{"client_id NUL", doc(`client_id = "a\u0000b"`, "[broker]", wsURL), 1, "client_id", "NUL"},
		{"client_id too long", doc("client_id = '"+strings.Repeat("x", 65536)+"'", "[broker]", wsURL), 1, "client_id", "longer than 65535"},
		{"aws client_id long", doc("client_id = '"+strings.Repeat("x", 129)+"'", "[broker]", "provider = 'aws-iot'", "url = 'wss://x.iot.eu-west-1.amazonaws.com/mqtt'"), 1, "client_id", "129 bytes; AWS IoT allows at most 128"},
		{"aws client_id dollar", doc("client_id = '$gw'", "[broker]", "provider = 'aws-iot'", "url = 'wss://x.iot.eu-west-1.amazonaws.com/mqtt'"), 1, "client_id", "must not start with '$'"},
		{"state_dir empty", doc("state_dir = ''", "[broker]", wsURL), 1, "state_dir", "empty"},
		{"socket empty", doc("socket = ''", "[broker]", wsURL), 1, "socket", "empty"},
		{"socket too long", doc("socket = '/run/"+strings.Repeat("s", 103)+"'", "[broker]", wsURL), 1, "socket", "108 bytes; Linux binds Unix sockets of at most 107 bytes"},
		{"url port zero", doc("[broker]", "url = 'ws://broker.test:0/mqtt'"), 2, "broker.url", `port "0" is not a TCP port`},
		{"url port too big", doc("[broker]", "url = 'wss://broker.test:65536/mqtt'"), 2, "broker.url", `port "65536" is not a TCP port`},
		{"url port not a number", doc("[broker]", "url = 'wss://broker.test:http/mqtt'"), 2, "broker.url", "not a URL"},
		{"max_packet_size small", mq("max_packet_size = 100"), 3, "broker.max_packet_size", "outside 256 bytes"},
		{"max_packet_size huge", mq("max_packet_size = '1GiB'"), 3, "broker.max_packet_size", "(the MQTT limit)"},
		{"poison_after negative", mq("poison_after = -1"), 3, "broker.poison_after", "outside 0..100"},
		// cognito
		{"cognito pool missing", aws("[cognito]", "endpoint = ''"), 4, "cognito.identity_pool_id", "missing"},
		{"cognito pool bad", aws("[cognito]", "identity_pool_id = 'pool'"), 5, "cognito.identity_pool_id", `"pool" is not an identity pool id`},
		{"cognito pool not a uuid", aws("[cognito]", "identity_pool_id = 'eu-west-1:00ab'"), 5, "cognito.identity_pool_id", `"eu-west-1:00ab" is not an identity pool id`},
		{"cognito endpoint bad", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "endpoint = 'ftp://x'"), 6, "cognito.endpoint", "not an http(s) URL"},
		{"cognito login_provider without token file", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "", "login_provider = 'accounts.google.com'"), 7,
			"cognito.login_provider", "agent.toml:7: cognito.login_provider: set without cognito.login_token_file"},
		{"cognito login_token_file without provider", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "login_token_file = '/run/tok'"), 6,
			"cognito.login_token_file", "agent.toml:6: cognito.login_token_file: set without cognito.login_provider"},
		{"cognito login_provider empty", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "login_provider = ''", "login_token_file = '/run/tok'"), 7,
			"cognito.login_token_file", "set without cognito.login_provider"},
		{"cognito login_provider with a space", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "login_provider = 'accounts google'", "login_token_file = '/run/tok'"), 6,
			"cognito.login_provider", `"accounts google" is not a provider name`},
		{"cognito login_provider too long", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "login_token_file = '/run/tok'", "login_provider = '"+strings.Repeat("p", 129)+"'"), 7,
			"cognito.login_provider", "at most 128 bytes"},
		{"cognito login_token_file wrong type", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "login_provider = 'accounts.google.com'", "login_token_file = 5"), 7,
			"cognito.login_token_file", "must be a string"},
		{"cognito unknown login key", aws("[cognito]", "identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "logins = 'x'"), 6, "cognito.logins", "unknown key cognito.logins"},
		// queue, api
		{"overflow", mq("[queue]", "overflow = 'block'"), 4, "queue.overflow", `"block": use "drop-oldest" or "reject"`},
		{"max_bytes small", mq("[queue]", "max_bytes = '63KiB'"), 4, "queue.max_bytes", "63KiB is below the minimum of 64KiB"},
		{"max_payload zero", mq("[api]", "max_payload = 0"), 4, "api.max_payload", "at least 1 byte"},
		{"max_payload mqtt limit", mq("[api]", "max_payload = '1GiB'", "[queue]", "max_bytes = '2GiB'"), 4, "api.max_payload", "above the MQTT limit"},
		{"max_payload aws limit", aws("[api]", "max_payload = '129KiB'"), 5, "api.max_payload", "above the AWS IoT limit of 128KiB"},
		{"body_budget below payload", mq("[api]", "max_payload = '1MiB'", "body_budget = '512KiB'", "max_batch_bytes = '256KiB'"), 5, "api.body_budget", "smaller than api.max_payload"},
		{"body_budget below batch", mq("[api]", "body_budget = '4MiB'"), 4, "api.body_budget", "smaller than api.max_batch_bytes"},
		{"max_batch_lines zero", mq("[api]", "max_batch_lines = 0"), 4, "api.max_batch_lines", "at least 1"},
		{"subscriber_budget below buffer", mq("[api]", "subscriber_buffer = '2MiB'", "subscriber_budget = '1MiB'"), 5, "api.subscriber_budget", "smaller than api.subscriber_buffer"},
		{"max_connections zero", mq("[api]", "max_connections = 0"), 4, "api.max_connections", "outside 1..10000"},
		{"read_timeout tiny", mq("[api]", "read_timeout = '1ms'"), 4, "api.read_timeout", "outside 100ms..1h"},
		{"max_payload over queue", mq("[api]", "max_payload = '100KiB'", "[queue]", "max_bytes = '64KiB'"), 4, "api.max_payload", "larger than queue.max_bytes"},
		// subscribe
		{"subscribe no topic", mq("[[subscribe]]", "topic = 'a'", "[[subscribe]]", "qos = 1"), 5, "subscribe[1].topic", "missing"},
		{"subscribe empty topic", mq("[[subscribe]]", "topic = ''"), 4, "subscribe[0].topic", "missing"},
		{"subscribe hash not last", mq("[[subscribe]]", "topic = 'a/#/b'"), 4, "subscribe[0].topic", "'#' must be the whole last level"},
		{"subscribe hash in level", mq("[[subscribe]]", "topic = 'a/b#'"), 4, "subscribe[0].topic", "'#'"},
		{"subscribe plus in level", mq("[[subscribe]]", "topic = 'a/b+/c'"), 4, "subscribe[0].topic", "'+' must be a whole level"},
		{"subscribe NUL", mq("[[subscribe]]", `topic = "a\u0000"`), 4, "subscribe[0].topic", "NUL"},
		{"subscribe qos 2", mq("[[subscribe]]", "topic = 'a'", "qos = 2"), 5, "subscribe[0].qos", "2: use 0 or 1"},
		{"subscribe qos negative", mq("[[subscribe]]", "topic = 'a'", "qos = -1"), 5, "subscribe[0].qos", "use 0 or 1"},
		{"aws too many subscriptions", aws(strings.Repeat("[[subscribe]]\ntopic = 'a'\n", 51)), 4, "subscribe", "51 subscriptions"},
		// access
		{"access no identity", mq("[[access]]", "publish = ['a']"), 3, "access[0]", "exactly one of user, uid, gid or group (found 0)"},
		{"access two identities", mq("[[access]]", "user = 'b'", "publish = ['a']", "[[access]]", "user = 'a'", "gid = 5"), 6, "access[1]", "(found 2)"},
		{"access negative gid", mq("[[access]]", "gid = -3", "publish = ['a']"), 4, "access[0].gid", "negative"},
		{"access bad publish filter", mq("[[access]]", "user = 'a'", "publish = ['ok',", "  'x/#/y']"), 5, "access[0].publish[1]", "'#'"},
		{"access bad subscribe filter", mq("[[access]]", "user = 'a'", "subscribe = ['a+']"), 5, "access[0].subscribe[0]", "'+'"},
		// log
		{"log level", mq("[log]", "level = 'verbose'"), 4, "log.level", `"verbose": use one of debug, info, warn, error`},
		{"log format", mq("[log]", "format = 'xml'"), 4, "log.format", `"xml": use text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "agent.toml")
			if err == nil {
				t.Fatalf("no error for\n%s=> %+v", tt.doc, c)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not a *config.Error", err, err)
			}
			if e.Line != tt.line || e.Key != tt.key || e.File != "agent.toml" {
				t.Errorf("got file %q line %d key %q, want line %d key %q (%v)", e.File, e.Line, e.Key, tt.line, tt.key, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestAllUnknownKeysReported(t *testing.T) {
	_, err := Parse([]byte(doc("[broker]", wsURL, "urll = 1", "[queue]", "max = 2", "[[subscribe]]", "topic = 'a'", "q = 1")), "a.toml")
	want := "a.toml:3: unknown key broker.urll\na.toml:5: unknown key queue.max\na.toml:8: unknown key subscribe[0].q"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestAllValidationErrorsReported(t *testing.T) {
	_, err := Parse([]byte(doc("[broker]", "provider = 'x'", "url = 'ftp://h'", "[log]", "level = 'loud'")), "a.toml")
	want := "a.toml:2: broker.provider: \"x\" is not a provider: use \"mqtt\" or \"aws-iot\"\n" +
		"a.toml:3: broker.url: scheme \"ftp\": use ws:// or wss:// (MQTT over WebSocket)\n" +
		"a.toml:5: log.level: \"loud\": use one of debug, info, warn, error"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// The decoder's own strict mode panics on an unknown quoted key with an
// escape (go-toml v2.2.4); the schema check catches it first, and
// decodeInto turns such a panic into an error anyway.
func TestDecoderPanicIsAnError(t *testing.T) {
	err := decodeInto([]byte(`"cli\u0065nt" = 1`+"\n"), new(Config))
	if err == nil || !strings.Contains(err.Error(), "cannot read this document") {
		t.Fatalf("got %v", err)
	}
}

// The decoder's StrictMissingError is mapped to lines and indexed keys
// (a backstop: the schema check in the index normally reports first).
func TestStrictMissingErrorMapping(t *testing.T) {
	d := []byte(doc("[broker]", wsURL, "[[subscribe]]", "topic = 'a'", "[[subscribe]]", "", "nope = 1"))
	ix, err := buildIndex(d, "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	derr := decodeInto(d, new(Config))
	if derr == nil {
		t.Fatal("decoder accepted an unknown key")
	}
	got := ix.libError(derr, nil)
	var e *Error
	if !errors.As(got, &e) || e.Line != 7 || e.Key != "subscribe[1].nope" || got.Error() != "x.toml:7: unknown key subscribe[1].nope" {
		t.Fatalf("got %#v (%v)", e, got)
	}
}

func TestSpecExample(t *testing.T) {
	data, err := os.ReadFile("testdata/spec-example.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Verbatim, the example combines provider "mqtt" with a [cognito] table: it parses, and the
	// aws-iot-only settings (region, the [cognito] table) are the warnings.
	verbatim, err := Parse(data, "spec.toml")
	if err != nil {
		t.Fatalf("verbatim example: %v", err)
	}
	if len(verbatim.Warnings) != 2 || !strings.Contains(verbatim.Warnings[0], "broker.region: ignored") || !strings.Contains(verbatim.Warnings[1], "cognito: ignored") {
		t.Fatalf("verbatim example warnings: %q", verbatim.Warnings)
	}
	aws := strings.Replace(string(data), `provider  = "mqtt"`, `provider  = "aws-iot"`, 1)
	if aws == string(data) {
		t.Fatal("example no longer has the provider line this test edits")
	}
	c, err := Parse([]byte(aws), "spec.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		ClientID: "gw-0001", StateDir: "/var/lib/edge-agent", Socket: "/run/edge-agent/agent.sock",
		Broker: Broker{Provider: "aws-iot", URL: "wss://broker.example.com/mqtt", Region: "eu-west-1",
			Keepalive: Duration{time.Minute}, MaxInflight: 64, MaxPublishRate: 100, MaxByteRate: 512 * KiB, MaxSubscriptions: 50,
			ReconnectMin: Duration{time.Second}, ReconnectMax: Duration{2 * time.Minute},
			MaxPacketSize: 136 * KiB, PoisonAfter: 3,
			Protocol: "5", SessionExpiry: Duration{time.Hour}, MaxInflight3: 20,
			// The AWS IoT Core quotas, as SPEC.md states them.
			Limits: Limits{Name: "AWS IoT", Topic: topic.Limits{MaxBytes: 256, MaxLevels: 8}, MaxPayload: 128 * KiB,
				DefaultPayload: 128 * KiB, MaxClientID: 128, NoDollarID: true, MinKeepalive: 30 * time.Second,
				MaxKeepalive: 1200 * time.Second, MaxInflight: 100, MaxSubscriptions: 50, MinReconnect: time.Second, PublishRate: 100, ByteRate: 512 * KiB,
				DefaultProtocol: "5", Protocols: []string{"auto", "5", "3.1.1"}, CloseIsPolicy: true}},
		Cognito:    Cognito{IdentityPoolID: "eu-west-1:00000000-0000-0000-0000-000000000000"},
		HasCognito: true,
		Queue:      Queue{MaxBytes: 256 * MiB, Overflow: "drop-oldest", MaxDeadLetters: 10000},
		Subscribe:  []Subscribe{{Topic: "devices/gw-0001/cmd/#", QoS: 1}},
		Access:     []Access{{User: "sensor-reader", Publish: []string{"sensors/#"}, Subscribe: []string{"devices/gw-0001/cmd/#"}}},
		Log:        Log{Level: "info", Format: "text"},
		API:        wantAPI(128 * KiB),
	}
	want.Broker.Name, want.Broker.ClientID, want.Broker.Queue, want.Broker.Cognito = DefaultBrokerName, "gw-0001", want.Queue, want.Cognito
	want.Brokers = []Broker{want.Broker}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

// fileWriter returns a function that writes a file (mode 0600) into dir and returns its path.
func fileWriter(t *testing.T, dir string) func(name, content string) string {
	return func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := fileWriter(t, dir)
	write("pw", "secret\n")
	write("ca.pem", "-----BEGIN CERTIFICATE-----\n")
	p := write("ok.toml", doc("[broker]", wsURL, "password_file = 'pw'", "ca_file = '"+filepath.Join(dir, "ca.pem")+"'"))
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.PasswordFile != filepath.Join(dir, "pw") || c.Broker.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("paths not resolved: %+v", c.Broker)
	}

	if len(c.Warnings) != 0 {
		t.Fatalf("a 0600 password file gave warnings: %q", c.Warnings)
	}
	// A secret every user can read starts, with a warning naming the key, the line and the fix.
	if err := os.Chmod(filepath.Join(dir, "pw"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], ":3: broker.password_file: ") ||
		!strings.Contains(c.Warnings[0], "readable by every user on this machine (mode 0644)") || !strings.Contains(c.Warnings[0], "chmod o-rwx") {
		t.Fatalf("world-readable password file: warnings %q", c.Warnings)
	}

	p = write("missing.toml", doc("[broker]", wsURL, "", "password_file = 'nope'", "ca_file = '/nonexistent/ca.pem'"))
	_, err = Load(p)
	want := p + ":4: broker.password_file: cannot open " + filepath.Join(dir, "nope") + ": no such file or directory\n" +
		p + ":5: broker.ca_file: cannot open /nonexistent/ca.pem: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%v does not wrap os.ErrNotExist", err)
	}

	p = write("dir.toml", doc("[broker]", wsURL, "ca_file = '.'"))
	if _, err = Load(p); err == nil || !strings.Contains(err.Error(), ":3: broker.ca_file: ") || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("got %v", err)
	}

	// cognito.login_token_file: resolved like password_file, and it must exist (aws-iot only).
	write("id-token", "eyJraWQiOi.fake.token\n")
	cogDoc := func(file string) string {
		return doc("[broker]", "provider = 'aws-iot'", "url = 'wss://x.iot.eu-west-1.amazonaws.com/mqtt'", "[cognito]",
			"identity_pool_id = 'eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab'", "login_provider = 'accounts.google.com'",
			"login_token_file = '"+file+"'")
	}
	c, err = Load(write("login.toml", cogDoc("id-token")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cognito.LoginTokenFile != filepath.Join(dir, "id-token") || c.Cognito.LoginProvider != "accounts.google.com" {
		t.Fatalf("login token file not resolved: %+v", c.Cognito)
	}
	p = write("login-missing.toml", cogDoc("sub/none"))
	_, err = Load(p)
	if want := p + ":7: cognito.login_token_file: cannot open " + filepath.Join(dir, "sub", "none") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if _, err = Load(write("login-dir.toml", cogDoc("."))); err == nil || !strings.Contains(err.Error(), ":7: cognito.login_token_file: ") || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("got %v", err)
	}
	// With provider mqtt the [cognito] table is ignored (a warning), its token file is not checked.
	mq := strings.Replace(strings.Replace(cogDoc("sub/none"), "provider = 'aws-iot'", "provider = 'mqtt'", 1), "wss://x.iot.eu-west-1.amazonaws.com/mqtt", "ws://broker.test/mqtt", 1)
	if c, err = Load(write("login-mqtt.toml", mq)); err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "cognito: ignored") {
		t.Fatalf("mqtt with a [cognito] login: %v %+v", err, c)
	}

	// Parse alone does not look at the file system.
	if _, err := Parse([]byte(doc("[broker]", wsURL, "password_file = '/nonexistent'")), "x"); err != nil {
		t.Fatal(err)
	}

	if _, err := Load(filepath.Join(dir, "absent.toml")); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "absent.toml") {
		t.Fatalf("got %v", err)
	}
	p = write("bad.toml", doc("[broker]", wsURL, "x = 1"))
	if _, err := Load(p); err == nil || err.Error() != p+":3: unknown key broker.x" {
		t.Fatalf("got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  string
	}{
		{"4096", 4096, ""}, {"0", 0, ""}, {"1B", 1, ""}, {"512KiB", 512 << 10, ""}, {"256MiB", 256 << 20, ""},
		{"1GiB", 1 << 30, ""}, {"2TiB", 2 << 40, ""}, {"1kB", 1000, ""}, {"1KB", 1000, ""}, {"1MB", 1e6, ""},
		{"3GB", 3e9, ""}, {"1TB", 1e12, ""}, {"256mib", 256 << 20, ""}, {" 10 MiB ", 10 << 20, ""},
		{"1_000", 1000, ""}, {"+5", 5, ""}, {"0x10", 16, ""}, {"0o10", 8, ""}, {"0b11", 3, ""},
		{"010", 10, ""}, {"8388607TiB", 8388607 << 40, ""}, {"9223372036854775807", 1<<63 - 1, ""},
		{"", 0, "empty size"}, {"  ", 0, "empty size"}, {"-1", 0, "negative"}, {"-0x5", 0, "negative"},
		{"MiB", 0, "does not start with a number"}, {"1.5GiB", 0, `unknown unit ".5GiB"`}, {"1 lots", 0, "unknown unit"},
		{"1K", 0, "unknown unit"}, {"8388608TiB", 0, "too large"}, {"9223372036854775808", 0, "out of range"},
		{"0xZZ", 0, "not a valid number"}, {"0x", 0, "unknown unit"}, {"1e3", 0, "unknown unit"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", tt.in, int64(got), err, int64(tt.want))
		}
	}
	for s, want := range map[Size]string{0: "0", 1000: "1000", KiB: "1KiB", 256 * MiB: "256MiB", 3 * GiB: "3GiB", TiB: "1TiB", 1536: "1536"} {
		if s.String() != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), s.String(), want)
		}
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Errorf("round trip %d: %v %v", int64(s), back, err)
		}
	}
	if b, _ := (Duration{90 * time.Second}).MarshalText(); string(b) != "1m30s" {
		t.Errorf("Duration.MarshalText = %q", b)
	}
}

func TestRatesAndQueueAgeKeys(t *testing.T) {
	c, err := Parse([]byte(`
[broker]
provider = "aws-iot"
url = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"
max_publish_rate = 400
max_byte_rate = "2MiB"
max_subscriptions = 100

[queue]
max_age = "24h"
max_dead_letters = 50
`), "agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.MaxPublishRate != 400 || c.Broker.MaxByteRate != 2*MiB || c.Broker.MaxSubscriptions != 100 ||
		c.Queue.MaxAge.Duration != 24*time.Hour || c.Queue.MaxDeadLetters != 50 {
		t.Fatalf("got broker %+v queue %+v", c.Broker, c.Queue)
	}
	// A small queue gets a matching default payload limit instead of an error.
	c, err = Parse([]byte("[broker]\nurl = \"ws://b.test/mqtt\"\n[queue]\nmax_bytes = \"64KiB\"\n"), "agent.toml")
	if err != nil || c.API.MaxPayload != 16*KiB {
		t.Fatalf("small queue: %v, max_payload %v", err, c.API.MaxPayload)
	}
	for _, bad := range []struct{ doc, key string }{
		{"[broker]\nurl = \"ws://b.test/mqtt\"\nmax_publish_rate = -1\n", "broker.max_publish_rate"},
		{"[broker]\nurl = \"ws://b.test/mqtt\"\nmax_subscriptions = -1\n", "broker.max_subscriptions"},
		{"[broker]\nurl = \"ws://b.test/mqtt\"\nmax_byte_rate = -1\n", "broker.max_byte_rate"},
		{"[broker]\nurl = \"ws://b.test/mqtt\"\n[queue]\nmax_age = \"-1s\"\n", "queue.max_age"},
		{"[broker]\nurl = \"ws://b.test/mqtt\"\n[queue]\nmax_dead_letters = -5\n", "queue.max_dead_letters"},
	} {
		_, err := Parse([]byte(bad.doc), "agent.toml")
		var e *Error
		if !errors.As(err, &e) || e.Key != bad.key {
			t.Errorf("%q: got %v, want an error for %s", bad.doc, err, bad.key)
		}
	}
}

func TestReconnectBounds(t *testing.T) {
	c := mustParse(t, "[broker]\nurl = \"ws://b.test/mqtt\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n")
	if c.Broker.ReconnectMin.Duration != 100*time.Millisecond || c.Broker.ReconnectMax.Duration != time.Second {
		t.Fatalf("got %+v", c.Broker)
	}
	for _, bad := range []struct{ doc, key string }{
		{"[broker]\nurl = \"ws://b.test/mqtt\"\nreconnect_min = \"1ms\"\n", "broker.reconnect_min"},
		{"[broker]\nurl = \"ws://b.test/mqtt\"\nreconnect_min = \"5s\"\nreconnect_max = \"1s\"\n", "broker.reconnect_max"},
	} {
		_, err := Parse([]byte(bad.doc), "agent.toml")
		var e *Error
		if !errors.As(err, &e) || e.Key != bad.key {
			t.Errorf("%q: got %v, want an error for %s", bad.doc, err, bad.key)
		}
	}
}

// broker.protocol defaults by provider and takes only what the provider speaks; broker.session_expiry
// is whole seconds, 0 allowed; max_inflight set in the file is also the 3.x window.
func TestProtocolKeys(t *testing.T) {
	c := mustParse(t, doc("[broker]", wsURL))
	if c.Broker.Protocol != "auto" || c.Broker.SessionExpiry.Duration != time.Hour || c.Broker.MaxInflight3 != 20 {
		t.Fatalf("mqtt defaults: protocol %q session_expiry %v max_inflight3 %d", c.Broker.Protocol, c.Broker.SessionExpiry, c.Broker.MaxInflight3)
	}
	c = mustParse(t, doc("[broker]", wsURL, `protocol = "3.1"`, `session_expiry = "0s"`, "max_inflight = 7"))
	if c.Broker.Protocol != "3.1" || c.Broker.SessionExpiry.Duration != 0 || c.Broker.MaxInflight3 != 7 {
		t.Fatalf("set: %+v", c.Broker)
	}
	for _, bad := range [][]string{
		{`protocol = "4"`, `broker.protocol: "4" is not a protocol the broker speaks: use "auto", "5", "3.1.1", "3.1"`},
		{`session_expiry = "1500ms"`, "broker.session_expiry: 1.5s: MQTT counts the session expiry in whole seconds"},
		{`session_expiry = "-1s"`, "broker.session_expiry: -1s is outside"},
	} {
		_, err := Parse([]byte(doc("[broker]", wsURL, bad[0])), "a.toml")
		if err == nil || !strings.Contains(err.Error(), bad[1]) {
			t.Errorf("%s: %v, want %q", bad[0], err, bad[1])
		}
	}
}

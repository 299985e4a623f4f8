package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	awsURL   = `url = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"`
	poolID   = `identity_pool_id = "eu-west-1:0f2e8c1a-1234-4bcd-9abc-0123456789ab"`
	plantURL = `url = "wss://broker.plant.test/mqtt"`
)

// The committed example with two brokers (AWS IoT + a plant broker) parses into two fully resolved
// brokers; Broker and Cognito are the first one's.
func TestTwoBrokersExample(t *testing.T) {
	data, err := os.ReadFile("testdata/two-brokers.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "two.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 || len(c.Brokers) != 2 {
		t.Fatalf("warnings %q, %d brokers", c.Warnings, len(c.Brokers))
	}
	aws, plant := c.Brokers[0], c.Brokers[1]
	pool := Cognito{IdentityPoolID: "eu-west-1:00000000-0000-0000-0000-000000000000"}
	for _, got := range []struct {
		what      string
		got, want any
	}{
		{"names", []string{aws.Name, plant.Name}, []string{"aws", "plant"}},
		{"providers", []string{aws.Provider, plant.Provider}, []string{ProviderAWSIoT, ProviderMQTT}},
		{"client ids", []string{aws.ClientID, plant.ClientID}, []string{"gw-0001", "gw-0001-plant"}},
		{"publish", [][]string{aws.Publish, plant.Publish}, [][]string{{"telemetry/#"}, {"alarms/#", "telemetry/#"}}},
		{"aws queue", aws.Queue, Queue{MaxBytes: 192 * MiB, Overflow: OverflowDropOldest, MaxDeadLetters: 10000}},
		{"plant queue", plant.Queue, Queue{MaxBytes: 64 * MiB, Overflow: OverflowReject, MaxDeadLetters: 10000}},
		{"overall queue", c.Queue, Queue{MaxBytes: 256 * MiB, Overflow: OverflowDropOldest, MaxDeadLetters: 10000}},
		{"cognito", []Cognito{aws.Cognito, plant.Cognito, c.Cognito}, []Cognito{pool, {}, pool}},
		{"uses cognito", []bool{aws.UsesCognito(), plant.UsesCognito(), c.HasCognito}, []bool{true, false, true}},
		{"limits", []string{aws.Limits.Name, plant.Limits.Name}, []string{"AWS IoT", ""}},
		{"resolved per provider", []any{aws.Region, aws.MaxPublishRate, aws.Protocol, plant.MaxPublishRate, plant.Protocol},
			[]any{"eu-west-1", 100.0, "5", 0.0, "auto"}},
		// A payload must fit every broker: the smallest provider default.
		{"max_payload", c.API.MaxPayload, 128 * KiB},
		{"max_packet_size", []Size{aws.MaxPacketSize, plant.MaxPacketSize}, []Size{136 * KiB, 136 * KiB}},
		{"subscribe", c.Subscribe, []Subscribe{{Topic: "cmd/gw-0001/#", QoS: 1, Broker: "plant"}, {Topic: "gw-0001/ping"}}},
		{"top-level client_id", c.ClientID, "gw-0001"},
	} {
		if !reflect.DeepEqual(got.got, got.want) {
			t.Errorf("%s: got %+v, want %+v", got.what, got.got, got.want)
		}
	}
	if !reflect.DeepEqual(c.Broker, aws) {
		t.Errorf("Broker is not Brokers[0]: %+v", c.Broker)
	}
	if c.BrokerNamed("plant") != &c.Brokers[1] || c.BrokerNamed("aws") != &c.Brokers[0] || c.BrokerNamed("default") != nil {
		t.Error("BrokerNamed")
	}
	for _, r := range []struct {
		topic      string
		aws, plant bool
	}{
		{"telemetry/line1/temp", true, true}, {"telemetry", true, true}, {"alarms/fire", false, true},
		{"logs/x", false, false}, {"$SYS/x", false, false},
	} {
		if aws.Routes(r.topic) != r.aws || plant.Routes(r.topic) != r.plant {
			t.Errorf("%s: routes aws %v plant %v, want %v %v", r.topic, aws.Routes(r.topic), plant.Routes(r.topic), r.aws, r.plant)
		}
	}
}

// The example of SPEC.md's "Several brokers", with a real pool id.
func TestSpecSeveralBrokers(t *testing.T) {
	c := mustParse(t, doc(`client_id = "gw-0001"`,
		"[[broker]]", `name     = "aws"`, `provider = "aws-iot"`, `url      = "wss://xxxx-ats.iot.eu-west-1.amazonaws.com/mqtt"`,
		`publish  = ["telemetry/#"]`, "[broker.cognito]", poolID,
		"", "[[broker]]", `name     = "plant"`, `provider = "mqtt"`, `url      = "wss://broker.plant.local/mqtt"`,
		`publish  = ["alarms/#", "telemetry/#"]`,
		"", "[[subscribe]]", `broker = "plant"`, `topic  = "cmd/gw-0001/#"`))
	if len(c.Brokers) != 2 || c.Brokers[0].Name != "aws" || c.Brokers[1].Name != "plant" || c.Brokers[0].Cognito.IdentityPoolID == "" ||
		c.Brokers[1].ClientID != "gw-0001" || !c.Brokers[1].Routes("alarms/a") || c.Brokers[0].Routes("alarms/a") {
		t.Fatalf("%+v", c.Brokers)
	}
}

// Other spellings of several brokers, and the single form's new keys.
func TestBrokerForms(t *testing.T) {
	// An inline array of tables; each entry keeps the defaults of the keys it leaves out.
	c := mustParse(t, doc(`broker = [{name = "a", url = "ws://a.test/mqtt", keepalive = "30s"},`, `  {name = "b", url = "ws://b.test/mqtt"}]`))
	if len(c.Brokers) != 2 || c.Brokers[0].Keepalive.Duration != 30*time.Second || c.Brokers[1].Keepalive.Duration != time.Minute ||
		c.Brokers[1].MaxInflight != 64 || c.Brokers[1].SessionExpiry.Duration != time.Hour {
		t.Fatalf("inline: %+v", c.Brokers)
	}
	// One [[broker]] needs no name; it is the default one, and may use the top-level [cognito].
	c = mustParse(t, doc("[[broker]]", `provider = "aws-iot"`, awsURL, "[cognito]", poolID))
	if len(c.Brokers) != 1 || c.Broker.Name != DefaultBrokerName || !c.Broker.UsesCognito() || !c.HasCognito {
		t.Fatalf("one [[broker]]: %+v", c.Brokers)
	}
	// The single [broker] table may have a name, its own client_id, [broker.cognito] and [broker.queue].
	c = mustParse(t, doc(`client_id = "top"`, "[broker]", `name = "cloud"`, `provider = "aws-iot"`, awsURL, `client_id = "gw-{hostname}"`,
		`publish = ["a/#"]`, "[broker.cognito]", poolID, "[broker.queue]", `max_bytes = "1MiB"`, "[queue]", `max_age = "1h"`))
	b := c.Broker
	if b.Name != "cloud" || !c.HasCognito || c.Cognito != b.Cognito || !b.UsesCognito() || b.Queue.MaxBytes != MiB || b.Queue.MaxAge.Duration != time.Hour ||
		c.API.MaxPayload != 128*KiB || b.Routes("b") || !b.Routes("a/b") || !reflect.DeepEqual(c.Brokers, []Broker{b}) {
		t.Fatalf("single form: %+v", c.Broker)
	}
	if host, _ := os.Hostname(); b.ClientID != "gw-"+host || c.ClientID != "top" {
		t.Fatalf("client_id %q", b.ClientID)
	}
	// Routes on a Broker built by hand parses its filters.
	hb := Broker{Publish: []string{"x/+"}}
	if !hb.Routes("x/y") || hb.Routes("x") || !(&Broker{}).Routes("anything") {
		t.Fatal("Routes of a hand-built Broker")
	}
}

func TestBrokerClientIDTemplates(t *testing.T) {
	h := Host{Getenv: func(n string) string { return map[string]string{"SITE": "s1"}[n] }, Hostname: func() (string, error) { return "gw7", nil }}
	c, err := h.Parse([]byte(doc(`client_id = "{hostname}"`, "[[broker]]", `name = "a"`, plantURL, `client_id = "{hostname}-{env:SITE}"`,
		"[[broker]]", `name = "b"`, plantURL)), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "gw7" || c.Brokers[0].ClientID != "gw7-s1" || c.Brokers[1].ClientID != "gw7" {
		t.Fatalf("%q %q %q", c.ClientID, c.Brokers[0].ClientID, c.Brokers[1].ClientID)
	}
}

// Warnings name the broker's key.
func TestBrokerWarnings(t *testing.T) {
	c := mustParse(t, doc("[[broker]]", `name = "a"`, plantURL, "[[broker]]", `name = "b"`, `provider = "aws-iot"`, awsURL, `keepalive = "10s"`))
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "agent.toml:8: broker[1].keepalive: 10s is below the AWS IoT minimum") ||
		c.Brokers[1].Keepalive.Duration != 30*time.Second || c.Brokers[0].Keepalive.Duration != time.Minute {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

// TestBrokerErrors: every error of several brokers names its key and line.
func TestBrokerErrors(t *testing.T) {
	two := func(lines ...string) string {
		return doc(append([]string{"[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, "[[broker]]", `name = "plant"`, plantURL}, lines...)...)
	}
	many := make([]string, 0, 3*17)
	for i := range 17 {
		many = append(many, "[[broker]]", `name = "b`+string(rune('a'+i))+`"`, `url = "ws://h`+string(rune('a'+i))+`.test/mqtt"`)
	}
	subs := func(n int, broker string) []string {
		var out []string
		for i := range n {
			out = append(out, "[[subscribe]]", `topic = "t/`+string(rune('a'+i%26))+string(rune('a'+i/26))+`"`, broker)
		}
		return out
	}
	tests := []struct {
		name string
		doc  string
		line int
		key  string
		msg  string
	}{
		{"unknown key", two("urll = 'x'"), 8, "broker[1].urll", "agent.toml:8: unknown key broker[1].urll"},
		{"unknown key in broker.queue", two("[broker.queue]", "size = 1"), 9, "broker[1].queue.size", "unknown key broker[1].queue.size"},
		{"unknown key in broker.cognito", doc("[[broker]]", `name = "a"`, plantURL, "[broker.cognito]", "pool = 1"), 5, "broker[0].cognito.pool", "unknown key"},
		{"unknown key inline", doc(`broker = [{name = "a", url = "ws://a/mqtt"}, {name = "b", nope = 1}]`), 1, "broker[1].nope", "unknown key broker[1].nope"},
		{"type error", two("keepalive = 60"), 8, "broker[1].keepalive", `invalid duration "60"`},
		{"type error first", doc("[[broker]]", `name = "a"`, "max_inflight = 'x'", plantURL), 3, "broker[0].max_inflight", "must be an integer"},
		{"type error in broker.queue", two("[broker.queue]", "max_bytes = 'lots'"), 9, "broker[1].queue.max_bytes", "does not start with a number"},
		{"type error outside brokers", two("[log]", "level = 3"), 9, "log.level", "must be a string"},
		{"syntax error", two("url = "), 8, "", "agent.toml:8: "},
		{"table and array", doc("[broker]", plantURL, "[[broker]]", plantURL), 1, "broker", "agent.toml:1: broker: a [broker] table and [[broker]] entries: write each broker as [[broker]]"},
		{"subtable before array", doc("[broker.queue]", "max_age = '1h'", "[[broker]]", plantURL), 1, "broker.queue", "write each broker as [[broker]]"},
		{"dotted key and array", doc("broker.url = 'ws://x/mqtt'", "[[broker]]", plantURL), 1, "broker.url", "write each broker as [[broker]]"},
		{"too many", doc(many...), 49, "broker[16]", "17 brokers; at most 16"},
		{"name missing", doc("[[broker]]", `name = "a"`, plantURL, "", "[[broker]]", plantURL), 5, "broker[1].name", "missing: with several brokers"},
		{"name bad", two()[:len(two())-len(plantURL)-len(`name = "plant"`)-2] + "name = \"pl ant\"\n" + plantURL + "\n", 6, "broker[1].name", `"pl ant": a name is 1 to 32`},
		{"name long", doc("[broker]", `name = "`+strings.Repeat("n", 33)+`"`, plantURL), 2, "broker.name", "1 to 32"},
		{"name empty", doc("[broker]", `name = ""`, plantURL), 2, "broker.name", "1 to 32"},
		{"name twice", doc("[[broker]]", `name = "x"`, plantURL, "[[broker]]", `name = "x"`, `url = "ws://other/mqtt"`), 5, "broker[1].name", `"x" is also the name of broker[0]`},
		{"same url and client_id", doc("[[broker]]", `name = "a"`, plantURL, "[[broker]]", `name = "b"`, plantURL), 6, "broker[1].url", `broker "b" has the url and client_id`},
		{"per-broker error key", two("keepalive = '0s'"), 8, "broker[1].keepalive", "outside 1s..65535s"},
		{"per-broker url", doc("[[broker]]", `name = "a"`, plantURL, "[[broker]]", `name = "b"`, "url = 'tcp://h'"), 6, "broker[1].url", `scheme "tcp"`},
		{"per-broker url missing", doc("[[broker]]", `name = "a"`, plantURL, "[[broker]]", `name = "b"`), 4, "broker[1].url", "missing"},
		{"per-broker provider", doc("[[broker]]", `name = "a"`, `provider = "amqp"`, plantURL, "[[broker]]", `name = "b"`, plantURL), 3, "broker[0].provider", `"amqp" is not a provider`},
		{"per-broker region", doc("[[broker]]", `name = "a"`, plantURL, "[[broker]]", `name = "b"`, `provider = "aws-iot"`, awsURL, "region = 'Mars'"), 8,
			"broker[1].region", `"Mars" is not an AWS region`},
		// publish filters, with the broker's topic limits
		{"publish bad filter", two(`publish = ["ok/#", "a/#/b"]`), 8, "broker[1].publish[1]", `"a/#/b"`},
		{"publish over aws limits", doc("[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, `publish = ["a/b/c/d/e/f/g/h/#"]`), 5, "broker[0].publish[0]", "8 slashes, over the limit of 7"},
		{"publish wrong type", two(`publish = "a/#"`), 8, "broker[1].publish", "wrong type"},
		// client_id per broker, with the broker's provider limits
		{"client_id own too long for aws", doc("[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, `client_id = "`+strings.Repeat("x", 129)+`"`,
			"[[broker]]", `name = "b"`, plantURL), 5, "broker[0].client_id", "129 bytes; AWS IoT allows at most 128"},
		{"client_id inherited too long for aws", doc(`client_id = "`+strings.Repeat("x", 129)+`"`, "[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL,
			"[[broker]]", `name = "b"`, plantURL), 1, "client_id", `129 bytes; AWS IoT allows at most 128 (broker "aws")`},
		{"client_id dollar", doc("[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, `client_id = "$x"`), 5, "broker[0].client_id", "must not start with '$'"},
		{"client_id template", two(`client_id = "gw-{serial}"`), 8, "broker[1].client_id", "unknown placeholder {serial}"},
		{"client_id empty", two(`client_id = ""`), 8, "broker[1].client_id", "empty: set an id, or remove the key"},
		// Cognito
		{"top-level cognito with several", two("[cognito]", poolID), 8, "cognito", "move this table below the [[broker]] that uses it"},
		{"cognito twice", doc("[broker]", `provider = "aws-iot"`, awsURL, "[broker.cognito]", poolID, "[cognito]", poolID), 4, "broker.cognito", "also set by the [cognito] table"},
		{"broker cognito bad pool", doc("[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, "[broker.cognito]", "identity_pool_id = 'pool'",
			"[[broker]]", `name = "b"`, plantURL), 6, "broker[0].cognito.identity_pool_id", `"pool" is not an identity pool id`},
		{"broker cognito missing pool", doc("[broker]", `provider = "aws-iot"`, awsURL, "[broker.cognito]", "endpoint = 'http://c.test'"), 4,
			"broker.cognito.identity_pool_id", "or remove the [broker.cognito] table"},
		{"broker cognito login", doc("[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, "[broker.cognito]", poolID, "login_provider = 'accounts.google.com'"), 7,
			"broker[0].cognito.login_provider", "set without broker[0].cognito.login_token_file"},
		// queue bounds
		{"broker queue above overall", two("[broker.queue]", `max_bytes = "1GiB"`), 9, "broker[1].queue.max_bytes",
			"1GiB is above queue.max_bytes (256MiB), the bound of all brokers' queues together"},
		{"broker queue above overall set", two("[broker.queue]", `max_bytes = "2MiB"`, "[queue]", `max_bytes = "1MiB"`), 9, "broker[1].queue.max_bytes", "above queue.max_bytes (1MiB)"},
		{"broker queue small", two("[broker.queue]", `max_bytes = "1KiB"`), 9, "broker[1].queue.max_bytes", "below the minimum of 64KiB"},
		{"broker queue overflow", two("[broker.queue]", `overflow = "sometimes"`), 9, "broker[1].queue.overflow", `"sometimes": use`},
		{"broker queue max_age", two("[broker.queue]", `max_age = "-1s"`), 9, "broker[1].queue.max_age", "negative"},
		{"broker queue dead letters", two("[broker.queue]", `max_dead_letters = -1`), 9, "broker[1].queue.max_dead_letters", "negative"},
		{"max_payload over the smallest broker queue", two("[broker.queue]", `max_bytes = "64KiB"`, "[api]", `max_payload = "100KiB"`), 11,
			"api.max_payload", "larger than broker[1].queue.max_bytes (64KiB)"},
		{"max_payload over aws with several", two("[api]", `max_payload = "200KiB"`), 9, "api.max_payload", "above the AWS IoT limit of 128KiB"},
		// [[subscribe]] broker
		{"subscribe unknown broker", two("[[subscribe]]", `topic = "a"`, `broker = "cloud"`), 10, "subscribe[0].broker", `"cloud" is not the name of a broker: use one of "aws", "plant"`},
		{"subscribe unknown broker single", doc("[broker]", plantURL, "[[subscribe]]", `topic = "a"`, `broker = "plant"`), 5, "subscribe[0].broker", `use one of "default"`},
		{"subscribe over aws limits", two("[[subscribe]]", `topic = "a/b/c/d/e/f/g/h/#"`), 9, "subscribe[0].topic", `over the limit of 7 (broker "aws")`},
		{"subscribe over aws limits for aws", two("[[subscribe]]", `topic = "a/b/c/d/e/f/g/h/#"`, `broker = "aws"`), 9, "subscribe[0].topic", `(broker "aws")`},
		{"subscribe count per broker", two(subs(51, "")...), 8, "subscribe", `51 subscriptions; AWS IoT allows at most 50 per connection (broker "aws")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "agent.toml")
			if err == nil {
				t.Fatalf("no error for\n%s=> %+v", tt.doc, c.Brokers)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not a *config.Error", err, err)
			}
			if e.Line != tt.line || e.Key != tt.key || e.File != "agent.toml" {
				t.Errorf("got line %d key %q, want line %d key %q (%v)", e.Line, e.Key, tt.line, tt.key, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

// What is valid with several brokers that one broker would refuse.
func TestBrokerScopes(t *testing.T) {
	two := func(lines ...string) string {
		return doc(append([]string{"[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, "[[broker]]", `name = "plant"`, plantURL}, lines...)...)
	}
	var subs []string
	for i := range 60 {
		subs = append(subs, "[[subscribe]]", `topic = "t/`+strings.Repeat("x", i+1)+`"`, `broker = "plant"`)
	}
	for name, d := range map[string]string{
		// A subscription made with the plant broker only is held to the plant broker's limits.
		"long filter for plant":      two("[[subscribe]]", `topic = "a/b/c/d/e/f/g/h/#"`, `broker = "plant"`),
		"60 subscriptions for plant": two(subs...),
		// Same url, own client ids.
		"same url": doc("[[broker]]", `name = "a"`, plantURL, "[[broker]]", `name = "b"`, plantURL, `client_id = "other"`),
		// A broker's queue may equal the overall bound; several together may exceed it (it bounds their sum).
		"queues":        two("[broker.queue]", `max_bytes = "256MiB"`, "[[broker]]", `name = "c"`, `url = "ws://c/mqtt"`, "[broker.queue]", `max_bytes = "200MiB"`),
		"publish empty": two(`publish = []`),
		"16 brokers": func() string {
			var l []string
			for i := range 16 {
				l = append(l, "[[broker]]", `name = "b`+string(rune('a'+i))+`"`, `url = "ws://h`+string(rune('a'+i))+`.test/mqtt"`)
			}
			return doc(l...)
		}(),
	} {
		if _, err := Parse([]byte(d), "agent.toml"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Load resolves and checks each broker's files, with the broker's key.
func TestLoadBrokers(t *testing.T) {
	dir := t.TempDir()
	write := fileWriter(t, dir)
	write("pw", "secret\n")
	write("tok", "token\n")
	good := doc("[[broker]]", `name = "aws"`, `provider = "aws-iot"`, awsURL, "[broker.cognito]", poolID,
		"login_provider = 'accounts.google.com'", "login_token_file = 'tok'",
		"[[broker]]", `name = "plant"`, plantURL, "password_file = 'pw'", "ca_file = 'pw'")
	c, err := Load(write("good.toml", good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Brokers[1].PasswordFile != filepath.Join(dir, "pw") || c.Brokers[0].Cognito.LoginTokenFile != filepath.Join(dir, "tok") ||
		c.Cognito.LoginTokenFile != filepath.Join(dir, "tok") || c.Broker.Cognito != c.Cognito {
		t.Fatalf("paths not resolved: %+v", c.Brokers)
	}
	bad := strings.NewReplacer("'tok'", "'none'", "password_file = 'pw'", "password_file = 'nopw'").Replace(good)
	p := write("bad.toml", bad)
	_, err = Load(p)
	want := p + ":8: broker[0].cognito.login_token_file: cannot open " + filepath.Join(dir, "none") + ": no such file or directory\n" +
		p + ":12: broker[1].password_file: cannot open " + filepath.Join(dir, "nopw") + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if err := os.Chmod(filepath.Join(dir, "pw"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(write("good.toml", good)); err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], ":12: broker[1].password_file: ") {
		t.Fatalf("%v %q", err, c.Warnings)
	}
}

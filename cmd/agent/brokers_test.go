package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/config"
)

// The --broker flags of the client commands reach the API (issue 11); without them no broker
// parameter is sent, so that an agent from before several brokers understands every request.
func TestBrokerFlags(t *testing.T) {
	f := startFake(t)
	f.status = statusJSON
	f.stream = []string{`{"broker":"plant","topic":"a/b","payload":"hello","qos":1,"retain":false}`}
	f.deadLetters = `{"dead_letters":[],"total":0}`
	file := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(file, []byte("from a file"), 0o600)
	cases := []struct {
		stdin string
		args  []string
		path  string // the request that must carry broker=plant (or none)
	}{
		{"", []string{"pub", "-t", "a/b", "-m", "x"}, "/v1/publish"},
		{"", []string{"pub", "-t", "a/b", "-f", file}, "/v1/publish"},
		{"all of it", []string{"pub", "-t", "a/b", "-s"}, "/v1/publish"},
		{"l1\nl2\n", []string{"pub", "-t", "a/b", "-l"}, "/v1/publish"},
		{"", []string{"sub", "-t", "a/#", "-C", "1"}, "/v1/subscribe"},
		{"", []string{"identity"}, "/v1/identity"},
		{"", []string{"deadletters"}, "/v1/deadletters"},
		{"", []string{"deadletters", "--json"}, "/v1/deadletters"},
		{"", []string{"deadletters", "--requeue", "1,2"}, "/v1/deadletters/requeue"},
		{"", []string{"deadletters", "--delete", "all"}, "/v1/deadletters"},
	}
	for _, withBroker := range []bool{true, false} {
		for _, tc := range cases {
			args := append([]string{tc.args[0], "--socket", f.socket}, tc.args[1:]...)
			if withBroker {
				args = append(args, "--broker", "plant")
			}
			before := len(f.requests())
			r := runCLI(t, strings.NewReader(tc.stdin), args...)
			r.want(t, 0)
			var seen bool
			for _, q := range f.requests()[before:] {
				if q.Path != tc.path {
					continue
				}
				seen = true
				got := strings.Join(q.Query["broker"], ",")
				if want := map[bool]string{true: "plant", false: ""}[withBroker]; got != want {
					t.Errorf("%v: %s %s?broker=%q, want %q", args, q.Method, q.Path, got, want)
				}
				if len(q.Lines) > 0 && q.Lines[0].Broker != nil {
					t.Errorf("%v: the batch lines name a broker: the query does", args)
				}
			}
			if !seen {
				t.Errorf("%v: no request to %s", args, tc.path)
			}
		}
	}
	// The other parameters are still there.
	for _, q := range f.requests() {
		if q.Path == "/v1/deadletters/requeue" && strings.Join(q.Query["id"], ",") != "1,2" {
			t.Errorf("requeue ids %v", q.Query)
		}
		if q.Method == "DELETE" && strings.Join(q.Query["all"], ",") != "1" {
			t.Errorf("delete all %v", q.Query)
		}
	}
	if r := runCLI(t, nil, "sub", "--socket", f.socket, "-t", "a/#", "-C", "1", "-v", "--broker", "plant"); r.stdout != "a/b hello\n" {
		t.Fatalf("sub -v: %q (a broker does not change the output)", r.stdout)
	}
}

const twoBrokerDeadLetters = `{"dead_letters":[` +
	`{"id":4,"broker":"aws","topic":"t/4","payload":"p","qos":1,"retain":false,"reason":"not authorized","at":"2026-01-02T03:04:05Z","created":"2026-01-02T03:04:00Z"},` +
	`{"id":4,"broker":"plant","topic":"t/4","payload":"p","qos":1,"retain":false,"reason":"too large","at":"2026-01-02T03:04:06Z","created":"2026-01-02T03:04:00Z"}` +
	`],"total":2}`

// With several brokers the dead-letter table names each entry's broker; with one it is as before.
func TestDeadLettersBrokerColumn(t *testing.T) {
	f := startFake(t)
	f.deadLetters = twoBrokerDeadLetters
	f.status = statusTwoBrokers
	r := runCLI(t, nil, "deadletters", "--socket", f.socket)
	r.want(t, 0)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^BROKER +ID +TOPIC +QOS +REFUSED AT +REASON +PAYLOAD$`),
		regexp.MustCompile(`(?m)^aws +4 +t/4 +1 +2026-01-02T03:04:05Z +not authorized +"p"$`),
		regexp.MustCompile(`(?m)^plant +4 +t/4 +1 +2026-01-02T03:04:06Z +too large +"p"$`),
		regexp.MustCompile(`(?m)^2 dead letter\(s\); requeue with --broker NAME --requeue`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("listing lacks %s:\n%s", want, r.stdout)
		}
	}
	f.status = statusJSON // one broker
	r = runCLI(t, nil, "deadletters", "--socket", f.socket)
	r.want(t, 0)
	if !strings.HasPrefix(r.stdout, "ID  ") || strings.Contains(r.stdout, "plant") || !strings.Contains(r.stdout, "requeue with --requeue ID") {
		t.Fatalf("one broker:\n%s", r.stdout)
	}
	// --broker: no column (every entry is that broker's), and no status asked.
	before := len(f.requests())
	r = runCLI(t, nil, "deadletters", "--socket", f.socket, "--broker", "plant")
	r.want(t, 0)
	if strings.HasPrefix(r.stdout, "BROKER") {
		t.Fatalf("--broker:\n%s", r.stdout)
	}
	for _, q := range f.requests()[before:] {
		if q.Path == "/v1/status" {
			t.Fatalf("--broker asked for the status")
		}
	}
}

const statusTwoBrokers = `{"state":"connecting","provider":"aws-iot","endpoint":"wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt",` +
	`"client_id":"gw","since":"2025-03-01T10:00:00Z","last_error":"closed after CONNECT",` +
	`"queue":{"depth":5,"bytes":5242880,"max_bytes":536870912,"overflow":"drop-oldest","dead_letters":2},"delivered":30,"accepted":35,"version":"1.2.3",` +
	`"diagnosis":"the first broker's advice","brokers":[` +
	`{"name":"aws","state":"connecting","provider":"aws-iot","endpoint":"wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt","client_id":"gw",` +
	`"publish":["telemetry/#"],"since":"2025-03-01T10:00:00Z","last_error":"closed after CONNECT",` +
	`"queue":{"depth":4,"bytes":4194304,"max_bytes":268435456,"overflow":"drop-oldest","dead_letters":2},"accepted":20,"delivered":16,` +
	`"aws":{"identity_id":"eu-west-1:11111111-2222-3333-4444-555555555555","region":"eu-west-1","clock_skew_seconds":0},` +
	`"diagnosis":"AWS IoT closed the connection right after CONNECT.\nAttach a policy: aws iot attach-policy --target eu-west-1:11111111-2222-3333-4444-555555555555"},` +
	`{"name":"plant","state":"connected","provider":"mqtt","endpoint":"wss://broker.plant.local/mqtt","client_id":"gw",` +
	`"publish":["alarms/#","telemetry/#"],"since":"2025-03-01T10:00:00Z","last_error":"",` +
	`"queue":{"depth":1,"bytes":1048576,"max_bytes":268435456,"overflow":"drop-oldest"},"accepted":15,"delivered":14,"connects":3,"protocol":"5"}]}`

func TestStatusBrokers(t *testing.T) {
	f := startFake(t)
	f.status = statusTwoBrokers
	r := runCLI(t, nil, "status", "--socket", f.socket)
	r.want(t, 0)
	t.Logf("status:\n%s", r.stdout)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^State: +connecting \(1 of 2 brokers connected\)$`),
		regexp.MustCompile(`(?m)^Queue: +5 messages, 5 MiB of 512 MiB`),
		regexp.MustCompile(`(?m)^Delivered: +30 of 35 accepted since start$`),
		regexp.MustCompile(`(?m)^Broker aws:\n  State: +connecting since \S+ \(\d+h\d+m\d+s ago\)\n  Provider: +aws-iot\n  Endpoint: +wss://abc-ats`),
		regexp.MustCompile(`(?m)^  Routes: +telemetry/#$`),
		regexp.MustCompile(`(?m)^  Queue: +4 messages, 4 MiB of 256 MiB`),
		regexp.MustCompile(`(?m)^  Dead letters: +2 refused`),
		regexp.MustCompile(`(?m)^  Delivered: +16 of 20 accepted since start$`),
		regexp.MustCompile(`(?m)^  Last error: +closed after CONNECT$`),
		regexp.MustCompile(`(?m)^  Identity ID: +eu-west-1:11111111-2222-3333-4444-555555555555$`),
		regexp.MustCompile(`(?m)^  Diagnosis:\n    AWS IoT closed the connection right after CONNECT\.\n    Attach a policy`),
		regexp.MustCompile(`(?m)^Broker plant:\n  State: +connected since`),
		regexp.MustCompile(`(?m)^  Routes: +alarms/#, telemetry/#$`),
		regexp.MustCompile(`(?m)^  Connections: +3 connections over MQTT 5, 0 in flight$`),
		regexp.MustCompile(`(?m)^  Last error: +none$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("status output lacks %s", want)
		}
	}
	// The first broker's fields are not printed as the agent's, nor the brokers as raw JSON.
	for _, not := range []string{`the first broker's advice`, `(?m)^(Endpoint|Provider|Last error|Identity ID):`, `"name"`, `brokers:`} {
		if regexp.MustCompile(not).MatchString(r.stdout) {
			t.Errorf("status output has %s", not)
		}
	}
	// --json is the status as sent.
	r = runCLI(t, nil, "status", "--socket", f.socket, "--json")
	if r.stdout != statusTwoBrokers+"\n" {
		t.Fatalf("--json printed %q", r.stdout)
	}
	// One broker in "brokers": the output of an agent without it.
	f.status = statusJSON
	plain := runCLI(t, nil, "status", "--socket", f.socket).stdout
	f.status = strings.TrimSuffix(statusJSON, "}") + `,"brokers":[{"name":"default","state":"connected","provider":"mqtt"}]}`
	if one := runCLI(t, nil, "status", "--socket", f.socket).stdout; one != plain {
		t.Fatalf("one broker changed the output:\n%s\n---\n%s", one, plain)
	}
}

// identity --config --broker picks the broker whose Cognito settings it uses.
func TestChooseAWSBroker(t *testing.T) {
	two := func() *config.Config {
		return &config.Config{Brokers: []config.Broker{
			{Name: "plant", Provider: config.ProviderMQTT},
			{Name: "aws", Provider: config.ProviderAWSIoT, Cognito: config.Cognito{IdentityPoolID: "eu-west-1:pool-a"}},
		}}
	}
	for _, tc := range []struct {
		name, want, err string
		extraAWS        bool
	}{
		{name: "", want: "aws"},
		{name: "aws", want: "aws"},
		{name: "plant", want: "plant"},
		{name: "nope", err: `no broker named "nope" (brokers: plant, aws)`},
		{name: "", extraAWS: true, err: "several aws-iot brokers (aws, aws2): choose one with --broker NAME"},
	} {
		cfg := two()
		if tc.extraAWS {
			cfg.Brokers = append(cfg.Brokers, config.Broker{Name: "aws2", Provider: config.ProviderAWSIoT})
		}
		err := chooseAWSBroker(cfg, tc.name)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: %v, want %s", tc.name, err, tc.err)
			}
		case err != nil || cfg.Broker.Name != tc.want:
			t.Errorf("%q: broker %q, %v; want %q", tc.name, cfg.Broker.Name, err, tc.want)
		case tc.want == "aws" && cfg.Cognito.IdentityPoolID != "eu-west-1:pool-a":
			t.Errorf("%q: Cognito %+v not the broker's", tc.name, cfg.Cognito)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/redact"
)

func TestCheckConfigGood(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("hunter2-hunter2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, `client_id = "gw-0001"
[broker]
provider = "mqtt"
url = "wss://broker.example.com/mqtt?token=s3cr3t-query-token"
username = "gw"
password_file = "`+pw+`"
[[subscribe]]
topic = "devices/gw-0001/cmd/#"
qos = 1
[[access]]
uid = 1000
publish = ["sensors/#"]
`)
	r := runCLI(t, nil, "check-config", "--config", path)
	r.want(t, 0)
	out := r.stdout
	for _, line := range []string{
		`client_id = "gw-0001"`,
		`broker.url = "wss://broker.example.com/mqtt?token=` + redact.Placeholder + `"`,
		`broker.username = "gw"`,
		`broker.password_file = "` + pw + `"`, // the path to a secret is fine
		`broker.keepalive = "1m0s"`,           // defaults are shown
		`queue.max_bytes = "256MiB"`,
		`subscribe[0].topic = "devices/gw-0001/cmd/#"`,
		`access[0].uid = 1000`,
		`access[0].publish = ["sensors/#"]`,
		`api.max_payload = "256KiB"`, // resolved from the provider
		`limits.default_payload = "256KiB"`,
	} {
		if !strings.Contains(out, "\n"+line+"\n") {
			t.Errorf("no line %q in\n%s", line, out)
		}
	}
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, "hunter2") {
		t.Errorf("a secret in the output:\n%s", out)
	}
	// Every key of the schema is printed: each [api] field of the Config type, for instance.
	keys := 0
	for _, l := range strings.Split(out, "\n") {
		if regexp.MustCompile(`^[a-z_\[\]0-9.]+ = `).MatchString(l) {
			keys++
		}
	}
	if keys < 45 {
		t.Errorf("only %d settings printed:\n%s", keys, out)
	}
}

func TestCheckConfigAWSLimits(t *testing.T) {
	path := writeConfig(t, `[broker]
provider = "aws-iot"
url = "wss://abc123-ats.iot.eu-west-1.amazonaws.com/mqtt"
keepalive = "5s"
`)
	r := runCLI(t, nil, "check-config", "-c", path)
	r.want(t, 0)
	for _, line := range []string{`broker.region = "eu-west-1"`, `broker.keepalive = "30s"`, `broker.max_inflight = 64`,
		`limits.topic.max_bytes = 256`, `limits.max_payload = "128KiB"`, `limits.publish_rate = 100`, `limits.min_keepalive = "30s"`} {
		if !strings.Contains(r.stdout, "\n"+line+"\n") {
			t.Errorf("no line %q in\n%s", line, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warning: "+path+":4: broker.keepalive") {
		t.Errorf("the keepalive adjustment is not reported: %q", r.stderr)
	}
}

func TestCheckConfigBad(t *testing.T) {
	// Validation problems are all reported, each with file, line and key.
	path := writeConfig(t, `client_id = "gw-0001"
[broker]
provider = "aws-iot"
url = "ws://abc123-ats.iot.eu-west-1.amazonaws.com/mqtt"
[queue]
max_bytes = "1KiB"
overflow = "sometimes"
[[subscribe]]
topic = "a/#/b"
qos = 2
`)
	r := runCLI(t, nil, "check-config", "--config", path)
	r.want(t, 1)
	if r.stdout != "" {
		t.Errorf("settings printed for a bad file: %s", r.stdout)
	}
	want := []string{
		path + ":4: broker.url: AWS IoT needs wss://",
		path + ":6: queue.max_bytes: 1KiB is below the minimum",
		path + ":7: queue.overflow: \"sometimes\"",
		path + ":9: subscribe[0].topic: \"a/#/b\"",
		path + ":10: subscribe[0].qos: 2",
		"edge-agent check-config: " + path + ": 5 problems",
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), r.stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want prefix %q", i+1, lines[i], w)
		}
	}

	// Unknown keys are all reported too (before any other check).
	path = writeConfig(t, "client_id = \"gw\"\n[broker]\nurll = \"wss://x/mqtt\"\n[queue]\nmax_byte = 1\n")
	r = runCLI(t, nil, "check-config", "--config", path)
	r.want(t, 1)
	for _, w := range []string{path + ":3: unknown key broker.urll\n", path + ":5: unknown key queue.max_byte\n", ": 2 problems\n"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("no %q in %q", w, r.stderr)
		}
	}

	// A file that cannot be read, and files the config names that cannot be opened.
	r = runCLI(t, nil, "check-config", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	r.want(t, 1)
	if !strings.Contains(r.stderr, "read config:") {
		t.Errorf("%q", r.stderr)
	}
	path = writeConfig(t, "client_id = \"gw\"\n[broker]\nurl = \"wss://x/mqtt\"\npassword_file = \"nope\"\nca_file = \"nope.pem\"\n")
	r = runCLI(t, nil, "check-config", "--config", path)
	r.want(t, 1)
	for _, w := range []string{":4: broker.password_file: cannot open", ":5: broker.ca_file: cannot open", ": 2 problems\n"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("no %q in %q", w, r.stderr)
		}
	}
}

// With several brokers each broker's settings are printed under its key, with a summary line.
func TestCheckConfigBrokers(t *testing.T) {
	r := runCLI(t, nil, "check-config", "--config", "../../config/testdata/two-brokers.toml")
	r.want(t, 0)
	for _, line := range []string{
		`client_id = "gw-0001"`,
		`queue.max_bytes = "256MiB"`,
		`# broker "aws": provider "aws-iot", url wss://xxxx-ats.iot.eu-west-1.amazonaws.com/mqtt, client_id "gw-0001", publish telemetry/#, queue max_bytes 192MiB overflow drop-oldest`,
		`broker[0].name = "aws"`,
		`broker[0].cognito.identity_pool_id = "eu-west-1:00000000-0000-0000-0000-000000000000"`,
		`broker[0].limits.max_payload = "128KiB"`,
		`# broker "plant": provider "mqtt", url wss://broker.plant.local/mqtt, client_id "gw-0001-plant", publish alarms/# telemetry/#, queue max_bytes 64MiB overflow reject`,
		`broker[1].publish = ["alarms/#", "telemetry/#"]`,
		`broker[1].client_id = "gw-0001-plant"`,
		`broker[1].queue.overflow = "reject"`,
		`subscribe[0].broker = "plant"`,
	} {
		if !strings.Contains(r.stdout, "\n"+line+"\n") {
			t.Errorf("no line %q in\n%s", line, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\nbroker.") || strings.Contains(r.stdout, "\ncognito.") {
		t.Errorf("single-broker keys printed for several brokers:\n%s", r.stdout)
	}
}

func TestRedactSetting(t *testing.T) {
	tests := []struct{ key, in, want string }{
		{"broker.url", "wss://h/mqtt", "wss://h/mqtt"},
		{"broker.url", "wss://u:pw@h/mqtt", "wss://u:" + redact.Placeholder + "@h/mqtt"},
		{"broker.url", "wss://h/mqtt?b=2&a=1", "wss://h/mqtt?a=" + redact.Placeholder + "&b=" + redact.Placeholder},
		{"broker.password", "hunter2", redact.Placeholder},
		{"cognito.login_token", "tok", redact.Placeholder},
		{"broker.password_file", "/etc/edge-agent/pw", "/etc/edge-agent/pw"},
		{"cognito.login_token_file", "tok.jwt", "tok.jwt"},
		{"client_id", "gw-0001", "gw-0001"},
		{"broker.password", "", ""},
	}
	for _, tt := range tests {
		if got := redactSetting(tt.key, tt.in); got != tt.want {
			t.Errorf("%s %q: %q, want %q", tt.key, tt.in, got, tt.want)
		}
	}
}

// The spec's example file passes check-config.
func TestCheckConfigSpecExample(t *testing.T) {
	if _, err := config.Load("../../config/testdata/spec-example.toml"); err != nil {
		t.Skipf("the spec example does not load here: %v", err)
	}
	r := runCLI(t, nil, "check-config", "--config", "../../config/testdata/spec-example.toml")
	r.want(t, 0)
}

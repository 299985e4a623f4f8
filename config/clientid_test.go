package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientIDTemplates(t *testing.T) {
	dir := t.TempDir()
	mid := filepath.Join(dir, "machine-id")
	if err := os.WriteFile(mid, []byte("0123456789abcdef0123456789abcdef\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SITE": "plant-7", "LONG": strings.Repeat("x", 120)}
	host := Host{
		Hostname:      func() (string, error) { return "pi-kitchen", nil },
		MachineIDFile: mid,
		Getenv:        func(k string) string { return env[k] },
	}
	for _, tt := range []struct {
		name, id, provider string
		host               Host
		want, err          string // err: the whole first error
	}{
		{name: "plain", id: "gw-0001", want: "gw-0001"},
		{name: "hostname", id: "{hostname}", want: "pi-kitchen"},
		{name: "all", id: "{env:SITE}-{hostname}-{machine_id}", want: "plant-7-pi-kitchen-0123456789abcdef0123456789abcdef"},
		{name: "unknown", id: "gw-{serial}",
			err: `t.toml:2: client_id: "gw-{serial}": unknown placeholder {serial}: use {hostname}, {machine_id} or {env:NAME}`},
		{name: "unclosed", id: "gw-{hostname",
			err: `t.toml:2: client_id: "gw-{hostname": a '{' without its '}'; placeholders are {hostname}, {machine_id} and {env:NAME}`},
		{name: "stray close", id: "gw}",
			err: `t.toml:2: client_id: "gw}": a '}' without its '{'; placeholders are {hostname}, {machine_id} and {env:NAME}`},
		{name: "unset env", id: "gw-{env:NOPE}",
			err: `t.toml:2: client_id: "gw-{env:NOPE}": {env:NOPE}: the environment variable NOPE is empty or unset (set it in the unit's Environment=)`},
		{name: "bad env name", id: "{env:A-B}", err: `t.toml:2: client_id: "{env:A-B}": {env:A-B}: "A-B" is not an environment variable name`},
		{name: "empty hostname", id: "{hostname}", host: Host{Hostname: func() (string, error) { return "", nil }},
			err: `t.toml:2: client_id: "{hostname}": {hostname} expands to nothing`},
		{name: "hostname error", id: "{hostname}", host: Host{Hostname: func() (string, error) { return "", errors.New("uts gone") }},
			err: `t.toml:2: client_id: "{hostname}": {hostname}: uts gone`},
		{name: "empty machine-id", id: "{machine_id}", host: Host{MachineIDFile: empty},
			err: `t.toml:2: client_id: "{machine_id}": {machine_id}: ` + empty + ` is empty (systemd-machine-id-setup fills it)`},
		{name: "missing machine-id", id: "{machine_id}", host: Host{MachineIDFile: filepath.Join(dir, "nope")},
			err: `t.toml:2: client_id: "{machine_id}": {machine_id}: open ` + filepath.Join(dir, "nope") + `: no such file or directory (systemd-machine-id-setup creates it)`},
		// The provider's limits apply to the expanded id, not the template.
		{name: "aws length", id: "{env:LONG}-{machine_id}", provider: "aws-iot",
			err: `t.toml:2: client_id: 153 bytes; AWS IoT allows at most 128`},
		{name: "aws dollar", id: "${hostname}", provider: "aws-iot",
			err: `t.toml:2: client_id: must not start with '$' for AWS IoT (reserved)`},
		{name: "aws fits", id: "{env:SITE}-{machine_id}", provider: "aws-iot", want: "plant-7-0123456789abcdef0123456789abcdef"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			broker := "[broker]\nurl = \"ws://broker.example/mqtt\"\n"
			if tt.provider == "aws-iot" {
				broker = "[broker]\nprovider = \"aws-iot\"\nurl = \"wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt\"\n"
			}
			h := host
			if tt.host.Hostname != nil {
				h.Hostname = tt.host.Hostname
			}
			if tt.host.MachineIDFile != "" {
				h.MachineIDFile = tt.host.MachineIDFile
			}
			doc := "# fleet config\nclient_id = \"" + tt.id + "\"\nstate_dir = \"/tmp/x\"\n" + broker
			cfg, err := h.Parse([]byte(doc), "t.toml")
			if tt.err != "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Error() != tt.err {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ClientID != tt.want {
				t.Fatalf("client_id %q, want %q", cfg.ClientID, tt.want)
			}
		})
	}
	// Load expands too (the file is read from disk).
	p := filepath.Join(dir, "agent.toml")
	os.WriteFile(p, []byte("client_id = \"gw-{machine_id}\"\nstate_dir = \"/tmp/x\"\n[broker]\nurl = \"ws://b/mqtt\"\n"), 0o600)
	cfg, err := host.Load(p)
	if err != nil || cfg.ClientID != "gw-0123456789abcdef0123456789abcdef" {
		t.Fatalf("Load: %v %+v", err, cfg)
	}
}

func TestMetricsListen(t *testing.T) {
	base := "client_id = \"gw\"\nstate_dir = \"/tmp/x\"\n[broker]\nurl = \"ws://b/mqtt\"\n"
	cfg, err := Parse([]byte(base), "t.toml")
	if err != nil || cfg.Metrics.Listen != "" {
		t.Fatalf("default: %v %q", err, cfg.Metrics.Listen)
	}
	for _, ok := range []string{"127.0.0.1:9464", ":9464", "[::1]:9464", "0.0.0.0:0", "gateway.local:9464"} {
		if _, err := Parse([]byte(base+"[metrics]\nlisten = \""+ok+"\"\n"), "t.toml"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"9464", "127.0.0.1:http", "127.0.0.1:70000", "a b:1"} {
		_, err := Parse([]byte(base+"[metrics]\nlisten = \""+bad+"\"\n"), "t.toml")
		if err == nil || !strings.HasPrefix(err.Error(), "t.toml:6: metrics.listen: ") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

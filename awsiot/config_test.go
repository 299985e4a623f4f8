package awsiot

import (
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/config"
)

// FromConfig builds a Provider only for provider aws-iot, from the keys New needs.
func TestFromConfig(t *testing.T) {
	parse := func(broker string) *config.Config {
		t.Helper()
		c, err := config.Parse([]byte("client_id = 'x'\nstate_dir = '"+t.TempDir()+"'\n[broker]\n"+broker+
			"[cognito]\nidentity_pool_id = 'eu-west-1:00000000-0000-0000-0000-000000000000'\n"), "test.toml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cfg := parse("provider = 'mqtt'\nurl = 'ws://h/mqtt'\n")
	p, err := FromConfig(cfg, &cfg.Brokers[0], nil, nil)
	if p != nil || err != nil {
		t.Fatalf("mqtt: %v, %v; want no provider", p, err)
	}
	cfg = parse("provider = 'aws-iot'\nurl = 'wss://a1-ats.iot.ap-southeast-2.amazonaws.com/mqtt'\n")
	p, err = FromConfig(cfg, &cfg.Brokers[0], nil, nil)
	if err != nil || p == nil || p.Region() != "ap-southeast-2" || p.Status().CredentialSource != "cognito" {
		t.Fatalf("aws-iot: %v, %v", p, err)
	}
	b := cfg.Brokers[0]
	b.Cognito.IdentityPoolID = "not-a-pool"
	if _, err := FromConfig(cfg, &b, nil, nil); err == nil || !strings.Contains(err.Error(), "cognito.identity_pool_id") {
		t.Fatalf("bad pool: %v", err)
	}
}

// The broker named default keeps the identity file of the single-broker release; others get their own.
func TestIdentityFileFor(t *testing.T) {
	for name, want := range map[string]string{
		config.DefaultBrokerName: IdentityFileName,
		"":                       IdentityFileName,
		"aws":                    IdentityFileName + "-aws",
	} {
		if got := IdentityFileFor(name); got != want {
			t.Errorf("IdentityFileFor(%q) = %q, want %q", name, got, want)
		}
	}
}

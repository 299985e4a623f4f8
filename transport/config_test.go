package transport

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{URL: "ws://127.0.0.1:1/mqtt", ClientID: "c"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"http scheme", func(c *Config) { c.URL = "http://127.0.0.1/mqtt" }, "scheme"},
		{"mqtt scheme", func(c *Config) { c.URL = "mqtt://127.0.0.1:1883" }, "scheme"},
		{"no url", func(c *Config) { c.URL = "" }, "URL is empty"},
		{"no host", func(c *Config) { c.URL = "ws:///mqtt" }, "no host"},
		{"unparseable keeps secrets out", func(c *Config) { c.URL = "ws://u:topsecret@[::1/mqtt?sig=x" }, "does not parse"},
		{"empty client id", func(c *Config) { c.ClientID = "" }, "ClientID"},
		{"keepalive too short", func(c *Config) { c.Keepalive = 500 * time.Millisecond }, "Keepalive"},
		{"max inflight negative", func(c *Config) { c.MaxInflight = -1 }, "MaxInflight"},
		{"max inflight too big", func(c *Config) { c.MaxInflight = 70000 }, "MaxInflight"},
		{"insecure tls", func(c *Config) { c.TLS = &tls.Config{InsecureSkipVerify: true} }, "InsecureSkipVerify"},
		{"bad subscription", func(c *Config) { c.Subscriptions = []Subscription{{Filter: "a/#/b"}} }, "Subscriptions"},
		{"subscription qos", func(c *Config) { c.Subscriptions = []Subscription{{Filter: "a", QoS: 3}} }, "QoS"},
		{"max packet size too small", func(c *Config) { c.MaxPacketSize = 255 }, "MaxPacketSize 255"},
		{"max packet size over MQTT", func(c *Config) { c.MaxPacketSize = 268435461 }, "MaxPacketSize"},
		{"poison after negative", func(c *Config) { c.PoisonAfter = -1 }, "PoisonAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mod(&cfg)
			_, err := New(cfg, newFakeSource())
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want ErrConfig mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("error leaks URL secrets: %v", err)
			}
		})
	}
	if _, err := New(good, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil source: %v", err)
	}
	c, err := New(good, newFakeSource())
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Keepalive != 60*time.Second || c.cfg.MaxInflight != 64 || c.cfg.StableAfter != 30*time.Second ||
		c.cfg.MaxPacketSize != 139264 || c.cfg.PoisonAfter != 0 {
		t.Fatalf("defaults not applied: %+v", c.cfg)
	}
	if st := c.Status(); st.State != StateStopped || st.URL != "ws://127.0.0.1:1/mqtt" {
		t.Fatalf("initial status %+v", st)
	}
}

func TestFullJitterBounds(t *testing.T) {
	base, cap := time.Second, 2*time.Minute
	f := FullJitter(base, cap)
	for attempt := -1; attempt < 80; attempt++ {
		ceil := cap
		if attempt < 7 {
			ceil = base << max(attempt, 0)
		}
		var top time.Duration
		for range 500 {
			d := f(attempt)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: %s outside [0, %s]", attempt, d, ceil)
			}
			top = max(top, d)
		}
		// 500 uniform samples: the largest is below half the ceiling with probability 2^-500.
		if top < ceil/2 {
			t.Fatalf("attempt %d: largest of 500 samples %s, not spread over [0, %s]", attempt, top, ceil)
		}
	}
	if FullJitter(0, time.Second)(3) != 0 || FullJitter(time.Second, 0)(3) != 0 {
		t.Fatal("non-positive base or cap should give 0")
	}
}

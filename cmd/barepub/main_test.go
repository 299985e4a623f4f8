package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A real Mosquitto (Receive Maximum 20, its default) gets every message once, with the bench's
// payload format, and barepub reports the window it used.
func TestPublishesAllWithBrokerWindow(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "bench/bare")
	var out bytes.Buffer
	if err := run([]string{"-url", b.WSURL(), "-n", "500", "-topic", "bench/bare", "-size", "200", "-tag", "t",
		"-timeout", "60s"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), " window=20 receive_maximum=20") {
		t.Errorf("output %q: want window=20 receive_maximum=20 (Mosquitto's default)", out.String())
	}
	msgs, err := sub.WaitDistinct(500, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("t-%08d-", 1)
	found := false
	for _, m := range msgs {
		if len(m.Payload) != 200 {
			t.Fatalf("payload of %d bytes, want 200", len(m.Payload))
		}
		found = found || bytes.HasPrefix(m.Payload, []byte(want))
	}
	if !found {
		t.Errorf("no payload starting %q", want)
	}
}

func TestRefusesBadArguments(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-n", "0"}, &out); err == nil {
		t.Error("run with no -url and -n 0: want an error")
	}
	if err := run([]string{"-url", "ws://127.0.0.1:1/mqtt", "-size", "4"}, &out); err == nil || !strings.Contains(err.Error(), "-size 4") {
		t.Errorf("run -size 4: %v, want an error naming -size", err)
	}
}

package aedes

import (
	"bytes"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mqttprobe"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

func TestMain(m *testing.M) { testproc.VerifyTestMain(m) }

// Aedes speaks 3.1.1 and 3.1 and refuses MQTT 5 with a 3.1.1-style CONNACK,
// return code 1 (unacceptable protocol version), over both listeners.
func TestProtocolVersions(t *testing.T) {
	b := Start(t)
	for _, tc := range []struct {
		level       mqttprobe.Level
		subprotocol string
		want        []byte
	}{
		{mqttprobe.V311, "mqtt", []byte{0x20, 0x02, 0x00, 0x00}},
		{mqttprobe.V31, "mqttv3.1", []byte{0x20, 0x02, 0x00, 0x00}},
		{mqttprobe.V5, "mqtt", []byte{0x20, 0x02, 0x00, 0x01}},
	} {
		ws, err := mqttprobe.WS(b.WSURL(), tc.subprotocol, tc.level, 5*time.Second)
		if err != nil {
			t.Fatalf("%v over WebSocket: %v", tc.level, err)
		}
		tcp, err := mqttprobe.TCP(b.TCPAddr(), tc.level, 5*time.Second)
		if err != nil {
			t.Fatalf("%v over TCP: %v", tc.level, err)
		}
		for name, a := range map[string]mqttprobe.Answer{"WebSocket": ws, "TCP": tcp} {
			t.Logf("%v CONNECT over %s: %v", tc.level, name, a)
			if tc.level == mqttprobe.V5 && a.Then == nil { // TCP: EOF; WebSocket: close 1006, no close frame
				t.Errorf("MQTT 5 over %s: after the refusing CONNACK: %v, want the connection closed", name, a.Then)
			}
			if !bytes.Equal(a.Packet, tc.want) {
				t.Errorf("%v CONNECT over %s: answer %v, want packet % x", tc.level, name, a, tc.want)
			}
		}
		if got := ws.Upgrade.Header.Get("Sec-WebSocket-Protocol"); got != tc.subprotocol {
			t.Errorf("%v: subprotocol %q chosen, want %q", tc.level, got, tc.subprotocol)
		}
	}
}

// Stop, Kill and Restart: the same ports answer again after a restart, nothing
// answers in between.
func TestStopKillRestart(t *testing.T) {
	b := Start(t)
	url, addr := b.WSURL(), b.TCPAddr()
	b.Kill()
	if b.Running() {
		t.Fatal("running after Kill")
	}
	if _, err := mqttprobe.TCP(addr, mqttprobe.V311, time.Second); err == nil {
		t.Fatal("TCP listener still answers after Kill")
	}
	b.Restart(t)
	if b.WSURL() != url || b.TCPAddr() != addr {
		t.Fatalf("restart moved the broker: %s %s, was %s %s", b.WSURL(), b.TCPAddr(), url, addr)
	}
	a, err := mqttprobe.TCP(addr, mqttprobe.V311, 5*time.Second)
	if code, ok := a.Connack(); err != nil || !ok || code != 0 {
		t.Fatalf("after Restart: %v %v", a, err)
	}
	b.Restart(t) // from running: Stop (SIGTERM) first
	b.Stop()
	if b.Running() {
		t.Fatal("running after Stop")
	}
}

package rabbitmq

import (
	"bytes"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/mqttprobe"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

func TestMain(m *testing.M) { testproc.VerifyTestMain(m, CloseShared) }

// RabbitMQ 3.10 speaks 3.1.1 and 3.1. To an MQTT 5 CONNECT it answers nothing:
// over TCP it closes the connection; over WebSocket it closes with status 1011
// (what the agent logs as "websocket: close 1011").
func TestProtocolVersions(t *testing.T) {
	b := Shared(t)
	accepted := []byte{0x20, 0x02, 0x00, 0x00}
	for _, tc := range []struct {
		level       mqttprobe.Level
		subprotocol string
	}{
		{mqttprobe.V311, "mqtt"},
		{mqttprobe.V31, "mqttv3.1"},
	} {
		ws, err := mqttprobe.WS(b.WSURL(), tc.subprotocol, tc.level, 10*time.Second)
		if err != nil {
			t.Fatalf("%v over WebSocket: %v", tc.level, err)
		}
		tcp, err := mqttprobe.TCP(b.TCPAddr(), tc.level, 10*time.Second)
		if err != nil {
			t.Fatalf("%v over TCP: %v", tc.level, err)
		}
		for name, a := range map[string]mqttprobe.Answer{"WebSocket": ws, "TCP": tcp} {
			t.Logf("%v CONNECT over %s: %v", tc.level, name, a)
			if !bytes.Equal(a.Packet, accepted) {
				t.Errorf("%v CONNECT over %s: %v, want packet % x", tc.level, name, a, accepted)
			}
		}
		if got := ws.Upgrade.Header.Get("Sec-WebSocket-Protocol"); got != tc.subprotocol {
			t.Errorf("%v: subprotocol %q chosen, want %q", tc.level, got, tc.subprotocol)
		}
	}

	ws, err := mqttprobe.WS(b.WSURL(), "mqtt", mqttprobe.V5, 10*time.Second)
	if err != nil {
		t.Fatalf("MQTT 5 over WebSocket: %v", err)
	}
	t.Logf("MQTT 5 CONNECT over WebSocket: %v", ws)
	if len(ws.Packet) != 0 || !websocket.IsCloseError(ws.Err, websocket.CloseInternalServerErr) {
		t.Errorf("MQTT 5 CONNECT over WebSocket: %v, want no packet and close 1011", ws)
	}
	tcp, err := mqttprobe.TCP(b.TCPAddr(), mqttprobe.V5, 10*time.Second)
	if err != nil {
		t.Fatalf("MQTT 5 over TCP: %v", err)
	}
	t.Logf("MQTT 5 CONNECT over TCP: %v", tcp)
	if len(tcp.Packet) != 0 || tcp.Err == nil {
		t.Errorf("MQTT 5 CONNECT over TCP: %v, want the connection closed without a packet", tcp)
	}
}

// Kill (kill -9) and Restart on the same ports; then Stop and Restart again. The
// shared broker is left running.
func TestKillRestart(t *testing.T) {
	b := Shared(t)
	url, addr := b.WSURL(), b.TCPAddr()
	b.Kill()
	if b.Running() {
		t.Fatal("running after Kill")
	}
	if _, err := mqttprobe.TCP(addr, mqttprobe.V311, time.Second); err == nil {
		t.Fatal("MQTT listener still answers after Kill")
	}
	b.Restart(t)
	if b.WSURL() != url || b.TCPAddr() != addr {
		t.Fatalf("restart moved the broker: %s %s, was %s %s", b.WSURL(), b.TCPAddr(), url, addr)
	}
	a, err := mqttprobe.TCP(addr, mqttprobe.V311, 10*time.Second)
	if code, ok := a.Connack(); err != nil || !ok || code != 0 {
		t.Fatalf("after Restart: %v %v", a, err)
	}
	b.Stop()
	if b.Running() {
		t.Fatal("running after Stop")
	}
	b.Restart(t)
}

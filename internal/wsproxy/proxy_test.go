package wsproxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/mqttprobe"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

func TestMain(m *testing.M) { testproc.VerifyTestMain(m) }

// Only mqttv3.1 gets through: "mqtt" and no subprotocol get 400; an MQTT 3.1
// CONNECT through mqttv3.1 reaches Mosquitto and its CONNACK comes back.
func TestDemandsMQTTv31(t *testing.T) {
	m := mosquitto.Start(t)
	p := Start(t, m.TCPAddr())

	for _, offer := range []string{"mqtt", ""} {
		a, err := mqttprobe.WS(p.URL(), offer, mqttprobe.V311, 5*time.Second)
		if err != nil {
			t.Fatalf("offer %q: %v", offer, err)
		}
		t.Logf("offer %q: HTTP %d %q", offer, a.Upgrade.StatusCode, strings.TrimSpace(string(a.UpgradeBody)))
		if !errors.Is(a.Err, websocket.ErrBadHandshake) || a.Upgrade.StatusCode != http.StatusBadRequest {
			t.Errorf("offer %q: %v (HTTP %d), want a refused upgrade with 400", offer, a, a.Upgrade.StatusCode)
		}
	}
	if got := p.Refused(); got != 2 {
		t.Errorf("Refused() = %d, want 2", got)
	}

	a, err := mqttprobe.WS(p.URL(), "mqttv3.1", mqttprobe.V31, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := a.Connack(); !ok || code != 0 {
		t.Fatalf("MQTT 3.1 through mqttv3.1: %v, want CONNACK 0", a)
	}
	if got := a.Upgrade.Header.Get("Sec-WebSocket-Protocol"); got != "mqttv3.1" {
		t.Errorf("subprotocol %q chosen, want mqttv3.1", got)
	}
	if got := p.Connects(); len(got) != 1 || got[0] != (Connect{"MQIsdp", 3}) {
		t.Errorf("Connects() = %+v, want one MQIsdp level 3", got)
	}
}

// Closing the proxy ends a relayed connection that is still open.
func TestCloseEndsConnections(t *testing.T) {
	m := mosquitto.Start(t)
	p := Start(t, m.TCPAddr())
	ws, _, err := websocket.DefaultDialer.Dial(p.URL(), http.Header{"Sec-WebSocket-Protocol": {"mqttv3.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.BinaryMessage, mqttprobe.ConnectPacket(mqttprobe.V31, "held")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil { // the CONNACK
		t.Fatal(err)
	}
	p.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("connection still open after Close")
	}
}

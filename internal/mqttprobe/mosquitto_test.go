package mqttprobe

import (
	"bytes"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

func TestMain(m *testing.M) { testproc.VerifyTestMain(m) }

// Mosquitto speaks all three versions: each CONNECT gets CONNACK 0, over TCP and
// over WebSocket (MQTT 5's CONNACK carries properties, so only its first four
// bytes are fixed).
func TestMosquittoAcceptsAll(t *testing.T) {
	b := mosquitto.Start(t)
	for _, level := range []Level{V31, V311, V5} {
		ws, err := WS(b.WSURL(), "mqtt", level, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := TCP(b.TCPAddr(), level, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for name, a := range map[string]Answer{"WebSocket": ws, "TCP": tcp} {
			t.Logf("%v over %s: %v", level, name, a)
			if a.Err != nil || !bytes.HasPrefix(a.Packet, []byte{0x20}) || a.Packet[3] != 0 {
				t.Errorf("%v over %s: %v, want CONNACK 0", level, name, a)
			}
		}
	}
}

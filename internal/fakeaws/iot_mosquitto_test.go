package fakeaws

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/sigv4"
)

// TestIoTRelaysToRealBroker: an MQTT 5 CONNECT sent through the fake reaches
// a real Mosquitto over its plain TCP listener and its CONNACK comes back.
func TestIoTRelaysToRealBroker(t *testing.T) {
	b := mosquitto.Start(t)
	f := NewIoT(t, IoTOptions{Upstream: b.TCPAddr()})
	f.AllowCredentials(testAKID, testSecret, testToken, f.Now().Add(time.Hour))
	u := presign(t, f.URL(), f.Region(), sigv4.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret, SessionToken: testToken}, time.Now())
	ws, _, err := dialIoT(t, f, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, connectV5); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("no CONNACK: %v\nbroker log:\n%s", err, b.LogTail())
	}
	// CONNACK [MQTT-3.2]: type 2, then remaining length, flags, reason code 0 (Success).
	if len(data) < 4 || data[0] != 0x20 || data[3] != 0x00 {
		t.Fatalf("got % x, want a successful MQTT 5 CONNACK", data)
	}
	if a := lastAttempt(t, f); !a.Accepted || a.ClientID != "dev-1" {
		t.Fatalf("attempt %+v", a)
	}
}

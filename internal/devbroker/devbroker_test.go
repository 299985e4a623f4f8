package devbroker

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connectPacket is an MQTT 5 CONNECT for client id "t", clean start, keepalive 30s.
var connectPacket = []byte{0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x1e, 0x00, 0x00, 0x01, 't'}

func TestWebSocketAndTCP(t *testing.T) {
	b, err := Start(Options{TCPAddr: "127.0.0.1:0", LogPublishes: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.URL(), "ws://127.0.0.1:") || !strings.HasSuffix(b.URL(), "/mqtt") || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("URL %s Addr %s", b.URL(), b.Addr())
	}

	// WebSocket: subprotocol mqtt, CONNECT → CONNACK success.
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.DialContext(context.Background(), b.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, connectPacket); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) < 4 || msg[0] != 0x20 || msg[3] != 0x00 {
		t.Fatalf("want CONNACK success, got % x", msg)
	}

	// Other paths are not served.
	r, err := http.Get("http://" + b.Addr() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("/other: %d", r.StatusCode)
	}

	// Plain TCP.
	c, err := net.DialTimeout("tcp", b.TCPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(connectPacket); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || n < 4 || !bytes.Equal(buf[:1], []byte{0x20}) || buf[3] != 0 {
		t.Fatalf("tcp CONNACK: % x %v", buf[:n], err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Start(Options{WSAddr: ln.Addr().String()}); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Start on a busy port: %v", err)
	}
}

package mosquitto

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/mqttwire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wsPublish connects with MQTT 5 over WebSocket, publishes one QoS 0 message and
// disconnects cleanly. Hand-written packets keep this package free of MQTT clients.
func wsPublish(t *testing.T, url string, tlsCfg *tls.Config, topic string, payload []byte) error {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: tlsCfg, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(url, http.Header{})
	if err != nil {
		return fmt.Errorf("dial %s: %w", url, err)
	}
	defer conn.Close()
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		return fmt.Errorf("subprotocol %q, want mqtt", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	connect := append(mqttwire.String("MQTT"), 5, 0x02, 0, 30, 0) // v5, clean start, keepalive 30s, no properties
	connect = append(connect, mqttwire.String("ws-test-"+randomHex(4))...)
	if err := conn.WriteMessage(websocket.BinaryMessage, mqttwire.Packet(0x10, connect)); err != nil {
		return err
	}
	_, connack, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if len(connack) < 4 || connack[0] != 0x20 || connack[3] != 0 {
		return fmt.Errorf("bad CONNACK % x", connack)
	}
	pub := append(mqttwire.String(topic), 0) // no properties
	pub = append(pub, payload...)
	if err := conn.WriteMessage(websocket.BinaryMessage, mqttwire.Packet(0x30, pub)); err != nil {
		return err
	}
	return conn.WriteMessage(websocket.BinaryMessage, []byte{0xe0, 0x01, 0x00}) // DISCONNECT, normal
}

func TestWebSocketToSubscriberBinarySafe(t *testing.T) {
	b := Start(t)
	sub := Subscribe(t, b.TCPAddr(), "t/#")
	cases := []struct {
		topic   string
		payload []byte
	}{
		{"t/a", []byte("hello")},
		{"t/with space/ünïcödé", []byte("two words\nand a newline\x00nul \xff\xfe")},
		{"t/empty", nil},
		{"t/big", bytes.Repeat([]byte{0, 1, 2, 0xff, ' ', '\n'}, 20000)},
	}
	for _, c := range cases {
		if err := wsPublish(t, b.WSURL(), nil, c.topic, c.payload); err != nil {
			t.Fatalf("publish %q: %v\n%s", c.topic, err, b.LogTail())
		}
	}
	Publish(t, b.TCPAddr(), "other/topic", []byte("not matched"), 1, false)
	Publish(t, b.TCPAddr(), "t/last", []byte("via mosquitto_pub"), 1, false)
	msgs, err := sub.WaitCount(len(cases)+1, 10*time.Second)
	if err != nil {
		for _, m := range msgs {
			t.Logf("got %q (%d bytes)", m.Topic, len(m.Payload))
		}
		t.Fatalf("%v\n%s", err, b.LogTail())
	}
	if len(msgs) != len(cases)+1 {
		t.Fatalf("got %d messages, want %d: %+v", len(msgs), len(cases)+1, msgs)
	}
	for i, c := range cases {
		if msgs[i].Topic != c.topic || !bytes.Equal(msgs[i].Payload, c.payload) || msgs[i].QoS != 0 {
			t.Errorf("message %d = %q %x (qos %d), want %q %x (qos 0)", i, msgs[i].Topic, msgs[i].Payload, msgs[i].QoS, c.topic, c.payload)
		}
	}
	if last := msgs[len(cases)]; last.Topic != "t/last" || string(last.Payload) != "via mosquitto_pub" || last.QoS != 1 {
		t.Errorf("last message = %+v", last)
	}
}

func TestRetainedFlag(t *testing.T) {
	b := Start(t)
	Publish(t, b.TCPAddr(), "r/x", []byte("kept"), 1, true)
	sub := Subscribe(t, b.TCPAddr(), "r/#")
	msgs, err := sub.WaitCount(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !msgs[0].Retain || string(msgs[0].Payload) != "kept" {
		t.Fatalf("got %+v, want retained %q", msgs[0], "kept")
	}
}

func TestTLSWebSocket(t *testing.T) {
	b := Start(t, WithTLS())
	if !strings.HasPrefix(b.WSSURL(), "wss://127.0.0.1:") {
		t.Fatalf("WSSURL = %q", b.WSSURL())
	}
	file, err := os.ReadFile(b.CAFile())
	if err != nil || !bytes.Equal(file, b.CAPEM()) {
		t.Fatalf("CAFile %s does not hold CAPEM (err %v)", b.CAFile(), err)
	}
	sub := Subscribe(t, b.TCPAddr(), "secure")

	// Without the CA the handshake must fail: proves it really is TLS with our cert.
	if err := wsPublish(t, b.WSSURL(), &tls.Config{RootCAs: x509.NewCertPool()}, "secure", []byte("x")); err == nil {
		t.Fatal("wss handshake succeeded without trusting the test CA")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CAPEM()) {
		t.Fatal("CAPEM is not a PEM certificate")
	}
	if err := wsPublish(t, b.WSSURL(), &tls.Config{RootCAs: pool}, "secure", []byte("over tls")); err != nil {
		t.Fatalf("wss publish: %v\n%s", err, b.LogTail())
	}
	msgs, err := sub.WaitCount(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(msgs[0].Payload) != "over tls" {
		t.Fatalf("got %q", msgs[0].Payload)
	}
	if (&Broker{}).WSSURL() != "" {
		t.Fatal("WSSURL without TLS must be empty")
	}
}

func TestKillStopRestartKeepPorts(t *testing.T) {
	b := Start(t)
	ws, tcp := b.WSURL(), b.TCPAddr()
	for _, stop := range []struct {
		name string
		fn   func()
	}{{"Kill", b.Kill}, {"Stop", b.Stop}} {
		stop.fn()
		if b.Running() {
			t.Fatalf("%s: still running", stop.name)
		}
		if c, err := net.DialTimeout("tcp", tcp, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s: %s still accepts connections", stop.name, tcp)
		}
		stop.fn() // no-op when stopped
		b.Restart(t)
		if b.WSURL() != ws || b.TCPAddr() != tcp {
			t.Fatalf("%s: ports changed: %s %s -> %s %s", stop.name, ws, tcp, b.WSURL(), b.TCPAddr())
		}
		if err := wsPublish(t, b.WSURL(), nil, "after/restart", []byte("ok")); err != nil {
			t.Fatalf("%s: after Restart: %v\n%s", stop.name, err, b.LogTail())
		}
	}
	b.Restart(t) // restarting a running broker stops it first
	if !b.Running() {
		t.Fatal("not running after Restart")
	}
	if !strings.Contains(b.LogTail(), "running") {
		t.Fatalf("LogTail lacks the broker log:\n%s", b.LogTail())
	}
}

func TestWithListenerConfigIsApplied(t *testing.T) {
	// max_qos is listener-scoped: QoS 1 publishes are then refused.
	b := Start(t, WithListenerConfig("max_qos 0"))
	if err := publish(t, b.TCPAddr(), "cfg/q1", []byte("x"), 1, false); err == nil {
		t.Fatal("QoS 1 publish accepted: WithListenerConfig lines were not applied")
	}
	if err := publish(t, b.TCPAddr(), "cfg/q0", []byte("x"), 0, false); err != nil {
		t.Fatalf("QoS 0 publish: %v", err)
	}
}

func TestWithConfigOverridesDefaults(t *testing.T) {
	b := Start(t, WithConfig("allow_anonymous false"))
	err := wsPublish(t, b.WSURL(), nil, "cfg/x", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "CONNACK") {
		t.Fatalf("anonymous connect = %v, want a refusing CONNACK", err)
	}
	if err := publish(t, b.TCPAddr(), "cfg/x", []byte("x"), 0, false); err == nil {
		t.Fatal("mosquitto_pub connected anonymously: WithConfig lines were not applied")
	}
}

func TestWaitCountTimesOutAndCloseIsIdempotent(t *testing.T) {
	b := Start(t)
	sub := Subscribe(t, b.TCPAddr(), "nothing/here")
	msgs, err := sub.WaitCount(1, 300*time.Millisecond)
	if err == nil || len(msgs) != 0 {
		t.Fatalf("WaitCount = %v, %v; want a timeout error and no messages", msgs, err)
	}
	sub.Close()
	sub.Close()
	if _, err := sub.WaitCount(1, 5*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("WaitCount after Close = %v, want an 'exited' error", err)
	}
}

// fakeTB records Fatalf instead of failing the real test.
type fakeTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestMissingBinaryFailsLoudly(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, name := range []string{"mosquitto", "mosquitto_sub"} {
		f := &fakeTB{TB: t}
		done := make(chan string)
		go func() {
			defer close(done)
			p := lookBinary(f, name, "/nonexistent/"+name)
			done <- p
		}()
		if p, ok := <-done; ok {
			t.Fatalf("lookBinary(%s) returned %q instead of failing", name, p)
		}
		if !strings.Contains(f.msg, "not installed") || !strings.Contains(f.msg, "apt-get install -y mosquitto") ||
			!strings.Contains(f.msg, "scripts/test.sh") {
			t.Fatalf("message %q lacks the install hint", f.msg)
		}
	}
}

func TestParseRecord(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Msg
		ok   bool
	}{
		{"1 0 6869 a/b", Msg{Topic: "a/b", Payload: []byte("hi"), QoS: 1}, true},
		{"0 1  e", Msg{Topic: "e", Payload: []byte{}, QoS: 0, Retain: true}, true},
		{"1 0 00 sp ace", Msg{Topic: "sp ace", Payload: []byte{0}, QoS: 1}, true},
		{"1 0 zz t", Msg{}, false},
		{"3 0 00 t", Msg{}, false},
		{"1 2 00 t", Msg{}, false},
		{"1 0 00", Msg{}, false},
		{"", Msg{}, false},
	} {
		got, ok := parseRecord([]byte(c.in))
		if ok != c.ok || (ok && (got.Topic != c.want.Topic || !bytes.Equal(got.Payload, c.want.Payload) ||
			got.QoS != c.want.QoS || got.Retain != c.want.Retain)) {
			t.Errorf("parseRecord(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("1 0 6869 a/b"), "t", []byte("p"))
	f.Fuzz(func(t *testing.T, raw []byte, topic string, payload []byte) {
		parseRecord(raw) // must not panic
		if topic == "" || strings.ContainsRune(topic, 0) {
			return
		}
		rec := "1 1 " + hex.EncodeToString(payload) + " " + topic
		m, ok := parseRecord([]byte(rec))
		if !ok || m.Topic != topic || !bytes.Equal(m.Payload, payload) || !m.Retain || m.QoS != 1 {
			t.Fatalf("round trip of %q failed: %+v %v", rec, m, ok)
		}
	})
}

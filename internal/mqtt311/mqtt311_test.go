package mqtt311

import (
	"fmt"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/aedes"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/rabbitmq"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

func TestMain(m *testing.M) { testproc.VerifyTestMain(m, rabbitmq.CloseShared) }

type broker struct {
	name         string
	tcpAddr, url string
}

// brokers starts one of each broker this client is checked against.
func brokers(t *testing.T) []broker {
	m := mosquitto.Start(t)
	a := aedes.Start(t)
	r := rabbitmq.Shared(t)
	return []broker{
		{"mosquitto", m.TCPAddr(), m.WSURL()},
		{"aedes", a.TCPAddr(), a.WSURL()},
		{"rabbitmq", r.TCPAddr(), r.WSURL()},
	}
}

// 3.1.1 and 3.1, over TCP and WebSocket: 50 QoS 1 messages arrive in order, at
// QoS 1, with their topics and payloads. (No dots in the topics: RabbitMQ maps
// MQTT's "/" to AMQP's "." and back, so a "." arrives as "/".)
func TestPublishSubscribe(t *testing.T) {
	const n = 50
	for _, b := range brokers(t) {
		for _, tc := range []struct {
			name string
			addr string
			opts []Option
		}{
			{"v311-tcp", b.tcpAddr, nil},
			{"v31-tcp", b.tcpAddr, []Option{V31()}},
			{"v311-ws", b.url, nil},
		} {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				prefix := "mqtt311-test/" + tc.name + "/"
				sub := Subscribe(t, tc.addr, prefix+"#", tc.opts...)
				pub := Connect(t, tc.addr, tc.opts...)
				for i := range n {
					pub.Publish(t, fmt.Sprintf("%s%d", prefix, i%3), []byte(fmt.Sprint(i)), 1)
				}
				msgs := sub.WaitCount(t, n, 30*time.Second)
				if len(msgs) != n {
					t.Fatalf("%d messages, want %d", len(msgs), n)
				}
				for i, m := range msgs {
					if string(m.Payload) != fmt.Sprint(i) || m.Topic != fmt.Sprintf("%s%d", prefix, i%3) || m.QoS != 1 {
						t.Fatalf("message %d: %q on %q at QoS %d", i, m.Payload, m.Topic, m.QoS)
					}
				}
			})
		}
	}
}

// A persistent session (clean session = false): QoS 1 messages published while
// the subscriber is away arrive when it comes back with the same client id.
func TestPersistentSession(t *testing.T) {
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			id := "mqtt311-p-" + b.name
			filter := "mqtt311-test/persistent/" + b.name
			sub := Subscribe(t, b.tcpAddr, filter, ClientID(id), Persistent())
			sub.Close()
			for i := range 5 {
				Publish(t, b.tcpAddr, filter, []byte(fmt.Sprint(i)), 1)
			}
			back := Subscribe(t, b.tcpAddr, filter, ClientID(id), Persistent())
			msgs := back.WaitCount(t, 5, 30*time.Second)
			for i, m := range msgs {
				if string(m.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: %q", i, m.Payload)
				}
			}
		})
	}
}

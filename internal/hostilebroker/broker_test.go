package hostilebroker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/internal/wsstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, opts Options) *Broker {
	t.Helper()
	b, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// client is a raw MQTT-over-WebSocket client: it writes packets and reads the byte stream, so a test
// sees exactly what the broker sent.
type client struct {
	t  *testing.T
	ws *websocket.Conn
	rd *wsstream.Reader
}

func dial(t *testing.T, b *Broker, maxPacket uint32) *client {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.DialContext(context.Background(), b.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	c := &client{t: t, ws: ws, rd: &wsstream.Reader{WS: ws}}
	cp := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "t", CleanStart: true, Properties: &packets.Properties{}}
	if maxPacket > 0 {
		cp.Properties.MaximumPacketSize = &maxPacket
	}
	c.write(packets.CONNECT, cp)
	if ca := c.read(); ca.Type != packets.CONNACK {
		t.Fatalf("got %v, want CONNACK", ca.Type)
	}
	return c
}

func (c *client) write(typ byte, content packets.Packet) {
	c.t.Helper()
	cp := packets.NewControlPacket(typ)
	cp.Content = content
	var buf bytes.Buffer
	if _, err := cp.WriteTo(&buf); err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() *packets.ControlPacket {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	cp, err := packets.ReadPacket(c.rd)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return cp
}

func (c *client) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.write(packets.SUBSCRIBE, &packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: filter, QoS: qos}}, Properties: &packets.Properties{}})
	if sa := c.read(); sa.Type != packets.SUBACK {
		c.t.Fatalf("got %v, want SUBACK", sa.Type)
	}
}

func TestPlainBrokerRecordsAndRoutes(t *testing.T) {
	b := start(t, Options{ReceiveMaximum: 7})
	c := dial(t, b, 4096)
	c.subscribe("a/+", 1)
	c.write(packets.PUBLISH, &packets.Publish{Topic: "a/b", Payload: []byte("hi"), QoS: 1, PacketID: 9, Properties: &packets.Properties{}})
	// The PUBACK and the routed PUBLISH (to ourselves) arrive in either order.
	var gotAck, gotPub bool
	for range 2 {
		switch cp := c.read(); p := cp.Content.(type) {
		case *packets.Puback:
			gotAck = p.PacketID == 9 && p.ReasonCode == 0
		case *packets.Publish:
			gotPub = p.Topic == "a/b" && string(p.Payload) == "hi" && p.QoS == 1
			c.write(packets.PUBACK, &packets.Puback{PacketID: p.PacketID, ReasonCode: 0x10, Properties: &packets.Properties{}})
		}
	}
	if !gotAck || !gotPub {
		t.Fatalf("PUBACK %v, routed PUBLISH %v", gotAck, gotPub)
	}
	if n := b.Publish("a/c", []byte("x"), 0); n != 1 {
		t.Fatalf("Publish reached %d clients", n)
	}
	if p := c.read().Content.(*packets.Publish); p.Topic != "a/c" || p.QoS != 0 {
		t.Fatalf("got %+v", p)
	}
	c.write(packets.PINGREQ, &packets.Pingreq{})
	if cp := c.read(); cp.Type != packets.PINGRESP {
		t.Fatalf("got %v, want PINGRESP", cp.Type)
	}
	if got := b.MaxPacketSizes(); len(got) != 1 || got[0] != 4096 || b.Connects() != 1 {
		t.Fatalf("max packet sizes %v", got)
	}
	if got := b.Received(); len(got) != 1 || got[0].Topic != "a/b" || got[0].QoS != 1 {
		t.Fatalf("received %+v", got)
	}
	testutil.WaitFor(t, 10*time.Second, "the PUBACK to be recorded", func() bool { return len(b.Acks()) == 1 })
	if a := b.Acks()[0]; a.ReasonCode != 0x10 || a.Type != packets.PUBACK {
		t.Fatalf("ack %+v", a)
	}
}

func TestHangUpModes(t *testing.T) {
	for _, mode := range []string{HangUpDisconnect, HangUpClose, HangUpTCP} {
		t.Run(mode, func(t *testing.T) {
			b := start(t, Options{HangUpWith: mode, HangUpOn: func(topic string, _ []byte) bool { return topic == "poison" }})
			c := dial(t, b, 0)
			c.write(packets.PUBLISH, &packets.Publish{Topic: "poison", Payload: []byte("p"), QoS: 1, PacketID: 1, Properties: &packets.Properties{}})
			_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			cp, err := packets.ReadPacket(c.rd)
			var ce *websocket.CloseError
			switch mode {
			case HangUpDisconnect:
				if err != nil || cp.Type != packets.DISCONNECT || cp.Content.(*packets.Disconnect).ReasonCode != 0x81 {
					t.Fatalf("got %v, %v; want DISCONNECT 0x81", cp, err)
				}
				_, err = packets.ReadPacket(c.rd)
				if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
					t.Fatalf("after DISCONNECT: %v, want the end of the stream", err)
				}
			case HangUpClose:
				if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
					t.Fatalf("got %v, want a close frame", err)
				}
			case HangUpTCP:
				if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
					t.Fatalf("got %v, want the end of the stream (1006)", err)
				}
			}
			if b.HangUps() != 1 || len(b.Received()) != 1 {
				t.Fatalf("hang-ups %d, received %d", b.HangUps(), len(b.Received()))
			}
		})
	}
}

func TestHugeHeaderAfterSubscribe(t *testing.T) {
	b := start(t, Options{HugeHeaderAfterSubscribe: true, HugeHeaderConnections: 1})
	c := dial(t, b, 0)
	c.subscribe("t", 0)
	hdr := make([]byte, 5)
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.rd, hdr); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x30, 0xff, 0xff, 0xff, 0x7f}; !bytes.Equal(hdr, want) {
		t.Fatalf("header % x, want % x", hdr, want)
	}
	// Nothing follows, not even a PINGRESP.
	c.write(packets.PINGREQ, &packets.Pingreq{})
	_ = c.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.rd.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes after the huge header, want none", n)
	}
	// The second connection is a normal one.
	c2 := dial(t, b, 0)
	c2.subscribe("t", 0)
	c2.write(packets.PINGREQ, &packets.Pingreq{})
	if cp := c2.read(); cp.Type != packets.PINGRESP {
		t.Fatalf("got %v, want PINGRESP", cp.Type)
	}
}

func TestRetainedStreamed(t *testing.T) {
	const size = 3 << 20
	b := start(t, Options{RetainedSize: size, RetainedQoS: 1})
	c := dial(t, b, 0)
	c.subscribe("big/#", 1)
	p := c.read().Content.(*packets.Publish)
	if p.Topic != "big/retained" || !p.Retain || p.QoS != 1 || len(p.Payload) != size || p.Payload[size-1] != 'x' {
		t.Fatalf("got topic %q retain %v qos %d, %d bytes", p.Topic, p.Retain, p.QoS, len(p.Payload))
	}
}

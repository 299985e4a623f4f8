package transport

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mq "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"
)

// countingNext is a Source whose Next counts its calls and returns one message of size bytes each time.
type countingNext struct {
	*fakeSource
	calls atomic.Int64
	size  int
}

func (s *countingNext) Next(ctx context.Context, after uint64, max int) ([]Message, error) {
	s.calls.Add(1)
	return []Message{{Seq: after + 1, Topic: "t", Payload: bytes.Repeat([]byte("x"), s.size), QoS: 1}}, nil
}

// The reader reads ahead of the sender only while the batches handed over and not yet sent hold at
// most readAheadBytes: a backlog of large messages is never read into memory faster than it is sent.
func TestReadAheadIsBoundedByBytes(t *testing.T) {
	src := &countingNext{fakeSource: newFakeSource(), size: readAheadBytes*3/5 - 1}
	c, err := New(Config{URL: "ws://127.0.0.1:1/mqtt", ClientID: "ra"}, src)
	if err != nil {
		t.Fatal(err)
	}
	ra := &readAhead{batches: make(chan readResult), sent: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.read(ctx, 32, ra)
	}()
	defer func() {
		cancel()
		<-done
	}()
	take := func() readResult {
		t.Helper()
		select {
		case r := <-ra.batches:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no batch from the reader")
			return readResult{}
		}
	}
	waitCalls := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for src.calls.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("Next called %d times, want %d", src.calls.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first := take() // 0.6 MiB handed over: under the bound, so the reader reads the next one
	if first.msgs[0].Seq != 1 || first.bytes != int64(1+src.size) {
		t.Fatalf("first batch: seq %d, %d bytes", first.msgs[0].Seq, first.bytes)
	}
	second := take() // 1.2 MiB handed over and not sent: the reader must wait
	if second.msgs[0].Seq != 2 {
		t.Fatalf("second batch starts at seq %d, want 2", second.msgs[0].Seq)
	}
	time.Sleep(50 * time.Millisecond) // a reader that ignored the bound would call Next a third time now
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("Next called %d times with %d bytes not yet sent, want 2", n, ra.pending.Load())
	}
	ra.done(first.bytes) // the first batch is sent: 0.6 MiB pending, the reader goes on
	waitCalls(3)
	if third := take(); third.msgs[0].Seq != 3 {
		t.Fatalf("third batch starts at seq %d, want 3", third.msgs[0].Seq)
	}
}

// Between cork and flush, whole packets are held and leave as ONE WebSocket message, in order; a run
// that reaches corkBytes goes out without waiting for flush; without a cork each packet is its own
// message. The receiver reads the MQTT stream across message boundaries [MQTT-6.0.0-2].
func TestWSConnCorkCoalesces(t *testing.T) {
	c, s := wsPair(t)
	pub := func(id uint16, size int) []byte {
		p := packets.NewControlPacket(packets.PUBLISH)
		pp := p.Content.(*packets.Publish)
		pp.Topic, pp.QoS, pp.PacketID, pp.Payload = "t", 1, id, bytes.Repeat([]byte{byte(id)}, size)
		var b bytes.Buffer
		if _, err := p.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	write := func(pkt []byte) {
		c.Lock()
		defer c.Unlock()
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	next := func() []byte {
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, msg, err := s.ReadMessage()
		if err != nil || typ != websocket.BinaryMessage {
			t.Fatalf("server read: type %d, %v", typ, err)
		}
		return msg
	}

	c.cork()
	var want []byte
	for id := uint16(1); id <= 3; id++ {
		p := pub(id, 100)
		write(p)
		want = append(want, p...)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if got := next(); !bytes.Equal(got, want) {
		t.Fatalf("corked run: got a %d-byte message, want the 3 packets in order in one %d-byte message", len(got), len(want))
	}

	c.cork() // a run over corkBytes is sent at once, the rest waits for flush
	big := pub(4, corkBytes)
	write(big)
	if got := next(); !bytes.Equal(got, big) {
		t.Fatalf("a packet over corkBytes: got %d bytes, want %d", len(got), len(big))
	}
	small := pub(5, 10)
	write(small)
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if got := next(); !bytes.Equal(got, small) {
		t.Fatalf("after the large packet: got %d bytes, want the small packet (%d)", len(got), len(small))
	}

	for id := uint16(6); id <= 7; id++ { // not corked: one message per packet
		p := pub(id, 10)
		write(p)
		if got := next(); !bytes.Equal(got, p) {
			t.Fatalf("uncorked packet %d: got %d bytes, want %d", id, len(got), len(p))
		}
	}
}

// The sender's own PUBLISH encoding is byte for byte what paho's packets.Publish.WriteTo writes, for
// QoS 0 and 1, retain, Message Expiry, and Remaining Lengths of one to three bytes.
func TestAppendPublishMatchesPaho(t *testing.T) {
	for _, tc := range []struct {
		m      Message
		id     uint16
		expiry uint32
	}{
		{m: Message{Topic: "a", QoS: 0}},
		{m: Message{Topic: "a/b/c", QoS: 1, Payload: make([]byte, 200)}, id: 1},
		{m: Message{Topic: "r", QoS: 1, Retain: true, Payload: []byte("x")}, id: 0xfffe},
		{m: Message{Topic: "e", QoS: 1, Payload: make([]byte, 100)}, id: 7, expiry: 30},
		{m: Message{Topic: "big", QoS: 1, Payload: bytes.Repeat([]byte{9}, 20000)}, id: 300, expiry: 1 << 31},
		{m: Message{Topic: "q0", QoS: 0, Retain: true, Payload: make([]byte, 127-2-2-1)}}, // remaining length 127
	} {
		pp := &packets.Publish{Topic: tc.m.Topic, QoS: tc.m.QoS, Retain: tc.m.Retain, PacketID: tc.id,
			Payload: tc.m.Payload, Properties: &packets.Properties{}}
		if tc.expiry > 0 {
			pp.Properties.MessageExpiry = &tc.expiry
		}
		var want bytes.Buffer
		if _, err := pp.WriteTo(&want); err != nil {
			t.Fatal(err)
		}
		got := appendPublish([]byte("prefix"), tc.m, tc.id, tc.expiry, true)
		if !bytes.Equal(got[6:], want.Bytes()) {
			t.Errorf("topic %q: encoded\n% x\npaho writes\n% x", tc.m.Topic, got[6:min(len(got), 40)], want.Bytes()[:min(want.Len(), 34)])
		}
		if n := publishSize(tc.m, tc.expiry, true); n != want.Len() {
			t.Errorf("topic %q: publishSize %d, encoded %d", tc.m.Topic, n, want.Len())
		}

		// MQTT 3.1.1 / 3.1: the same packet without properties, as paho.mqtt.golang writes it.
		p3 := mq.NewControlPacket(mq.Publish).(*mq.PublishPacket)
		p3.TopicName, p3.Qos, p3.Retain, p3.MessageID, p3.Payload = tc.m.Topic, tc.m.QoS, tc.m.Retain, tc.id, tc.m.Payload
		var want3 bytes.Buffer
		if err := p3.Write(&want3); err != nil {
			t.Fatal(err)
		}
		got3 := appendPublish(nil, tc.m, tc.id, tc.expiry, false)
		if !bytes.Equal(got3, want3.Bytes()) || publishSize(tc.m, tc.expiry, false) != want3.Len() {
			t.Errorf("topic %q, 3.1.1: encoded\n% x\npaho.mqtt.golang writes\n% x", tc.m.Topic, got3[:min(len(got3), 40)], want3.Bytes()[:min(want3.Len(), 40)])
		}
	}
}

// The broker's CONNACK limits that paho's PublishWithOptions used to check are the sender's now: a
// retained message to a broker without Retain Available, or a QoS above its Maximum QoS, is rejected
// as invalid (to the dead-letter store) without being written.
func TestSenderHonoursConnackLimits(t *testing.T) {
	src := newFakeSource()
	c, err := New(Config{URL: "ws://127.0.0.1:1/mqtt", ClientID: "limits", Logger: testLogger(t)}, src)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{maxQoS: 0, retainOK: false} // what connect5 takes from such a CONNACK; no connection: a write would panic
	for seq, m := range map[uint64]Message{
		1: {Seq: 1, Topic: "t", QoS: 0, Retain: true},
		2: {Seq: 2, Topic: "t", QoS: 1},
	} {
		if err := c.publishOne(context.Background(), p, m); err != nil {
			t.Fatal(err)
		}
		if err := src.rejected[seq]; !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("seq %d: rejected with %v, want ErrInvalidMessage", seq, err)
		}
	}
}

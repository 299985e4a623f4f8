package transport

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
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

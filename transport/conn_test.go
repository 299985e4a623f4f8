package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/edge-agent/edge-agent/internal/devbroker"
	"github.com/edge-agent/edge-agent/internal/testca"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/gorilla/websocket"
)

// wsPair dials a test WebSocket server and returns the client wsConn and the server's websocket.
func wsPair(t *testing.T) (*wsConn, *websocket.Conn) {
	t.Helper()
	srvConn := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	var proto string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto = r.Header.Get("Sec-WebSocket-Protocol")
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		srvConn <- c
	}))
	t.Cleanup(srv.Close)
	c, err := dialWebSocket(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/mqtt", nil, nil, 5*time.Second, 5*time.Second, defaultMaxPacketSize, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	s := <-srvConn
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	if proto != "mqtt" {
		t.Fatalf("subprotocol offered %q, want mqtt", proto)
	}
	return c, s
}

// Packets written concurrently (as paho does from the sender, the pinger and the reader) each arrive
// intact, one packet per WebSocket message.
func TestWSConnConcurrentWritesArePackets(t *testing.T) {
	c, s := wsPair(t)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := packets.NewControlPacket(packets.PUBLISH)
				pub := p.Content.(*packets.Publish)
				pub.Topic = fmt.Sprintf("w/%d", w)
				pub.QoS = 1
				pub.PacketID = uint16(i + 1)
				pub.Payload = bytes.Repeat([]byte{byte(w)}, 100+i)
				if _, err := p.WriteTo(c); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := map[string]uint16{}
	for range writers * each {
		typ, msg, err := s.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.BinaryMessage {
			t.Fatalf("message type %d, want binary", typ)
		}
		cp, err := packets.ReadPacket(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("corrupt packet: %v", err)
		}
		pub := cp.Content.(*packets.Publish)
		if n, ok := packetLen(msg); !ok || n != len(msg) {
			t.Fatalf("message holds %d bytes, packet is %d: not one packet per message", len(msg), n)
		}
		next[pub.Topic]++
		if pub.PacketID != next[pub.Topic] || len(pub.Payload) != 100+int(pub.PacketID)-1 {
			t.Fatalf("topic %s: got packet %d (%d bytes), want %d", pub.Topic, pub.PacketID, len(pub.Payload), next[pub.Topic])
		}
	}
	wg.Wait()
}

// Reads work across WebSocket message boundaries: a packet split over messages and packets sharing one.
func TestWSConnReadsAcrossMessages(t *testing.T) {
	c, s := wsPair(t)
	var stream bytes.Buffer
	for i := range 3 {
		p := packets.NewControlPacket(packets.PUBLISH)
		pub := p.Content.(*packets.Publish)
		pub.Topic, pub.QoS, pub.PacketID, pub.Payload = "a/b", 1, uint16(i+1), []byte(strings.Repeat("x", 50))
		if _, err := p.WriteTo(&stream); err != nil {
			t.Fatal(err)
		}
	}
	b := stream.Bytes()
	// message 1: first packet and a bit of the second; message 2: 3 bytes; message 3: the rest.
	cuts := [][]byte{b[:len(b)/3+5], b[len(b)/3+5 : len(b)/3+8], b[len(b)/3+8:]}
	for _, m := range cuts {
		if err := s.WriteMessage(websocket.BinaryMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		cp, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatal(err)
		}
		if id := cp.Content.(*packets.Publish).PacketID; id != uint16(i+1) {
			t.Fatalf("packet %d has id %d", i, id)
		}
	}
	if err := s.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 10)); err != errNonBinary {
		t.Fatalf("text message: err %v, want errNonBinary", err)
	}
}

// A write to a dead socket fails, and keeps failing (sticky), so QoS 0 is never acked after it.
func TestWSConnWriteErrorSticky(t *testing.T) {
	c, s := wsPair(t)
	_ = s.NetConn().Close()
	_ = c.ws.NetConn().Close()
	p := packets.NewControlPacket(packets.PINGREQ)
	if _, err := p.WriteTo(c); err == nil {
		t.Fatal("write to a closed socket succeeded")
	}
	if !c.writeFailed() {
		t.Fatal("write failure not remembered")
	}
	if _, err := packets.NewControlPacket(packets.PINGREQ).WriteTo(c); err == nil {
		t.Fatal("second write succeeded")
	}
}

func TestPacketLen(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		n    int
		done bool
	}{
		{[]byte{0xc0}, 0, false},
		{[]byte{0xc0, 0x00}, 2, true},
		{[]byte{0x30, 0x7f}, 129, true},
		{[]byte{0x30, 0x80}, 0, false},
		{[]byte{0x30, 0x80, 0x01}, 131, true},
		{[]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 268435455 + 5, true},
	} {
		if n, ok := packetLen(tc.b); n != tc.n || ok != tc.done {
			t.Errorf("packetLen(% x) = %d,%v want %d,%v", tc.b, n, ok, tc.n, tc.done)
		}
	}
}

// wss:// works with the private CA in Config.TLS and fails (certificate error) with system roots.
func TestWSSWithPrivateCA(t *testing.T) {
	ca, err := testca.New("edge-agent test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, devbroker.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if !strings.HasPrefix(b.URL(), "wss://") {
		t.Fatalf("broker URL %s", b.URL())
	}

	src := newFakeSource()
	seqs := src.add(10, qos1("tls"))
	ok := startClient(t, Config{URL: b.URL(), ClientID: "tls-ok", TLS: &tls.Config{RootCAs: ca.Pool()}}, src)
	src.waitSettled(t, len(seqs), 10*time.Second)
	src.checkAckedOnce(t, seqs)
	ok.stop(t)

	bad := startClient(t, Config{URL: b.URL(), ClientID: "tls-bad", Backoff: fastBackoff}, newFakeSource())
	testutil.WaitFor(t, 10*time.Second, "a failed attempt", func() bool { return bad.Status().Attempts >= 1 })
	st := bad.Status()
	if st.Connects != 0 || !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("without the CA: connects %d, last error %q; want a certificate error", st.Connects, st.LastError)
	}
}

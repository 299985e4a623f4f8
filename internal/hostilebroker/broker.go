package hostilebroker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/mqttwire"
	"github.com/edge-agent/edge-agent/internal/wsstream"
	"github.com/edge-agent/edge-agent/topic"
)

// Ways to hang up (Options.HangUpWith).
const (
	HangUpDisconnect = "disconnect" // DISCONNECT reason 0x81 (malformed packet, as Mosquitto sends), then end of stream
	HangUpClose      = "close"      // a WebSocket close frame, then end of stream
	HangUpTCP        = "tcp"        // only the end of the TCP stream (FIN)
)

// HugeRemainingLength is the largest remaining length MQTT can express [MQTT-1.5.5].
const HugeRemainingLength = 268435455

// Options configures a Broker. The zero value is a well-behaved broker.
type Options struct {
	Addr string // listen address; default "127.0.0.1:0"

	// ReceiveMaximum is sent in CONNACK when non-zero.
	ReceiveMaximum uint16

	// HugeHeaderAfterConnack / HugeHeaderAfterSubscribe: right after CONNACK, or right after the first
	// SUBACK of a connection, send a fixed header announcing HugeRemainingLength bytes and then nothing
	// more on that connection (or, with HugeHeaderTrickle, one zero byte per interval). The broker goes on
	// reading what the client sends.
	HugeHeaderAfterConnack   bool
	HugeHeaderAfterSubscribe bool
	HugeHeaderType           byte          // packet type in that header; 0 = PUBLISH (3)
	HugeHeaderConnections    int           // only on the first n connections; 0 = on every one
	HugeHeaderTrickle        time.Duration // 0 = nothing after the header

	// RetainedSize > 0: after each SUBACK, a retained PUBLISH with a payload of this many bytes on the
	// first filter subscribed (wildcards replaced: "+" by "r", "#" by "retained"), at RetainedQoS (0, 1
	// or 2), streamed from a generator in one WebSocket message (the broker never holds the payload).
	RetainedSize int
	RetainedQoS  byte

	// HangUpOn, when set, is asked about every PUBLISH received (after it is recorded); true makes the
	// broker hang up without acknowledging it, the way HangUpWith says (default HangUpDisconnect).
	HangUpOn   func(topic string, payload []byte) bool
	HangUpWith string
}

// Msg is a PUBLISH the broker received.
type Msg struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Ack is a PUBACK or PUBREC a client sent.
type Ack struct {
	Type       byte // packets.PUBACK or packets.PUBREC
	PacketID   uint16
	ReasonCode byte
}

// Broker is a running hostile broker.
type Broker struct {
	opts Options
	ln   net.Listener
	srv  *http.Server
	wg   sync.WaitGroup // Serve and every connection handler

	mu       sync.Mutex
	closed   bool
	conns    map[*conn]struct{}
	received []Msg
	acks     []Ack
	discos   []byte // reason codes of client DISCONNECTs
	maxSizes []uint32
	hangUps  int
}

// Start listens and serves WebSocket connections on /mqtt; it returns once the listener is bound.
func Start(opts Options) (*Broker, error) {
	switch opts.HangUpWith {
	case "":
		opts.HangUpWith = HangUpDisconnect
	case HangUpDisconnect, HangUpClose, HangUpTCP:
	default:
		return nil, fmt.Errorf("hostilebroker: HangUpWith %q; use %q, %q or %q", opts.HangUpWith, HangUpDisconnect, HangUpClose, HangUpTCP)
	}
	if opts.RetainedQoS > 2 {
		return nil, fmt.Errorf("hostilebroker: RetainedQoS %d; use 0, 1 or 2", opts.RetainedQoS)
	}
	if opts.RetainedSize > HugeRemainingLength-1024 {
		return nil, fmt.Errorf("hostilebroker: RetainedSize %d does not fit one MQTT packet", opts.RetainedSize)
	}
	if opts.HugeHeaderType == 0 {
		opts.HugeHeaderType = packets.PUBLISH
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hostilebroker: listen on %s: %w", addr, err)
	}
	b := &Broker{opts: opts, ln: ln, conns: make(map[*conn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/mqtt", b.serveWS)
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

// Addr is "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// URL is "ws://127.0.0.1:PORT/mqtt".
func (b *Broker) URL() string { return "ws://" + b.Addr() + "/mqtt" }

// Received returns every PUBLISH received so far, in arrival order (hang-up triggers included).
func (b *Broker) Received() []Msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Msg(nil), b.received...)
}

// Acks returns every PUBACK and PUBREC clients sent, in arrival order.
func (b *Broker) Acks() []Ack {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Ack(nil), b.acks...)
}

// Disconnects returns the reason code of every DISCONNECT clients sent, in arrival order.
func (b *Broker) Disconnects() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.discos...)
}

// Kick closes every current connection at once (no DISCONNECT, no close frame), as a broker restart
// would; the listener stays up.
func (b *Broker) Kick() {
	for _, c := range b.snapshotConns() {
		c.kill()
	}
}

// Connects is the number of CONNECT packets received.
func (b *Broker) Connects() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.maxSizes)
}

// MaxPacketSizes returns the Maximum Packet Size of each CONNECT received (0 when absent), in order.
func (b *Broker) MaxPacketSizes() []uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]uint32(nil), b.maxSizes...)
}

// HangUps is the number of times the broker hung up because of Options.HangUpOn.
func (b *Broker) HangUps() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hangUps
}

// Publish sends a PUBLISH to every connected client with a matching subscription (at the lower of qos
// and the subscription's QoS) and returns how many clients it was sent to.
func (b *Broker) Publish(topic string, payload []byte, qos byte) int {
	n := 0
	for _, c := range b.snapshotConns() {
		if granted, ok := c.matches(topic); ok {
			if c.publish(topic, payload, min(qos, granted), false) == nil {
				n++
			}
		}
	}
	return n
}

// Close stops listening, closes every connection and waits for every goroutine. Safe to call twice.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	err := b.srv.Close() // listener and not-yet-upgraded connections; upgraded ones are ours
	for _, c := range conns {
		c.kill()
	}
	b.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (b *Broker) snapshotConns() []*conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		out = append(out, c)
	}
	return out
}

var upgrader = websocket.Upgrader{
	Subprotocols: []string{"mqtt"},
	CheckOrigin:  func(*http.Request) bool { return true },
}

func (b *Broker) serveWS(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{b: b, ws: ws, done: make(chan struct{}), subs: make(map[string]byte)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ws.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	c.serve()
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// conn is one client connection. The handler goroutine reads; writes from it, from Broker.Publish and
// from the streaming goroutines are serialised by wmu, one MQTT packet per WebSocket message.
type conn struct {
	b    *Broker
	ws   *websocket.Conn
	n    int           // 1-based connection number (by CONNECT)
	done chan struct{} // closed when the connection is over
	wg   sync.WaitGroup

	wmu    sync.Mutex
	mute   bool // after a huge header or a hang-up nothing more is written
	nextID uint16

	smu        sync.Mutex
	subs       map[string]byte // filter → granted QoS
	subscribed bool            // a SUBSCRIBE was answered on this connection before
	killOnce   sync.Once
}

const writeTimeout = 10 * time.Second

func (c *conn) serve() {
	defer func() {
		c.kill()
		c.wg.Wait()
	}()
	rd := &wsstream.Reader{WS: c.ws}
	cp, err := packets.ReadPacket(rd)
	if err != nil {
		return
	}
	connect, ok := cp.Content.(*packets.Connect)
	if !ok {
		return
	}
	var maxSize uint32
	if connect.Properties != nil && connect.Properties.MaximumPacketSize != nil {
		maxSize = *connect.Properties.MaximumPacketSize
	}
	c.b.mu.Lock()
	c.b.maxSizes = append(c.b.maxSizes, maxSize)
	c.n = len(c.b.maxSizes)
	c.b.mu.Unlock()

	ca := &packets.Connack{Properties: &packets.Properties{}}
	if rm := c.b.opts.ReceiveMaximum; rm > 0 {
		ca.Properties.ReceiveMaximum = &rm
	}
	if c.writePacket(packets.CONNACK, ca) != nil {
		return
	}
	if c.b.opts.HugeHeaderAfterConnack {
		c.sendHugeHeader()
	}
	for {
		cp, err := packets.ReadPacket(rd)
		if err != nil {
			return
		}
		switch p := cp.Content.(type) {
		case *packets.Publish:
			if !c.onPublish(p) {
				return
			}
		case *packets.Subscribe:
			c.onSubscribe(p)
		case *packets.Unsubscribe:
			c.smu.Lock()
			reasons := make([]byte, len(p.Topics))
			for i, f := range p.Topics {
				if _, ok := c.subs[f]; !ok {
					reasons[i] = 0x11 // no subscription existed
				}
				delete(c.subs, f)
			}
			c.smu.Unlock()
			_ = c.writePacket(packets.UNSUBACK, &packets.Unsuback{PacketID: p.PacketID, Reasons: reasons, Properties: &packets.Properties{}})
		case *packets.Pingreq:
			_ = c.writePacket(packets.PINGRESP, &packets.Pingresp{})
		case *packets.Puback:
			c.b.recordAck(Ack{Type: packets.PUBACK, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
		case *packets.Pubrec:
			c.b.recordAck(Ack{Type: packets.PUBREC, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
			if p.ReasonCode < 0x80 {
				_ = c.writePacket(packets.PUBREL, &packets.Pubrel{PacketID: p.PacketID, Properties: &packets.Properties{}})
			}
		case *packets.Pubrel:
			_ = c.writePacket(packets.PUBCOMP, &packets.Pubcomp{PacketID: p.PacketID, Properties: &packets.Properties{}})
		case *packets.Disconnect:
			c.b.mu.Lock()
			c.b.discos = append(c.b.discos, p.ReasonCode)
			c.b.mu.Unlock()
			return
		}
	}
}

// onPublish records a PUBLISH, hangs up if asked to (returning false), otherwise acknowledges and routes it.
func (c *conn) onPublish(p *packets.Publish) bool {
	m := Msg{Topic: p.Topic, Payload: append([]byte(nil), p.Payload...), QoS: p.QoS, Retain: p.Retain}
	c.b.mu.Lock()
	c.b.received = append(c.b.received, m)
	c.b.mu.Unlock()
	if f := c.b.opts.HangUpOn; f != nil && f(m.Topic, m.Payload) {
		c.b.mu.Lock()
		c.b.hangUps++
		c.b.mu.Unlock()
		c.hangUp()
		return false
	}
	switch p.QoS {
	case 1:
		_ = c.writePacket(packets.PUBACK, &packets.Puback{PacketID: p.PacketID, Properties: &packets.Properties{}})
	case 2:
		_ = c.writePacket(packets.PUBREC, &packets.Pubrec{PacketID: p.PacketID, Properties: &packets.Properties{}})
	}
	for _, o := range c.b.snapshotConns() {
		if granted, ok := o.matches(m.Topic); ok {
			_ = o.publish(m.Topic, m.Payload, min(m.QoS, granted), false)
		}
	}
	return true
}

func (c *conn) onSubscribe(p *packets.Subscribe) {
	reasons := make([]byte, len(p.Subscriptions))
	c.smu.Lock()
	for i, s := range p.Subscriptions {
		q := min(s.QoS, 2)
		c.subs[s.Topic] = q
		reasons[i] = q
	}
	again := c.subscribed
	c.subscribed = true
	c.smu.Unlock()
	if c.writePacket(packets.SUBACK, &packets.Suback{PacketID: p.PacketID, Reasons: reasons, Properties: &packets.Properties{}}) != nil {
		return
	}
	if c.b.opts.HugeHeaderAfterSubscribe && !again {
		c.sendHugeHeader()
	}
	if size := c.b.opts.RetainedSize; size > 0 && len(p.Subscriptions) > 0 {
		s := p.Subscriptions[0]
		topic := strings.NewReplacer("+", "r", "#", "retained").Replace(s.Topic)
		qos := min(c.b.opts.RetainedQoS, reasons[0])
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = c.streamPublish(topic, size, qos)
		}()
	}
}

// matches reports whether the connection has a subscription matching the topic name, and the highest
// QoS granted. The topic rules are the agent's own (package topic): an invalid filter matches nothing.
func (c *conn) matches(name string) (byte, bool) {
	c.smu.Lock()
	defer c.smu.Unlock()
	var q byte
	found := false
	for f, g := range c.subs {
		if topic.Match(f, name) {
			q, found = max(q, g), true
		}
	}
	return q, found
}

func (c *conn) nextPacketID() uint16 { // caller holds wmu
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// writePacket encodes one packet and sends it as one binary message.
func (c *conn) writePacket(typ byte, content packets.Packet) error {
	cp := packets.NewControlPacket(typ)
	cp.Content = content
	var buf bytes.Buffer
	if _, err := cp.WriteTo(&buf); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(buf.Bytes())
}

func (c *conn) writeLocked(b []byte) error {
	if c.mute {
		return errMuted
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.BinaryMessage, b)
}

var errMuted = errors.New("hostilebroker: connection muted")

func (c *conn) publish(topic string, payload []byte, qos byte, retain bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p := &packets.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain, Properties: &packets.Properties{}}
	if qos > 0 {
		p.PacketID = c.nextPacketID()
	}
	cp := packets.NewControlPacket(packets.PUBLISH)
	cp.Content = p
	var buf bytes.Buffer
	if _, err := cp.WriteTo(&buf); err != nil {
		return err
	}
	return c.writeLocked(buf.Bytes())
}

// streamPublish sends a PUBLISH with a size-byte payload of 'x' in one WebSocket message, written in
// chunks from one small buffer.
func (c *conn) streamPublish(topic string, size int, qos byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.mute {
		return errMuted
	}
	var hdr bytes.Buffer
	rem := 2 + len(topic) + 1 + size // topic, property length 0, payload
	if qos > 0 {
		rem += 2
	}
	hdr.WriteByte(packets.PUBLISH<<4 | qos<<1 | 1) // retained
	hdr.Write(mqttwire.VarInt(rem))
	hdr.Write(mqttwire.String(topic))
	if qos > 0 {
		id := c.nextPacketID()
		hdr.WriteByte(byte(id >> 8))
		hdr.WriteByte(byte(id))
	}
	hdr.WriteByte(0) // no properties
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	w, err := c.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for left := size; left > 0; {
		select {
		case <-c.done:
			return errMuted
		default:
		}
		n := min(left, len(chunk))
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(chunk[:n]); err != nil {
			return err
		}
		left -= n
	}
	return w.Close()
}

// sendHugeHeader announces HugeRemainingLength bytes, then mutes the connection (or trickles).
func (c *conn) sendHugeHeader() {
	if k := c.b.opts.HugeHeaderConnections; k > 0 && c.n > k {
		return
	}
	c.wmu.Lock()
	err := c.writeLocked(append([]byte{c.b.opts.HugeHeaderType << 4}, mqttwire.VarInt(HugeRemainingLength)...))
	c.mute = true
	c.wmu.Unlock()
	if err != nil || c.b.opts.HugeHeaderTrickle <= 0 {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.b.opts.HugeHeaderTrickle)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
			}
			c.wmu.Lock()
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{0})
			c.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

// hangUp ends the connection the way Options.HangUpWith says. It half-closes TCP and reads until the
// client closes (bounded), so the client sees the DISCONNECT or close frame and then a clean end of
// stream — not a reset caused by unread data.
func (c *conn) hangUp() {
	c.wmu.Lock()
	if !c.mute {
		switch c.b.opts.HangUpWith {
		case HangUpDisconnect:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			_ = c.ws.WriteMessage(websocket.BinaryMessage, []byte{packets.DISCONNECT << 4, 1, 0x81})
		case HangUpClose:
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "hostilebroker hangs up"), time.Now().Add(writeTimeout))
		}
	}
	c.mute = true
	c.wmu.Unlock()
	nc := c.ws.NetConn()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, nc)
}

// kill closes the connection at once (Close, end of serve). Safe to call more than once.
func (c *conn) kill() {
	c.killOnce.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func (b *Broker) recordAck(a Ack) {
	b.mu.Lock()
	b.acks = append(b.acks, a)
	b.mu.Unlock()
}

package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mq "github.com/eclipse/paho.mqtt.golang/packets"
)

// wire3 is an MQTT 3.1.1 or 3.1 session: paho.mqtt.golang's packet codec under a session of our own
// (its Client, with its own reconnect loop, is not used). It keeps the packet identifiers of our
// QoS 1 PUBLISHes, SUBSCRIBEs and UNSUBSCRIBEs in flight and matches their answers; PINGREQ comes from
// the shared keepalivePinger; inbound PUBLISHes go to Client.onPublish and are answered after it
// returned (QoS 1 PUBACK; QoS 2 PUBREC, then PUBCOMP for the PUBREL).
//
// What 3.x lacks is handled by the Client: no PUBACK reason codes (a broker that refuses a message
// disconnects; the poison rule dead-letters it), no Message Expiry (expired messages are never sent),
// no Receive Maximum (the window is Config.MaxInflight3), no Maximum Packet Size (Config.MaxPacketSize
// bounds both directions), Clean Session instead of Session Expiry.
//
// Goroutines: a reader (started by connect3) and the pinger; done is closed once both have stopped.
type wire3 struct {
	c       *Client
	ws      *wsConn
	pinger  *keepalivePinger
	timeout time.Duration // bound of a SUBACK/UNSUBACK wait
	out     pubWriter     // the sender's PUBLISHes (no properties)

	mu     sync.Mutex
	nextID uint16
	pend   map[uint16]pending3 // our packets awaiting an answer, by packet identifier
	gone   bool                // the reader has stopped: nothing more will be answered

	qos2 map[uint16]bool // inbound QoS 2 identifiers between PUBREC and PUBREL (reader only)

	stopPing context.CancelFunc
	doneCh   chan struct{}
}

// pending3 is one packet awaiting its answer: a PUBLISH (pub) or a SUBSCRIBE/UNSUBSCRIBE (ctl).
type pending3 struct {
	pub chan packets.ControlPacket
	ctl chan mq.ControlPacket
}

// connect3 sends a 3.1.1 or 3.1 CONNECT on ws and waits for the CONNACK. On failure ws is closed.
func (c *Client) connect3(ctx context.Context, ws *wsConn, pinger *keepalivePinger, v Protocol) (wire, connInfo, error) {
	cp := mq.NewControlPacket(mq.Connect).(*mq.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", v.level()
	if v == Protocol31 {
		cp.ProtocolName = "MQIsdp"
	}
	cp.CleanSession = c.cfg.SessionExpiry == 0 // the broker keeps a persistent session (see doc.go)
	cp.Keepalive = uint16(c.cfg.Keepalive / time.Second)
	cp.ClientIdentifier = c.cfg.ClientID
	if c.cfg.Username != "" {
		cp.Username, cp.UsernameFlag = c.cfg.Username, true
	}
	if c.cfg.Password != nil {
		cp.Password, cp.PasswordFlag = c.cfg.Password, true
	}
	fail := func(err error) (wire, connInfo, error) {
		_ = ws.Close()
		return nil, connInfo{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()
	_ = ws.SetReadDeadline(time.Now().Add(c.cfg.ConnectTimeout))
	if err := writePacket3(ws, cp); err != nil {
		return fail(fmt.Errorf("mqtt connect: %w", err))
	}
	pkt, err := mq.ReadPacket(ws)
	if err != nil {
		var ne interface{ Timeout() bool }
		switch {
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
			return fail(fmt.Errorf("no CONNACK within %s: %w", c.cfg.ConnectTimeout, err))
		case ws.Err() != nil:
			return fail(fmt.Errorf("%w: %w", ErrClosedAfterConnect, ws.Err()))
		}
		return fail(fmt.Errorf("mqtt connect: %w", err))
	}
	ca, ok := pkt.(*mq.ConnackPacket)
	if !ok {
		return fail(fmt.Errorf("mqtt connect: the broker answered CONNECT with %T instead of CONNACK", pkt))
	}
	if ca.ReturnCode != 0 {
		return fail(connack3Error(ca.ReturnCode, v))
	}
	_ = ws.SetReadDeadline(time.Time{})

	w := &wire3{c: c, ws: ws, pinger: pinger, timeout: c.cfg.ConnectTimeout, out: pubWriter{conn: ws, pinger: pinger},
		pend: make(map[uint16]pending3),
		qos2: make(map[uint16]bool), doneCh: make(chan struct{})}
	pctx, stopPing := context.WithCancel(context.Background())
	w.stopPing = stopPing
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		_ = pinger.Run(pctx, ws, cp.Keepalive) // its error is kept in pinger.Err
	}()
	go func() {
		w.read()
		w.end()
		stopPing()
		<-pingDone
		close(w.doneCh)
	}()
	// 3.1 has no Session Present flag (the byte is reserved).
	info := connInfo{version: v, maxQoS: 2, retainOK: true, sessionPresent: ca.SessionPresent && v == Protocol311}
	return w, info, nil
}

// writePacket3 writes one packet under the connection's write lock (one WebSocket message, see wsConn).
func writePacket3(ws *wsConn, p mq.ControlPacket) error {
	ws.Lock()
	defer ws.Unlock()
	return p.Write(ws)
}

func (w *wire3) write(p mq.ControlPacket) error {
	if err := writePacket3(w.ws, p); err != nil {
		return fmt.Errorf("%w: %w", errConnectionGone, err)
	}
	w.pinger.PacketSent()
	return nil
}

// read is the reader goroutine: it returns when the connection fails or the broker breaks the protocol.
func (w *wire3) read() {
	for {
		pkt, err := mq.ReadPacket(w.ws)
		if err != nil {
			return // the wsConn noted the failure (Err, hungUp)
		}
		w.pinger.PacketReceived()
		switch p := pkt.(type) {
		case *mq.PublishPacket:
			if err := w.inbound(p); err != nil {
				return
			}
		case *mq.PubrelPacket:
			delete(w.qos2, p.MessageID)
			if err := w.write(ack3(mq.Pubcomp, p.MessageID)); err != nil {
				return
			}
		case *mq.PubackPacket:
			w.answer(p.MessageID, p)
		case *mq.SubackPacket:
			w.answer(p.MessageID, p)
		case *mq.UnsubackPacket:
			w.answer(p.MessageID, p)
		case *mq.PingrespPacket:
		default:
			w.ws.noteErr(fmt.Errorf("mqtt: the broker sent an unexpected %T", pkt))
			return
		}
	}
}

// inbound hands a broker PUBLISH to the Client and answers it. A redelivered one (DUP, after a
// reconnect to a persistent session) is handed over again: at least once.
func (w *wire3) inbound(p *mq.PublishPacket) error {
	deliver := func() {
		if w.c.cfg.OnMessage != nil {
			w.c.onPublish(Received{Topic: p.TopicName, Payload: p.Payload, QoS: p.Qos, Retain: p.Retain})
		}
	}
	switch p.Qos {
	case 0:
		deliver()
	case 1:
		deliver()
		return w.write(ack3(mq.Puback, p.MessageID))
	case 2:
		if !w.qos2[p.MessageID] { // exactly once: not again before the PUBREL
			deliver()
			w.qos2[p.MessageID] = true
		}
		return w.write(ack3(mq.Pubrec, p.MessageID))
	}
	return nil
}

// ack3 builds a PUBACK, PUBREC or PUBCOMP.
func ack3(typ byte, id uint16) mq.ControlPacket {
	p := mq.NewControlPacket(typ)
	switch a := p.(type) {
	case *mq.PubackPacket:
		a.MessageID = id
	case *mq.PubrecPacket:
		a.MessageID = id
	case *mq.PubcompPacket:
		a.MessageID = id
	}
	return p
}

// register allocates a free packet identifier for p.
func (w *wire3) register(p pending3) (uint16, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone {
		return 0, errConnectionGone
	}
	for range 65535 {
		w.nextID++
		if w.nextID == 0 {
			w.nextID = 1
		}
		if _, used := w.pend[w.nextID]; !used {
			w.pend[w.nextID] = p
			return w.nextID, nil
		}
	}
	return 0, errors.New("mqtt: all 65535 packet identifiers are in use")
}

// answer passes an acknowledgement to whoever waits for its packet identifier.
func (w *wire3) answer(id uint16, p mq.ControlPacket) {
	w.mu.Lock()
	pp, ok := w.pend[id]
	delete(w.pend, id)
	w.mu.Unlock()
	switch {
	case !ok: // unknown or given up (a SUBACK after its timeout): nothing waits
	case pp.pub != nil:
		if _, isPuback := p.(*mq.PubackPacket); isPuback {
			pp.pub <- packets.ControlPacket{FixedHeader: packets.FixedHeader{Type: packets.PUBACK}, Content: &packets.Puback{PacketID: id}}
		} else {
			pp.pub <- packets.ControlPacket{} // not a PUBACK: treated as unanswered
		}
	default:
		pp.ctl <- p
	}
}

func (w *wire3) forget(id uint16) {
	w.mu.Lock()
	delete(w.pend, id)
	w.mu.Unlock()
}

// end closes the connection and answers everything still waiting with "connection lost".
func (w *wire3) end() {
	_ = w.ws.Close()
	w.mu.Lock()
	w.gone = true
	pend := w.pend
	w.pend = nil
	w.mu.Unlock()
	for _, pp := range pend {
		if pp.pub != nil {
			pp.pub <- packets.ControlPacket{}
		} else {
			pp.ctl <- nil
		}
	}
}

func (w *wire3) done() <-chan struct{}   { return w.doneCh }
func (w *wire3) brokerDisconnect() error { return nil } // 3.x brokers never send DISCONNECT

func (w *wire3) disconnect(byte) {
	_ = w.write(mq.NewControlPacket(mq.Disconnect))
	_ = w.ws.Close()
	<-w.doneCh
}

func (w *wire3) publish(m Message, _ uint32) (<-chan packets.ControlPacket, error) {
	if m.QoS == 0 {
		return nil, w.out.write(m, 0, 0)
	}
	ch := make(chan packets.ControlPacket, 1)
	id, err := w.register(pending3{pub: ch})
	if err != nil {
		return nil, err
	}
	return ch, w.out.write(m, id, 0) // on a failed write the channel is answered by end
}

func (w *wire3) subscribe(ctx context.Context, subs []Subscription) ([]byte, error) {
	p := mq.NewControlPacket(mq.Subscribe).(*mq.SubscribePacket)
	for _, s := range subs {
		p.Topics = append(p.Topics, s.Filter)
		p.Qoss = append(p.Qoss, s.QoS)
	}
	ans, err := w.request(ctx, p, "SUBSCRIBE", func(id uint16) { p.MessageID = id })
	if err != nil {
		return nil, err
	}
	sa, ok := ans.(*mq.SubackPacket)
	if !ok {
		return nil, fmt.Errorf("mqtt: the broker answered SUBSCRIBE with %T", ans)
	}
	return sa.ReturnCodes, nil
}

func (w *wire3) unsubscribe(ctx context.Context, filters []string) error {
	p := mq.NewControlPacket(mq.Unsubscribe).(*mq.UnsubscribePacket)
	p.Topics = filters
	_, err := w.request(ctx, p, "UNSUBSCRIBE", func(id uint16) { p.MessageID = id })
	return err
}

// request sends a SUBSCRIBE or UNSUBSCRIBE and waits (at most timeout) for its answer.
func (w *wire3) request(ctx context.Context, p mq.ControlPacket, name string, setID func(uint16)) (mq.ControlPacket, error) {
	ch := make(chan mq.ControlPacket, 1)
	id, err := w.register(pending3{ctl: ch})
	if err != nil {
		return nil, err
	}
	setID(id)
	if err := w.write(p); err != nil {
		return nil, err // end answers ch
	}
	t := time.NewTimer(w.timeout)
	defer t.Stop()
	select {
	case ans := <-ch:
		if ans == nil {
			return nil, errConnectionGone
		}
		return ans, nil
	case <-ctx.Done():
		w.forget(id)
		return nil, ctx.Err()
	case <-t.C:
		w.forget(id)
		return nil, fmt.Errorf("mqtt: no answer to %s within %s", name, w.timeout)
	}
}

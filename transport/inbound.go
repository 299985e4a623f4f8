package transport

import (
	"errors"
	"fmt"
	"io"
)

// MQTT control packet types the guard needs by name [MQTT-2.1.2].
const (
	typePublish = 3
	typePuback  = 4
	typePubrec  = 5
)

// maxTopicInLog bounds the part of an oversized PUBLISH's topic that is kept for the log.
const maxTopicInLog = 256

// guardBufSize is the read-ahead buffer of one connection: several small packets are served from one
// WebSocket read, and an oversized PUBLISH is drained through it.
const guardBufSize = 8 << 10

// progressEvery is how many drained bytes of an oversized PUBLISH count as one sign of life for the
// keepalive pinger (as if a packet had been received): a big message arriving slowly over a slow link is
// not mistaken for a dead link, while a broker trickling a few bytes cannot keep a connection alive.
const progressEvery = 64 << 10

// tooLargePacket describes one inbound packet over the limit.
type tooLargePacket struct {
	Type       byte   // MQTT control packet type (3 = PUBLISH)
	Size       int    // whole packet: fixed header + remaining length
	Limit      int    // MaxPacketSize in force
	QoS        byte   // PUBLISH only
	PacketID   uint16 // PUBLISH with QoS > 0 only
	Topic      string // PUBLISH only: at most maxTopicInLog bytes of the topic, valid when TopicKnown
	TopicKnown bool   // false when the stream ended before the topic arrived
}

// inboundGuard sits between the WebSocket byte stream (raw) and paho's packet reader and makes sure
// paho never sees the fixed header of a packet larger than limit: paho's packets.ReadPacket reads the
// remaining length and then allocates all of it at once, so 5 bytes announcing 268,435,455 would
// otherwise cost 256 MiB before a single payload byte arrived.
//
// It parses each fixed header (type byte + Variable Byte Integer remaining length [MQTT-1.5.5]) itself,
// in its own read-ahead buffer, before handing out any byte of the packet:
//
//   - packet within limit: its bytes are passed on unchanged (header included), possibly across many
//     Read calls, and never beyond the packet's end without parsing the next header;
//   - PUBLISH over limit: read its topic and packet identifier (bounded: at most 64 KiB, of which
//     maxTopicInLog are kept), report it (tooLarge), drain the rest through the buffer without keeping
//     it, then call drained so the packet can be answered (PUBACK/PUBREC) and go on with the next
//     header — the connection stays up;
//   - any other packet over limit: fail with an error wrapping ErrPacketTooLarge;
//   - a remaining length with a continuation bit in its 4th byte: fail (malformed [MQTT-1.5.5]).
//
// Errors are sticky. Not safe for concurrent use: wsConn.Read holds its read lock around it.
type inboundGuard struct {
	raw   io.Reader
	limit int
	buf   []byte
	r, w  int   // buffered bytes are buf[r:w]
	left  int   // bytes of the current packet (header included) still to hand out
	err   error // sticky
	// pendErr is an error raw returned together with bytes: it is served once those bytes are used.
	pendErr error

	tooLarge func(tooLargePacket)       // called once per oversized packet; may be nil
	drained  func(tooLargePacket) error // called after an oversized PUBLISH was fully drained; may be nil
	progress func()                     // called every progressEvery bytes drained; may be nil
}

func newInboundGuard(raw io.Reader, limit int) *inboundGuard {
	return &inboundGuard{raw: raw, limit: limit, buf: make([]byte, guardBufSize)}
}

var (
	// errMalformed is wrapped by every error for an inbound packet that breaks the MQTT framing.
	errMalformed = errors.New("malformed MQTT packet from the broker")
	// errMalformedLength: a remaining length longer than 4 bytes [MQTT-1.5.5].
	errMalformedLength = fmt.Errorf("%w: its remaining length is longer than 4 bytes", errMalformed)
)

// Read implements io.Reader for paho.
func (g *inboundGuard) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, g.err
	}
	for g.err == nil {
		if g.left > 0 {
			if g.r == g.w {
				if g.left >= len(g.buf) && len(p) >= len(g.buf) {
					// A large body: read straight into the caller's buffer, no copy.
					if g.pendErr != nil {
						g.err = g.pendErr
						break
					}
					n, err := g.raw.Read(p[:min(len(p), g.left)])
					g.left -= n
					g.pendErr = err
					if n > 0 {
						return n, nil
					}
					continue
				}
				if err := g.fill(); err != nil {
					return 0, err
				}
			}
			n := copy(p[:min(len(p), g.left)], g.buf[g.r:g.w])
			g.r += n
			g.left -= n
			return n, nil
		}
		if err := g.nextPacket(); err != nil {
			g.err = err
		}
	}
	return 0, g.err
}

// fill reads once more from raw into the buffer (compacting it first). It returns an error only when
// no byte arrived.
func (g *inboundGuard) fill() error {
	if g.r == g.w {
		g.r, g.w = 0, 0
	} else if g.w == len(g.buf) {
		g.w = copy(g.buf, g.buf[g.r:g.w])
		g.r = 0
	}
	for {
		if g.pendErr != nil {
			g.err = g.pendErr
			return g.err
		}
		n, err := g.raw.Read(g.buf[g.w:])
		g.w += n
		g.pendErr = err // served after the bytes that came with it
		if n > 0 {
			return nil
		}
	}
}

// need makes sure n (<= len(buf)) bytes are buffered.
func (g *inboundGuard) need(n int) error {
	for g.w-g.r < n {
		if g.r > 0 && len(g.buf)-g.r < n {
			g.w = copy(g.buf, g.buf[g.r:g.w])
			g.r = 0
		}
		if err := g.fill(); err != nil {
			return err
		}
	}
	return nil
}

// parseFixedHeader parses a fixed header at the start of b. It returns the header length and the
// remaining length, ok=false when b holds only part of the header, or errMalformedLength.
func parseFixedHeader(b []byte) (hdr, rem int, ok bool, err error) {
	mult := 1
	for i := 1; i < len(b); i++ {
		rem += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return i + 1, rem, true, nil
		}
		if i == 4 {
			return 0, 0, false, errMalformedLength
		}
		mult *= 128
	}
	return 0, 0, false, nil
}

// nextPacket reads the next fixed header and either lets the packet through (left) or deals with it.
func (g *inboundGuard) nextPacket() error {
	for {
		hdr, rem, ok, err := parseFixedHeader(g.buf[g.r:g.w])
		if err != nil {
			return err
		}
		if ok {
			size := hdr + rem
			if size <= g.limit {
				g.left = size
				return nil
			}
			typ := g.buf[g.r] >> 4
			if typ != typePublish {
				ev := tooLargePacket{Type: typ, Size: size, Limit: g.limit}
				if g.tooLarge != nil {
					g.tooLarge(ev)
				}
				return fmt.Errorf("%w: the broker sent a %d-byte %s packet; broker.max_packet_size is %d",
					ErrPacketTooLarge, size, packetName(typ), g.limit)
			}
			flags := g.buf[g.r] & 0x0f
			g.r += hdr
			return g.discardPublish(tooLargePacket{Type: typ, Size: size, Limit: g.limit, QoS: flags >> 1 & 3}, rem)
		}
		if err := g.fill(); err != nil {
			return err
		}
	}
}

// discardPublish consumes the rem bytes of an oversized PUBLISH whose fixed header is already consumed.
func (g *inboundGuard) discardPublish(ev tooLargePacket, rem int) (err error) {
	reported := false
	report := func() {
		if !reported && g.tooLarge != nil {
			reported = true
			g.tooLarge(ev)
		}
	}
	defer func() {
		if err != nil {
			report() // counted even when the stream fails before the topic arrived
		}
	}()
	if ev.QoS == 3 {
		return fmt.Errorf("%w: a %d-byte PUBLISH with QoS 3", errMalformed, ev.Size)
	}
	if err := g.need(2); err != nil {
		return err
	}
	tl := int(g.buf[g.r])<<8 | int(g.buf[g.r+1])
	g.r += 2
	head := 2 + tl
	if ev.QoS > 0 {
		head += 2
	}
	if head > rem {
		return fmt.Errorf("%w: a %d-byte PUBLISH whose topic length %d exceeds it", errMalformed, ev.Size, tl)
	}
	var topic []byte
	for got := 0; got < tl; {
		if g.r == g.w {
			if err := g.fill(); err != nil {
				return err
			}
		}
		n := min(tl-got, g.w-g.r)
		if keep := min(n, maxTopicInLog-len(topic)); keep > 0 {
			topic = append(topic, g.buf[g.r:g.r+keep]...)
		}
		g.r += n
		got += n
	}
	ev.Topic, ev.TopicKnown = string(topic), true
	if ev.QoS > 0 {
		if err := g.need(2); err != nil {
			return err
		}
		ev.PacketID = uint16(g.buf[g.r])<<8 | uint16(g.buf[g.r+1])
		g.r += 2
	}
	report()
	sinceProgress := 0
	for left := rem - head; left > 0; {
		if g.r == g.w {
			if err := g.fill(); err != nil {
				return err
			}
		}
		n := min(left, g.w-g.r)
		g.r += n
		left -= n
		if sinceProgress += n; sinceProgress >= progressEvery {
			sinceProgress = 0
			if g.progress != nil {
				g.progress()
			}
		}
	}
	if g.drained != nil {
		return g.drained(ev)
	}
	return nil
}

// packetName names an MQTT control packet type for messages.
func packetName(typ byte) string {
	names := [...]string{"reserved(0)", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	if int(typ) < len(names) {
		return names[typ]
	}
	return fmt.Sprintf("type %d", typ)
}

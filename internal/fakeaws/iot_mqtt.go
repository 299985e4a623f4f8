package fakeaws

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The fake does not speak MQTT; it only looks at the first packet of a
// connection to learn the client id (and, in CloseAfterConnect mode, to know
// when CONNECT has arrived). Packet layout per MQTT 3.1.1 §3.1 and MQTT 5.0
// §3.1.

var errNotConnect = errors.New("first packet is not CONNECT")

// packetSize returns the total size of the MQTT packet at the start of b
// (fixed header included), or 0 when b does not hold the whole fixed header
// yet.
func packetSize(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	n, mult := 0, 1
	for i := 1; i <= 4; i++ {
		if i >= len(b) {
			return 0, nil
		}
		n += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return 1 + i + n, nil
		}
		mult *= 128
	}
	return 0, errors.New("malformed remaining length") // [MQTT-1.5.5] at most 4 bytes
}

// parseConnect reads the client id from a complete CONNECT packet.
func parseConnect(p []byte) (string, error) {
	if len(p) == 0 || p[0] != 0x10 {
		return "", errNotConnect
	}
	size, err := packetSize(p)
	if err != nil {
		return "", err
	}
	if size == 0 || size > len(p) {
		return "", errors.New("truncated CONNECT")
	}
	hdr := size - remainingLen(p)
	r := reader{b: p[hdr:size]}
	name := r.str()
	level := r.byte()
	r.byte()        // connect flags
	r.n(2)          // keepalive
	if level == 5 { // properties [MQTT-3.1.2.11]
		pl := r.varint()
		r.n(pl)
	}
	id := r.str()
	if r.err != nil {
		return "", fmt.Errorf("malformed CONNECT: %w", r.err)
	}
	if name != "MQTT" && name != "MQIsdp" {
		return "", fmt.Errorf("CONNECT with protocol name %q", name)
	}
	return id, nil
}

// remainingLen is the remaining-length value of a packet whose header
// packetSize accepted.
func remainingLen(p []byte) int {
	n, mult := 0, 1
	for i := 1; i <= 4 && i < len(p); i++ {
		n += int(p[i]&0x7f) * mult
		if p[i]&0x80 == 0 {
			break
		}
		mult *= 128
	}
	return n
}

// reader decodes MQTT primitives, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) n(k int) []byte {
	if r.err != nil {
		return nil
	}
	if k < 0 || k > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	v := r.b[:k]
	r.b = r.b[k:]
	return v
}

func (r *reader) byte() byte {
	v := r.n(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) str() string {
	l := r.n(2)
	if l == nil {
		return ""
	}
	s := r.n(int(binary.BigEndian.Uint16(l)))
	if r.err == nil && !utf8.Valid(s) {
		r.err = errors.New("string is not UTF-8") // [MQTT-1.5.4-1]
	}
	return string(s)
}

func (r *reader) varint() int {
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return n
		}
		mult *= 128
	}
	r.err = errors.New("malformed variable byte integer")
	return 0
}

// connectSniffer collects the first bytes of a connection until the first
// packet is complete.
type connectSniffer struct {
	buf  []byte
	done bool
}

// maxSniff bounds what the sniffer keeps; a CONNECT with a bigger will
// message is relayed but its client id not recorded.
const maxSniff = 1 << 20

// feed adds data; it returns done=true (once) when the first packet is
// complete or cannot be parsed, with the client id if it was a CONNECT.
func (s *connectSniffer) feed(data []byte) (clientID string, done bool, err error) {
	if s.done {
		return "", false, nil
	}
	s.buf = append(s.buf, data...)
	size, err := packetSize(s.buf)
	if err == nil && (size == 0 || size > len(s.buf)) {
		if len(s.buf) > maxSniff {
			err = errors.New("first packet larger than the sniffer's limit")
		} else {
			return "", false, nil
		}
	}
	s.done = true
	if err == nil {
		clientID, err = parseConnect(s.buf[:size])
	}
	s.buf = nil
	return clientID, true, err
}

package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// On-disk record layout, version 1 (all integers big-endian):
//
//	offset  size  field
//	0       1     record version (1)
//	1       1     flags: bit 0 retain, bit 1 expires present; other bits must be 0
//	2       1     QoS (0..2)
//	3       8     created, Unix nanoseconds (int64)
//	11      8     expires, Unix nanoseconds (int64), only if flag bit 1 is set
//	..      2     topic length T (1..65535)
//	..      T     topic
//	..      4     payload length P (0..MaxPayload)
//	..      P     payload
//
// The record ends exactly after the payload; trailing bytes are an error. The
// sequence number is the bbolt key, not part of the value.
const (
	recordVersion = 1

	flagRetain  = 0x01
	flagExpires = 0x02
	knownFlags  = flagRetain | flagExpires

	fixedHeaderLen = 1 + 1 + 1 + 8
	maxTopicLen    = math.MaxUint16
)

// MaxPayload is the largest payload one message may carry. It keeps a record
// well inside bbolt's value limit on 32-bit ARM.
const MaxPayload = 64 << 20

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// validate checks what the record encoding needs. MQTT rules for topics are
// the transport's business, not the queue's.
func validate(m *Message) error {
	switch {
	case m.Topic == "":
		return errors.New("empty topic")
	case len(m.Topic) > maxTopicLen:
		return fmt.Errorf("topic is %d bytes, the limit is %d", len(m.Topic), maxTopicLen)
	case len(m.Payload) > MaxPayload:
		return fmt.Errorf("payload is %d bytes, the limit is %d", len(m.Payload), MaxPayload)
	case m.QoS > 2:
		return fmt.Errorf("QoS %d is not 0, 1 or 2", m.QoS)
	case m.Created.Before(minTime) || m.Created.After(maxTime):
		return fmt.Errorf("created time %s is out of range", m.Created)
	case !m.Expires.IsZero() && (m.Expires.Before(minTime) || m.Expires.After(maxTime)):
		return fmt.Errorf("expires time %s is out of range", m.Expires)
	}
	return nil
}

// encodedLen returns the size of m's record.
func encodedLen(m *Message) int {
	n := fixedHeaderLen + 2 + len(m.Topic) + 4 + len(m.Payload)
	if !m.Expires.IsZero() {
		n += 8
	}
	return n
}

// encodeRecord encodes a validated message (Created already set).
func encodeRecord(m *Message) []byte {
	b := make([]byte, 0, encodedLen(m))
	var flags byte
	if m.Retain {
		flags |= flagRetain
	}
	if !m.Expires.IsZero() {
		flags |= flagExpires
	}
	b = append(b, recordVersion, flags, m.QoS)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created.UnixNano()))
	if flags&flagExpires != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.Expires.UnixNano()))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Topic)))
	b = append(b, m.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Payload)))
	b = append(b, m.Payload...)
	return b
}

// decodeRecord decodes a record. The result does not alias b (bbolt memory is
// only valid inside its transaction). Every error wraps ErrCorrupt.
func decodeRecord(b []byte) (Message, error) {
	m, err := parseRecord(b)
	if err != nil {
		return m, err
	}
	m.Payload = append([]byte{}, m.Payload...)
	return m, nil
}

// checkRecord reports whether b decodes, without copying it.
func checkRecord(b []byte) error {
	_, err := parseRecord(b)
	return err
}

// recordDecoder decodes the records of one read with few allocations: a topic equal to the previous
// record's is shared rather than allocated again, and payloads are copied into shared blocks of at
// most decodeBlock bytes, sized for the records still wanted (a payload larger than a quarter of a
// block gets its own). A block stays in memory while any
// message decoded into it does, so it is small; each payload slice is capped at its own length, so an
// append by its user cannot reach its neighbour. Not safe for concurrent use; the zero value is ready.
type recordDecoder struct {
	topic string
	block []byte // the current block; len = bytes handed out
	want  int    // records the caller still expects to decode (sizes a new block; 0 = unknown)
}

const decodeBlock = 32 << 10

// decode is decodeRecord with the decoder's sharing. The result does not alias b.
func (d *recordDecoder) decode(b []byte) (Message, error) {
	m, err := parseRecordTopic(b, d.topic)
	if err != nil {
		return m, err
	}
	d.topic = m.Topic
	m.Payload = d.copy(m.Payload)
	return m, nil
}

func (d *recordDecoder) copy(p []byte) []byte {
	if len(p) > decodeBlock/4 {
		return append([]byte{}, p...)
	}
	if len(d.block)+len(p) > cap(d.block) {
		// Room for the records still expected if they are like this one, within one block.
		d.block = make([]byte, 0, min(decodeBlock, max(len(p), d.want*len(p))))
	}
	start := len(d.block)
	d.block = append(d.block, p...)
	return d.block[start:len(d.block):len(d.block)]
}

// parseRecord is decodeRecord with a payload that aliases b.
func parseRecord(b []byte) (Message, error) { return parseRecordTopic(b, "") }

// parseRecordTopic is parseRecord that returns topic itself when the record's topic equals it (no
// allocation for a run of records on one topic).
func parseRecordTopic(b []byte, topic string) (Message, error) {
	var m Message
	if len(b) < fixedHeaderLen {
		return m, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(b), fixedHeaderLen)
	}
	if b[0] != recordVersion {
		return m, fmt.Errorf("%w: record version %d, this build reads version %d", ErrCorrupt, b[0], recordVersion)
	}
	flags := b[1]
	if flags&^knownFlags != 0 {
		return m, fmt.Errorf("%w: unknown flags %#02x", ErrCorrupt, flags)
	}
	m.Retain = flags&flagRetain != 0
	m.QoS = b[2]
	if m.QoS > 2 {
		return m, fmt.Errorf("%w: QoS %d", ErrCorrupt, m.QoS)
	}
	m.Created = time.Unix(0, int64(binary.BigEndian.Uint64(b[3:11])))
	rest := b[fixedHeaderLen:]
	if flags&flagExpires != 0 {
		if len(rest) < 8 {
			return m, fmt.Errorf("%w: truncated expiry", ErrCorrupt)
		}
		m.Expires = time.Unix(0, int64(binary.BigEndian.Uint64(rest)))
		rest = rest[8:]
	}
	if len(rest) < 2 {
		return m, fmt.Errorf("%w: truncated topic length", ErrCorrupt)
	}
	tl := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if tl == 0 {
		return m, fmt.Errorf("%w: empty topic", ErrCorrupt)
	}
	if len(rest) < tl {
		return m, fmt.Errorf("%w: topic length %d exceeds the %d bytes left", ErrCorrupt, tl, len(rest))
	}
	if string(rest[:tl]) == topic {
		m.Topic = topic
	} else {
		m.Topic = string(rest[:tl])
	}
	rest = rest[tl:]
	if len(rest) < 4 {
		return m, fmt.Errorf("%w: truncated payload length", ErrCorrupt)
	}
	pl := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if pl > MaxPayload {
		return m, fmt.Errorf("%w: payload length %d exceeds the limit %d", ErrCorrupt, pl, MaxPayload)
	}
	if uint64(len(rest)) != uint64(pl) {
		return m, fmt.Errorf("%w: payload length %d but %d bytes left", ErrCorrupt, pl, len(rest))
	}
	m.Payload = rest[:len(rest):len(rest)]
	return m, nil
}

// recordCreated reads only the created time of a record (for Stats.Oldest).
func recordCreated(b []byte) (time.Time, bool) {
	if len(b) < fixedHeaderLen || b[0] != recordVersion {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[3:11]))), true
}

// recordTimes reads only the created and expires times of a record.
func recordTimes(b []byte) (created, expires time.Time, ok bool) {
	created, ok = recordCreated(b)
	if !ok {
		return created, expires, false
	}
	if b[1]&flagExpires != 0 {
		if len(b) < fixedHeaderLen+8 {
			return created, expires, false
		}
		expires = time.Unix(0, int64(binary.BigEndian.Uint64(b[fixedHeaderLen:])))
	}
	return created, expires, true
}

package testutil

// MQTTPacket frames body as an MQTT control packet: the first byte (packet type and flags, e.g. 0x10
// for CONNECT, 0x32 for a QoS 1 PUBLISH), the remaining length as a variable byte integer
// [MQTT-1.5.5], then body. Tests use it to send hand-written packets, valid or not, to a real broker.
func MQTTPacket(header byte, body []byte) []byte {
	pkt := []byte{header}
	for n := len(body); ; {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		pkt = append(pkt, d)
		if n == 0 {
			return append(pkt, body...)
		}
	}
}

// MQTTString encodes s as an MQTT UTF-8 string or binary data field: a two-byte big-endian length,
// then the bytes [MQTT-1.5.4].
func MQTTString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// Package mqttwire writes the few pieces of MQTT's wire format that the test brokers and the tests
// of this module write by hand, to send packets (valid or deliberately not) that no client library
// would: the variable byte integer, a string field and a whole control packet. The agent itself
// encodes in transport (its own PUBLISH encoder, paho's codecs for the rest).
package mqttwire

// VarInt encodes n as a variable byte integer [MQTT-1.5.5], as a remaining length is written.
func VarInt(n int) []byte {
	var out []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			return out
		}
	}
}

// Packet frames body as an MQTT control packet: the first byte (packet type and flags, e.g. 0x10 for
// CONNECT, 0x32 for a QoS 1 PUBLISH), the remaining length, then body.
func Packet(header byte, body []byte) []byte {
	return append(append([]byte{header}, VarInt(len(body))...), body...)
}

// String encodes s as an MQTT UTF-8 string or binary data field: a two-byte big-endian length, then
// the bytes [MQTT-1.5.4].
func String(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

package transport

import (
	"bytes"
	"testing"

	mq "github.com/eclipse/paho.mqtt.golang/packets"
)

// The 3.x reader decodes what a broker sends with paho.mqtt.golang's packets.ReadPacket, behind the
// inboundGuard: whatever the bytes, it returns a packet or an error and never panics.
func FuzzReadPacket3(f *testing.F) {
	for _, seed := range [][]byte{
		{0x20, 2, 0, 0},                      // CONNACK
		{0x30, 5, 0, 1, 't', 'h', 'i'},       // PUBLISH QoS 0
		{0x32, 7, 0, 1, 't', 0, 9, 'h', 'i'}, // PUBLISH QoS 1
		{0x40, 2, 0, 1},                      // PUBACK
		{0x62, 2, 0, 1},                      // PUBREL
		{0x90, 3, 0, 1, 0x80},                // SUBACK failure
		{0xB0, 2, 0, 1},                      // UNSUBACK
		{0xD0, 0},                            // PINGRESP
		{0x32, 3, 0, 9, 't'},                 // PUBLISH shorter than its topic
		{0x90, 0},                            // SUBACK without an identifier
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g := newInboundGuard(bytes.NewReader(b), 4096)
		for range 8 {
			if _, err := mq.ReadPacket(g); err != nil {
				return
			}
		}
	})
}

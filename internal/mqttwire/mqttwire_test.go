package mqttwire

import (
	"bytes"
	"testing"
)

// Known answers: the remaining-length boundaries of [MQTT-1.5.5] table 1-1.
func TestPacket(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0xe0, 0x00}},
		{127, []byte{0xe0, 0x7f}},
		{128, []byte{0xe0, 0x80, 0x01}},
		{16383, []byte{0xe0, 0xff, 0x7f}},
		{16384, []byte{0xe0, 0x80, 0x80, 0x01}},
	} {
		body := bytes.Repeat([]byte{'x'}, tc.n)
		got := Packet(0xe0, body)
		if !bytes.Equal(got[:len(tc.want)], tc.want) || !bytes.Equal(got[len(tc.want):], body) {
			t.Errorf("Packet(0xe0, %d bytes) starts % x, want % x", tc.n, got[:min(len(got), 5)], tc.want)
		}
	}
	if got := VarInt(268435455); !bytes.Equal(got, []byte{0xff, 0xff, 0xff, 0x7f}) {
		t.Errorf("VarInt(268435455) = % x", got)
	}
	if got := String("ab"); !bytes.Equal(got, []byte{0, 2, 'a', 'b'}) {
		t.Errorf("String(\"ab\") = % x", got)
	}
}

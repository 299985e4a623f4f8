package mqttprobe

import (
	"bytes"
	"testing"
)

// Known-good CONNECT bytes for client id "c" (hand-checked against the specs).
func TestConnectPacket(t *testing.T) {
	for _, tc := range []struct {
		level Level
		want  []byte
	}{
		{V31, []byte{0x10, 0x0f, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 30, 0, 1, 'c'}},
		{V311, []byte{0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 'c'}},
		{V5, []byte{0x10, 0x0e, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0, 0, 1, 'c'}},
	} {
		if got := ConnectPacket(tc.level, "c"); !bytes.Equal(got, tc.want) {
			t.Errorf("%v: % x, want % x", tc.level, got, tc.want)
		}
	}
}

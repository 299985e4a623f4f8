package queue

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	created := time.Unix(1700000000, 123456789)
	cases := []struct {
		name string
		m    Message
	}{
		{"minimal", Message{Topic: "t", Created: created}},
		{"qos1 retain", Message{Topic: "a/b/c", Payload: []byte("hello"), QoS: 1, Retain: true, Created: created}},
		{"expires", Message{Topic: "x", Payload: []byte{0, 1, 2, 255}, QoS: 2, Created: created, Expires: created.Add(time.Hour)}},
		{"epoch created", Message{Topic: "x", Created: time.Unix(0, 0)}},
		{"pre-epoch (no RTC)", Message{Topic: "x", Created: time.Unix(-5, 0), Expires: time.Unix(0, 0)}},
		{"max topic", Message{Topic: strings.Repeat("t", maxTopicLen), Payload: make([]byte, 1000), Created: created}},
		{"extreme times", Message{Topic: "x", Created: time.Unix(0, math.MinInt64), Expires: time.Unix(0, math.MaxInt64)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := validate(&tc.m); err != nil {
				t.Fatalf("validate: %v", err)
			}
			b := encodeRecord(&tc.m)
			if len(b) != encodedLen(&tc.m) {
				t.Fatalf("encodedLen %d, encoded %d bytes", encodedLen(&tc.m), len(b))
			}
			if b[0] != recordVersion {
				t.Fatalf("first byte %d, want version %d", b[0], recordVersion)
			}
			got, err := decodeRecord(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Topic != tc.m.Topic || !bytes.Equal(got.Payload, tc.m.Payload) || got.QoS != tc.m.QoS ||
				got.Retain != tc.m.Retain || !got.Created.Equal(tc.m.Created) || !got.Expires.Equal(tc.m.Expires) {
				t.Fatalf("round trip: got %+v, want %+v", got, tc.m)
			}
			if c, ok := recordCreated(b); !ok || !c.Equal(tc.m.Created) {
				t.Fatalf("recordCreated = %v %v", c, ok)
			}
		})
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	good := encodeRecord(&Message{Topic: "ab", Payload: []byte("xyz"), Created: time.Unix(1, 0)})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := map[string][]byte{
		"empty":           nil,
		"short header":    good[:5],
		"future version":  mut(func(b []byte) []byte { b[0] = 2; return b }),
		"unknown flag":    mut(func(b []byte) []byte { b[1] = 0x80; return b }),
		"qos 3":           mut(func(b []byte) []byte { b[2] = 3; return b }),
		"expires cut":     mut(func(b []byte) []byte { b[1] = flagExpires; return b[:fixedHeaderLen+4] }),
		"no topic len":    good[:fixedHeaderLen+1],
		"empty topic":     mut(func(b []byte) []byte { b[fixedHeaderLen], b[fixedHeaderLen+1] = 0, 0; return b }),
		"topic too long":  mut(func(b []byte) []byte { b[fixedHeaderLen] = 0xff; return b }),
		"no payload len":  good[:fixedHeaderLen+2+2+3],
		"payload cut":     good[:len(good)-1],
		"trailing bytes":  append(append([]byte{}, good...), 0),
		"payload too big": mut(func(b []byte) []byte { b[fixedHeaderLen+4] = 0xff; return b }),
	}
	for name, b := range cases {
		if _, err := decodeRecord(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := decodeRecord(good); err != nil {
		t.Fatalf("good record: %v", err)
	}
}

func TestValidate(t *testing.T) {
	bad := map[string]Message{
		"empty topic":   {Topic: ""},
		"long topic":    {Topic: strings.Repeat("x", maxTopicLen+1)},
		"qos 3":         {Topic: "x", QoS: 3},
		"big payload":   {Topic: "x", Payload: make([]byte, MaxPayload+1)},
		"created range": {Topic: "x", Created: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"expires range": {Topic: "x", Created: time.Unix(1, 0), Expires: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, m := range bad {
		if m.Created.IsZero() {
			m.Created = time.Unix(1, 0)
		}
		if err := validate(&m); err == nil {
			t.Errorf("%s: validate accepted it", name)
		}
	}
}

// FuzzDecodeRecord: the decoder never panics, never aliases its input, and
// whatever it accepts re-encodes to the same bytes (one encoding per message).
func FuzzDecodeRecord(f *testing.F) {
	created := time.Unix(1700000000, 5)
	for _, m := range []Message{
		{Topic: "t", Created: created},
		{Topic: "sensors/a", Payload: []byte("21.5"), QoS: 1, Retain: true, Created: created},
		{Topic: "x", Payload: []byte{0, 0xff}, QoS: 2, Created: created, Expires: created.Add(time.Minute)},
	} {
		f.Add(encodeRecord(&m))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte{}, b...)
		m, err := decodeRecord(b)
		if !bytes.Equal(in, b) {
			t.Fatal("decodeRecord modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if err := validate(&m); err != nil {
			t.Fatalf("decoded message does not validate: %v", err)
		}
		again := encodeRecord(&m)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, again)
		}
		if len(m.Payload) > 0 && len(b) > 0 {
			b[len(b)-1] ^= 0xff
			if m.Payload[len(m.Payload)-1] == b[len(b)-1] {
				t.Fatal("decoded payload aliases the input")
			}
			b[len(b)-1] ^= 0xff
		}
	})
}

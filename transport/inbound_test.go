package transport

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// chunkReader returns data in pieces whose sizes cycle through sizes (each at least 1), then io.EOF.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)]) + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// encode returns the wire bytes of a packet.
func encode(t testing.TB, typ byte, content packets.Packet) []byte {
	t.Helper()
	cp := packets.NewControlPacket(typ)
	cp.Content = content
	var buf bytes.Buffer
	if _, err := cp.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func publishBytes(t testing.TB, topic string, payload []byte, qos byte, id uint16) []byte {
	return encode(t, packets.PUBLISH, &packets.Publish{Topic: topic, Payload: payload, QoS: qos, PacketID: id, Properties: &packets.Properties{}})
}

// legitStream is a mix of the packets a client receives, all within 4 KiB.
func legitStream(t testing.TB) []byte {
	var s []byte
	s = append(s, encode(t, packets.CONNACK, &packets.Connack{Properties: &packets.Properties{}})...)
	s = append(s, encode(t, packets.SUBACK, &packets.Suback{PacketID: 1, Reasons: []byte{1, 0}, Properties: &packets.Properties{}})...)
	s = append(s, encode(t, packets.PUBACK, &packets.Puback{PacketID: 7, Properties: &packets.Properties{}})...)
	s = append(s, encode(t, packets.PINGRESP, &packets.Pingresp{})...)
	s = append(s, publishBytes(t, "a/b", bytes.Repeat([]byte("p"), 3000), 1, 3)...)
	s = append(s, publishBytes(t, "c", nil, 0, 0)...)
	s = append(s, encode(t, packets.PUBACK, &packets.Puback{PacketID: 8, ReasonCode: 0x87, Properties: &packets.Properties{ReasonString: "no"}})...)
	return s
}

// guardOutput reads everything the guard lets through with reads of the given sizes.
func guardOutput(g *inboundGuard, readSizes []byte) ([]byte, error) {
	var out []byte
	buf := make([]byte, 300)
	for i := 0; ; i++ {
		n := len(buf)
		if len(readSizes) > 0 {
			n = int(readSizes[i%len(readSizes)])%len(buf) + 1
		}
		k, err := g.Read(buf[:n])
		out = append(out, buf[:k]...)
		if err != nil {
			return out, err
		}
		if i > 1<<22 {
			return out, errors.New("guard made no progress")
		}
	}
}

// A legitimate stream passes byte-identical, however it is split and read, and paho parses it.
func TestGuardPassesLegitimateStream(t *testing.T) {
	in := legitStream(t)
	for _, split := range [][]byte{nil, {0}, {2, 7, 0, 200}, {4}} {
		for _, reads := range [][]byte{nil, {0}, {1, 5, 255}} {
			g := newInboundGuard(&chunkReader{data: in, sizes: split}, 4096)
			out, err := guardOutput(g, reads)
			if !errors.Is(err, io.EOF) || !bytes.Equal(out, in) {
				t.Fatalf("split %v reads %v: %d of %d bytes, err %v", split, reads, len(out), len(in), err)
			}
		}
	}
	g := newInboundGuard(&chunkReader{data: in, sizes: []byte{3}}, 4096)
	for n := 0; ; n++ {
		if _, err := packets.ReadPacket(g); err != nil {
			if n != 7 || !errors.Is(err, io.EOF) {
				t.Fatalf("paho read %d packets, then %v", n, err)
			}
			break
		}
	}
}

// hugeSource is an endless reader: a header announcing a 268,435,455-byte packet, then zeros.
type hugeSource struct {
	hdr  []byte
	sent int
	max  int // bytes after the header before EOF; 0 = endless
}

func (h *hugeSource) Read(p []byte) (int, error) {
	if len(h.hdr) > 0 {
		n := copy(p, h.hdr)
		h.hdr = h.hdr[n:]
		return n, nil
	}
	if h.max > 0 && h.sent >= h.max {
		return 0, io.EOF
	}
	n := len(p)
	if h.max > 0 {
		n = min(n, h.max-h.sent)
	}
	clear(p[:n])
	h.sent += n
	return n, nil
}

// A 268,435,455-byte PUBLISH is drained through the guard's buffer, never handed to paho, and the
// packet after it comes through; heap use stays flat.
func TestGuardDiscardsHugePublishWithoutAllocating(t *testing.T) {
	const rem = 268435455
	var stream []byte
	stream = append(stream, 0x32, 0xff, 0xff, 0xff, 0x7f) // PUBLISH QoS 1
	stream = append(stream, 0, 3, 'b', 'i', 'g', 0x12, 0x34)
	next := encode(t, packets.PINGRESP, &packets.Pingresp{})
	body := rem - 7
	src := io.MultiReader(bytes.NewReader(stream), &hugeSource{max: body}, bytes.NewReader(next))

	var ev tooLargePacket
	var reports, drained, progress int
	g := newInboundGuard(src, 4096)
	g.tooLarge = func(e tooLargePacket) { ev = e; reports++ }
	g.drained = func(e tooLargePacket) error { drained++; return nil }
	g.progress = func() { progress++ }

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cp, err := packets.ReadPacket(g)
	runtime.ReadMemStats(&after)
	if err != nil || cp.Type != packets.PINGRESP {
		t.Fatalf("after the huge PUBLISH paho read %v, %v; want the PINGRESP", cp, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("reading past a %d-byte PUBLISH allocated %d bytes", rem, grew)
	}
	if reports != 1 || drained != 1 || ev.Topic != "big" || !ev.TopicKnown || ev.QoS != 1 || ev.PacketID != 0x1234 ||
		ev.Size != 5+rem || ev.Limit != 4096 {
		t.Fatalf("reports %d drained %d event %+v", reports, drained, ev)
	}
	if want := body / progressEvery; progress < want-1 || progress > want+1 {
		t.Fatalf("%d progress calls, want about %d", progress, want)
	}
}

func TestGuardRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stream  []byte
		want    error
		reports int
	}{
		{"huge SUBACK", []byte{0x90, 0xff, 0xff, 0xff, 0x7f}, ErrPacketTooLarge, 1},
		{"CONNACK one byte over", append([]byte{0x20, 0xfe, 0x0f}, make([]byte, 2046)...), ErrPacketTooLarge, 1}, // 3+2046 = 2049
		{"fifth length byte", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, errMalformed, 0},
		{"huge PUBLISH with QoS 3", []byte{0x36, 0xff, 0xff, 0xff, 0x7f}, errMalformed, 1},
		{"huge PUBLISH, stream ends in the topic", []byte{0x30, 0xff, 0xff, 0xff, 0x7f, 0, 9, 'a'}, io.EOF, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reports := 0
			g := newInboundGuard(bytes.NewReader(tc.stream), 2048)
			g.tooLarge = func(e tooLargePacket) {
				reports++
				if e.Type == typePublish && e.TopicKnown {
					t.Errorf("topic reported as known: %+v", e)
				}
			}
			out, err := guardOutput(g, nil)
			if !errors.Is(err, tc.want) || len(out) != 0 || reports != tc.reports {
				t.Fatalf("out %d bytes, err %v, reports %d; want err %v, %d reports", len(out), err, reports, tc.want, tc.reports)
			}
			if _, err2 := g.Read(make([]byte, 10)); err2 != err {
				t.Fatalf("error not sticky: %v then %v", err, err2)
			}
		})
	}
	// A packet of exactly the limit passes.
	exact := append([]byte{0x20, 0xfd, 0x0f}, make([]byte, 2045)...) // remaining length 2045: 3+2045 = 2048
	g := newInboundGuard(bytes.NewReader(exact), 2048)
	if out, err := guardOutput(g, nil); !errors.Is(err, io.EOF) || !bytes.Equal(out, exact) {
		t.Fatalf("a packet of exactly the limit: %d bytes, %v", len(out), err)
	}
}

// referenceGuard is the guard's specification, written as simply as possible over the whole input:
// what must come out, and whether an oversized non-PUBLISH (or a malformed header) stops the stream.
func referenceGuard(in []byte, limit int) (out []byte, drained int) {
	for len(in) > 0 {
		rem, mult, hdr := 0, 1, 0
		for i := 1; ; i++ {
			if i >= len(in) {
				return out, drained // incomplete header: nothing of it comes out
			}
			rem += int(in[i]&0x7f) * mult
			if in[i]&0x80 == 0 {
				hdr = i + 1
				break
			}
			if i == 4 {
				return out, drained // malformed
			}
			mult *= 128
		}
		size := hdr + rem
		if size <= limit {
			out = append(out, in[:min(size, len(in))]...)
			in = in[min(size, len(in)):]
			continue
		}
		if in[0]>>4 != typePublish || (in[0]>>1)&3 == 3 {
			return out, drained
		}
		body := in[hdr:]
		if len(body) < 2 {
			return out, drained
		}
		head := 2 + (int(body[0])<<8 | int(body[1]))
		if (in[0]>>1)&3 > 0 {
			head += 2
		}
		if head > rem || len(body) < rem {
			return out, drained
		}
		drained++
		in = body[rem:]
	}
	return out, drained
}

// FuzzInboundGuard: arbitrary byte streams, split and read at arbitrary points, never panic, never
// let a header over the limit through, and come out exactly as the reference says (legitimate streams
// byte-identical).
func FuzzInboundGuard(f *testing.F) {
	legit := legitStream(f)
	f.Add(legit, []byte{3}, []byte{1}, uint16(4096))
	f.Add(legit, []byte{0}, []byte{0}, uint16(300))
	f.Add(append([]byte{0x32, 0x90, 0x03, 0, 1, 't', 0, 1}, make([]byte, 397)...), []byte{1, 9}, []byte{7}, uint16(256))
	f.Add([]byte{0x90, 0xff, 0xff, 0xff, 0x7f}, []byte{}, []byte{}, uint16(256))
	f.Add([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, []byte{0}, []byte{0}, uint16(256))
	f.Add(append(append([]byte{0x30, 0x84, 0x02, 0, 0}, make([]byte, 258)...), legit...), []byte{5}, []byte{2}, uint16(256))
	f.Fuzz(func(t *testing.T, in, split, reads []byte, limit16 uint16) {
		limit := max(int(limit16), 8)
		var drained int
		g := newInboundGuard(&chunkReader{data: in, sizes: split}, limit)
		g.drained = func(tooLargePacket) error { drained++; return nil }
		out, err := guardOutput(g, reads)
		if err == nil || err.Error() == "guard made no progress" {
			t.Fatalf("guardOutput ended with %v", err)
		}
		want, wantDrained := referenceGuard(in, limit)
		if !bytes.Equal(out, want) || drained != wantDrained {
			t.Fatalf("limit %d: out %x (%d drained), want %x (%d drained); err %v", limit, out, drained, want, wantDrained, err)
		}
		for rest := out; len(rest) > 0; {
			hdr, rem, ok, err := parseFixedHeader(rest)
			if err != nil || !ok {
				break
			}
			if hdr+rem > limit {
				t.Fatalf("a %d-byte packet got through a limit of %d", hdr+rem, limit)
			}
			rest = rest[min(hdr+rem, len(rest)):]
		}
	})
}

// BenchmarkInboundGuard: paho's ReadPacket over a stream of small and 1 KiB packets, straight and
// through the guard.
func BenchmarkInboundGuard(b *testing.B) {
	var stream []byte
	for i := range 200 {
		stream = append(stream, publishBytes(b, "sensors/x", bytes.Repeat([]byte("v"), 1024), 1, uint16(i+1))...)
		stream = append(stream, encode(b, packets.PUBACK, &packets.Puback{PacketID: uint16(i + 1), Properties: &packets.Properties{}})...)
	}
	run := func(b *testing.B, wrap func(io.Reader) io.Reader) {
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		for b.Loop() {
			r := wrap(&chunkReader{data: stream, sizes: []byte{255, 255, 255, 255, 255, 255, 255, 40}})
			for {
				if _, err := packets.ReadPacket(r); err != nil {
					break
				}
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, func(r io.Reader) io.Reader { return r }) })
	b.Run("guard", func(b *testing.B) {
		run(b, func(r io.Reader) io.Reader { return newInboundGuard(r, defaultMaxPacketSize) })
	})
}

package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// Benchmarks report msgs/s, how many messages shared one fsync, and what the
// flash sees: B-written/msg is write_bytes of /proc/self/io (bytes this
// process caused to be written to the block device: the dirtied pages of the
// queue file) per message, and file-B/msg is the file's allocated size
// (st_blocks) per message stored. Run them on a real disk (not tmpfs):
// write_bytes stays 0 on tmpfs.

// writtenBytes returns write_bytes of /proc/self/io, or -1 when the kernel
// does not provide it (no task I/O accounting).
func writtenBytes(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("write_bytes: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				t.Fatalf("parse /proc/self/io write_bytes %q: %v", v, err)
			}
			return n
		}
	}
	return -1
}

// fileUse returns the apparent size and the allocated bytes (st_blocks*512)
// of path.
func fileUse(t testing.TB, path string) (size, alloc int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fi.Size(), allocated(fi)
}

// wear measures write_bytes between start and stop.
type wear struct {
	tb    testing.TB
	start int64
}

func startWear(tb testing.TB) *wear { return &wear{tb, writtenBytes(tb)} }

func (w *wear) perMsg(msgs int) float64 {
	end := writtenBytes(w.tb)
	if w.start < 0 || end < 0 || msgs == 0 {
		return 0
	}
	return float64(end-w.start) / float64(msgs)
}

func reportQueue(b *testing.B, q *Queue, msgs int) {
	st := q.Stats()
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Appended)/float64(st.Commits), "msgs/commit")
	}
}

func reportFile(b *testing.B, q *Queue, msgs int) {
	if msgs == 0 {
		return
	}
	_, alloc := fileUse(b, q.path)
	b.ReportMetric(float64(alloc)/float64(msgs), "file-B/msg")
}

// benchMsg is the sensor message: a short topic and 200 B payload.
func benchMsg() Message {
	return Message{Topic: "sensors/t1", Payload: bytes.Repeat([]byte("x"), 200), QoS: 1}
}

func BenchmarkAppendSequential(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	m := benchMsg()
	ctx := context.Background()
	w := startWear(b)
	b.ResetTimer()
	for range b.N {
		if _, err := q.Append(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(w.perMsg(b.N), "B-written/msg")
	reportQueue(b, q, b.N)
	reportFile(b, q, b.N)
}

// BenchmarkOneMessageLifecycle is the "sensor with curl": each op
// appends one message (its own commit), reads it with Next and acks it, the
// way the agent does with one message at a time. The written bytes include
// the removal (the queue is flushed before the figure is taken).
func BenchmarkOneMessageLifecycle(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	m := benchMsg()
	ctx := context.Background()
	var after uint64
	w := startWear(b)
	b.ResetTimer()
	for range b.N {
		if _, err := q.Append(ctx, m); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.Next(ctx, after, 1)
		if err != nil {
			b.Fatal(err)
		}
		q.Ack(msgs[0].Seq)
		after = msgs[0].Seq
	}
	if err := q.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(w.perMsg(b.N), "B-written/msg")
	reportQueue(b, q, b.N)
}

func BenchmarkAppendParallel(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	m := benchMsg()
	ctx := context.Background()
	b.SetParallelism(16) // 16 producers per CPU, like many local clients
	w := startWear(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Append(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(w.perMsg(b.N), "B-written/msg")
	reportQueue(b, q, b.N)
}

func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			q := openT(b, tempPath(b), Options{})
			batch := make([]Message, n)
			for i := range batch {
				batch[i] = benchMsg()
			}
			ctx := context.Background()
			w := startWear(b)
			b.ResetTimer()
			for range b.N {
				if _, err := q.Append(ctx, batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(w.perMsg(b.N*n), "B-written/msg")
			reportQueue(b, q, b.N*n)
			reportFile(b, q, b.N*n)
		})
	}
}

// fillQueue appends n messages in batches of 1000.
func fillQueue(b *testing.B, q *Queue, n int) {
	batch := make([]Message, 1000)
	for i := range batch {
		batch[i] = benchMsg()
	}
	for done := 0; done < n; done += len(batch) {
		if _, err := q.Append(context.Background(), batch[:min(len(batch), n-done)]...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNext: one op is one message read by Next, in windows of 64 as a
// transport with 64 in flight would; nothing is acked.
func BenchmarkNext(b *testing.B) {
	b.ReportAllocs()
	q := openT(b, tempPath(b), Options{})
	fillQueue(b, q, b.N)
	ctx := context.Background()
	w := startWear(b)
	b.ResetTimer()
	var after uint64
	for read := 0; read < b.N; {
		msgs, err := q.Next(ctx, after, 64)
		if err != nil {
			b.Fatal(err)
		}
		after = msgs[len(msgs)-1].Seq
		read += len(msgs)
	}
	b.StopTimer()
	b.ReportMetric(w.perMsg(b.N), "B-written/msg")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkNextAck: one op is one message read by Next (windows of 64) and
// acked; the written bytes are those of the removals, flushed at the end.
func BenchmarkNextAck(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	ctx := context.Background()
	fillQueue(b, q, b.N)
	w := startWear(b)
	b.ResetTimer()
	var after uint64
	for read := 0; read < b.N; {
		msgs, err := q.Next(ctx, after, 64)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			q.Ack(m.Seq)
		}
		after = msgs[len(msgs)-1].Seq
		read += len(msgs)
	}
	if err := q.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(w.perMsg(b.N), "B-written/msg")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if st := q.Stats(); st.Depth != 0 {
		b.Fatalf("Depth %d after draining everything", st.Depth)
	}
}

// BenchmarkOpenDeep: Open and OpenOrRecover (bbolt's consistency check and a
// decode of every record) of a 64 MiB queue file; reports MiB/s of file.
func BenchmarkOpenDeep(b *testing.B) {
	path := tempPath(b)
	q, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Message, 1000)
	for i := range batch {
		batch[i] = Message{Topic: "bench/open", Payload: make([]byte, 1024), QoS: 1}
	}
	for range 64 {
		if _, err := q.Append(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	mib := float64(fi.Size()) / (1 << 20)
	for _, deep := range []bool{false, true} {
		name := "Open"
		if deep {
			name = "OpenOrRecover"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				q, err := open(path, Options{}, deep)
				if err != nil {
					b.Fatal(err)
				}
				q.Close()
			}
			b.ReportMetric(mib*float64(b.N)/b.Elapsed().Seconds(), "MiB/s")
		})
	}
}

// The decoder of a read shares one topic string across a run of records and copies payloads into
// shared blocks, each payload capped at its own length so that an append cannot reach its neighbour.
func TestRecordDecoderShares(t *testing.T) {
	var d recordDecoder
	var msgs []Message
	for i, topic := range []string{"a/b", "a/b", "c", "c"} {
		m := Message{Topic: topic, Payload: []byte{byte(i), byte(i)}, QoS: 1, Created: time.Unix(0, int64(i))}
		b := encodeRecord(&m)
		got, err := d.decode(b)
		if err != nil {
			t.Fatal(err)
		}
		clear(b) // the result must not alias the record
		if got.Topic != topic || !bytes.Equal(got.Payload, []byte{byte(i), byte(i)}) || got.QoS != 1 || !got.Created.Equal(m.Created) {
			t.Fatalf("record %d decoded as %+v", i, got)
		}
		msgs = append(msgs, got)
	}
	if unsafe.StringData(msgs[0].Topic) != unsafe.StringData(msgs[1].Topic) ||
		unsafe.StringData(msgs[2].Topic) != unsafe.StringData(msgs[3].Topic) {
		t.Error("a run of records on one topic got separate topic strings")
	}
	_ = append(msgs[0].Payload, 0xff) // must reallocate, not overwrite msgs[1]'s payload
	if !bytes.Equal(msgs[1].Payload, []byte{1, 1}) || cap(msgs[0].Payload) != 2 {
		t.Errorf("payloads share capacity: %v, cap %d", msgs[1].Payload, cap(msgs[0].Payload))
	}
	big := Message{Topic: "c", Payload: bytes.Repeat([]byte{7}, decodeBlock), Created: time.Unix(0, 1)}
	got, err := d.decode(encodeRecord(&big))
	if err != nil || !bytes.Equal(got.Payload, big.Payload) {
		t.Fatalf("large payload: %v", err)
	}
}

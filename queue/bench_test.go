package queue

import (
	"context"
	"os"
	"testing"
)

// Benchmarks report msgs/s and how many messages shared one fsync.

func reportQueue(b *testing.B, q *Queue, msgs int) {
	st := q.Stats()
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Appended)/float64(st.Commits), "msgs/commit")
	}
}

func BenchmarkAppendSequential(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	m := Message{Topic: "bench/seq", Payload: make([]byte, 256), QoS: 1}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := q.Append(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportQueue(b, q, b.N)
}

func BenchmarkAppendParallel(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	m := Message{Topic: "bench/par", Payload: make([]byte, 256), QoS: 1}
	ctx := context.Background()
	b.SetParallelism(16) // 16 producers per CPU, like many local clients
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
	reportQueue(b, q, b.N)
}

func BenchmarkAppendBatch100(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	batch := make([]Message, 100)
	for i := range batch {
		batch[i] = Message{Topic: "bench/batch", Payload: make([]byte, 256), QoS: 1}
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := q.Append(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportQueue(b, q, b.N*len(batch))
}

// BenchmarkNextAck: one op is one message read by Next (in windows of 64, as
// a transport with 64 in flight would) and acked.
func BenchmarkNextAck(b *testing.B) {
	q := openT(b, tempPath(b), Options{})
	ctx := context.Background()
	batch := make([]Message, 1000)
	for i := range batch {
		batch[i] = Message{Topic: "bench/drain", Payload: make([]byte, 256), QoS: 1}
	}
	for n := 0; n < b.N; n += len(batch) {
		if _, err := q.Append(ctx, batch[:min(len(batch), b.N-n)]...); err != nil {
			b.Fatal(err)
		}
	}
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

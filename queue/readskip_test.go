package queue

import (
	"fmt"
	"testing"
)

func seqsOf(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func skipToOf(q *Queue) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.skipTo
}

// Removed records wait in the file for a commit. A reader that starts from the head again (a new
// connection: after = 0) must not walk over them each time: Next remembers the run it skipped.
func TestNextSkipsRemovedRunOnce(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	ctx := ctxT(t)
	batch := make([]Message, 1000)
	for i := range batch {
		batch[i] = Message{Topic: "skip/run", Payload: []byte("p"), QoS: 1}
	}
	if _, err := q.Append(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	_, release := holdCommits(t, q) // removals stay pending: their records stay in the file
	for seq := uint64(1); seq <= 900; seq++ {
		q.Ack(seq)
	}
	q.Ack(950)

	want := func(after uint64, max int, first ...uint64) {
		t.Helper()
		msgs, err := q.Next(ctx, after, max)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(msgs); fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("Next(after %d, max %d) = %v, want %v", after, max, got, first)
		}
	}
	want(0, 3, 901, 902, 903)
	if got := skipToOf(q); got != 900 {
		t.Fatalf("skipTo = %d after skipping 1..900, want 900", got)
	}
	// A scan that starts after a live record says nothing about what lies before it.
	want(947, 4, 948, 949, 951, 952)
	if got := skipToOf(q); got != 900 {
		t.Fatalf("skipTo = %d after a scan from 947, want 900 (seq 901.. are live)", got)
	}
	want(0, 1, 901)
	want(500, 1, 901) // after inside the run: still nothing of it is returned

	q.Ack(901, 902)
	want(0, 1, 903)
	if got := skipToOf(q); got != 902 {
		t.Fatalf("skipTo = %d, want 902", got)
	}

	release()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want(0, 2, 903, 904) // the removals committed: the records are gone, nothing else changed
	if st := q.Stats(); st.Depth != 1000-903 {
		t.Fatalf("Depth %d after committing 903 removals, want %d", st.Depth, 1000-903)
	}
}

// BenchmarkNextFromHead: Next from the head (a reconnecting transport) while `pending` removed records
// wait for their commit at the head of the file. One op is one Next of 32 messages; the cost must not
// grow with pending.
func BenchmarkNextFromHead(b *testing.B) {
	for _, pending := range []int{0, 1000, 100000} {
		b.Run(fmt.Sprintf("pending%d", pending), func(b *testing.B) {
			q := openT(b, tempPath(b), Options{})
			ctx := ctxT(b)
			batch := make([]Message, 1000)
			for i := range batch {
				batch[i] = Message{Topic: "bench/head", Payload: make([]byte, 200), QoS: 1}
			}
			for n := 0; n < pending+1000; n += len(batch) {
				if _, err := q.Append(ctx, batch...); err != nil {
					b.Fatal(err)
				}
			}
			_, release := holdCommits(b, q)
			defer release()
			for seq := uint64(1); seq <= uint64(pending); seq++ {
				q.Ack(seq)
			}
			b.ResetTimer()
			for range b.N {
				msgs, err := q.Next(ctx, 0, 32)
				if err != nil || len(msgs) != 32 || msgs[0].Seq != uint64(pending)+1 {
					b.Fatalf("Next = %d messages from %v, %v", len(msgs), seqsOf(msgs[:min(1, len(msgs))]), err)
				}
			}
		})
	}
}

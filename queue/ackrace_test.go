package queue

import (
	"context"
	"path/filepath"
	"testing"
)

// An Ack for a record that Next returned before its commit was published (bbolt makes the data
// readable first) must not be lost: every acked message leaves the queue.
func TestAckOfJustCommittedRecord(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		var after uint64
		got := 0
		for got < n {
			msgs, err := q.Next(ctx, after, 64)
			if err != nil {
				return
			}
			for _, m := range msgs {
				q.Ack(m.Seq) // an immediate PUBACK
				after = m.Seq
				got++
			}
		}
	}()
	for i := 0; i < n; i += 4 {
		if _, err := q.Append(ctx, Message{Topic: "t", Payload: []byte("x")}, Message{Topic: "t", Payload: []byte("x")},
			Message{Topic: "t", Payload: []byte("x")}, Message{Topic: "t", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	// Two flushes: the first may commit while the last acks are still being recorded.
	for i := 0; i < 2; i++ {
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := q.Stats().Depth; d != 0 {
		t.Fatalf("every message was returned by Next and acked, yet depth = %d", d)
	}
}

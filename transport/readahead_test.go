package transport

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// countingNext is a Source whose Next counts its calls and returns one message of size bytes each time.
type countingNext struct {
	*fakeSource
	calls atomic.Int64
	size  int
}

func (s *countingNext) Next(ctx context.Context, after uint64, max int) ([]Message, error) {
	s.calls.Add(1)
	return []Message{{Seq: after + 1, Topic: "t", Payload: bytes.Repeat([]byte("x"), s.size), QoS: 1}}, nil
}

// The reader reads ahead of the sender only while the batches handed over and not yet sent hold at
// most readAheadBytes: a backlog of large messages is never read into memory faster than it is sent.
func TestReadAheadIsBoundedByBytes(t *testing.T) {
	src := &countingNext{fakeSource: newFakeSource(), size: readAheadBytes*3/5 - 1}
	c, err := New(Config{URL: "ws://127.0.0.1:1/mqtt", ClientID: "ra"}, src)
	if err != nil {
		t.Fatal(err)
	}
	ra := &readAhead{batches: make(chan readResult), sent: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.read(ctx, 32, ra)
	}()
	defer func() {
		cancel()
		<-done
	}()
	take := func() readResult {
		t.Helper()
		select {
		case r := <-ra.batches:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no batch from the reader")
			return readResult{}
		}
	}
	waitCalls := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for src.calls.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("Next called %d times, want %d", src.calls.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first := take() // 0.6 MiB handed over: under the bound, so the reader reads the next one
	if first.msgs[0].Seq != 1 || first.bytes != int64(1+src.size) {
		t.Fatalf("first batch: seq %d, %d bytes", first.msgs[0].Seq, first.bytes)
	}
	second := take() // 1.2 MiB handed over and not sent: the reader must wait
	if second.msgs[0].Seq != 2 {
		t.Fatalf("second batch starts at seq %d, want 2", second.msgs[0].Seq)
	}
	time.Sleep(50 * time.Millisecond) // a reader that ignored the bound would call Next a third time now
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("Next called %d times with %d bytes not yet sent, want 2", n, ra.pending.Load())
	}
	ra.done(first.bytes) // the first batch is sent: 0.6 MiB pending, the reader goes on
	waitCalls(3)
	if third := take(); third.msgs[0].Seq != 3 {
		t.Fatalf("third batch starts at seq %d, want 3", third.msgs[0].Seq)
	}
}

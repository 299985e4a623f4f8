package queue

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

func TestNextSkipsAndRemovesExpired(t *testing.T) {
	path := tempPath(t)
	opts := Options{MaxAge: time.Hour}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Keep a live record at the head so that the committer's head trim does
	// not reach the expired ones: this test is about Next.
	seqs := mustAppend(t, q,
		msg("t", "live head"),
		Message{Topic: "t", Payload: []byte("expires passed"), Expires: now.Add(-time.Second)},
		Message{Topic: "t", Payload: []byte("expires ahead"), Expires: now.Add(time.Hour)},
		Message{Topic: "t", Payload: []byte("too old"), Created: now.Add(-2 * time.Hour)},
		msg("t", "plain"),
	)
	errc := make(chan error, 1)
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[1]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[1]]) == 1 })

	msgs, err := q.Next(ctxT(t), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, m := range msgs {
		got = append(got, m.Seq)
	}
	if want := []uint64{seqs[0], seqs[2], seqs[4]}; !slices.Equal(got, want) {
		t.Fatalf("Next = %v, want %v (expired skipped)", got, want)
	}
	if err := <-errc; !errors.Is(err, ErrExpired) {
		t.Fatalf("WaitAcked(expired) = %v, want ErrExpired", err)
	}
	// Max counts returned messages, not skipped ones.
	if msgs, err := q.Next(ctxT(t), 0, 2); err != nil || len(msgs) != 2 || msgs[1].Seq != seqs[2] {
		t.Fatalf("Next(max 2) = %+v, %v", msgs, err)
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Expired != 2 || st.Depth != 3 || st.Inflight != 0 || st.Acked != 0 || st.Dropped != 0 {
		t.Fatalf("Stats %+v", st)
	}
	// Late callers learn it too; acking an expired seq is a no-op.
	if err := q.WaitAcked(ctxT(t), seqs[3]); !errors.Is(err, ErrExpired) {
		t.Fatalf("late WaitAcked(expired) = %v", err)
	}
	q.Ack(seqs[3])
	if st := q.Stats(); st.Inflight != 0 {
		t.Fatalf("Ack of an expired seq recorded something: %+v", st)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openT(t, path, opts)
	if st := q.Stats(); st.Expired != 2 || st.Depth != 3 {
		t.Fatalf("after reopen Stats %+v, want Expired 2 persisted", st)
	}
}

// The committer removes expired records at the head on every commit, so
// Stats.Oldest, Depth and Bytes stay truthful and expired records never
// cause a rejection.
func TestCommitExpiresHead(t *testing.T) {
	m := msg("t", "0123456789")
	size := recSize(m)
	q := openT(t, tempPath(t), Options{MaxAge: time.Hour, MaxBytes: 3 * size, Overflow: Reject})
	old := m
	old.Created = time.Now().Add(-2 * time.Hour)
	seqs := mustAppend(t, q, old, old) // stored: the head is trimmed before the appends of a commit
	if st := q.Stats(); st.Depth != 2 || !st.Oldest.Equal(old.Created) {
		t.Fatalf("Stats %+v", st)
	}
	errc := make(chan error, 1)
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[1]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[1]]) == 1 })

	fresh := mustAppend(t, q, m, m, m) // fits only because the expired head goes first
	if err := <-errc; !errors.Is(err, ErrExpired) {
		t.Fatalf("WaitAcked(expired at the head) = %v", err)
	}
	st := q.Stats()
	if st.Expired != 2 || st.Depth != 3 || st.Bytes != 3*size || st.Dropped != 0 || time.Since(st.Oldest) > time.Minute {
		t.Fatalf("Stats %+v", st)
	}
	if got := storedSeqs(t, q); !slices.Equal(got, fresh) {
		t.Fatalf("stored %v, want %v", got, fresh)
	}
}

// Timestamps from a clock that was not set (before 2020) are not used for
// expiry: fixing the clock must not throw the backlog away.
func TestExpiryIgnoresUnsetClock(t *testing.T) {
	q := openT(t, tempPath(t), Options{MaxAge: time.Minute})
	boot := time.Unix(3600, 0) // 1970, as after a boot without RTC
	seqs := mustAppend(t, q,
		Message{Topic: "t", Payload: []byte("a"), Created: boot},
		Message{Topic: "t", Payload: []byte("b"), Created: boot, Expires: boot.Add(time.Minute)},
	)
	msgs, err := q.Next(ctxT(t), 0, 10)
	if err != nil || len(msgs) != 2 || msgs[0].Seq != seqs[0] {
		t.Fatalf("Next = %+v, %v; want both", msgs, err)
	}
	if q.isExpired(boot, time.Time{}, boot.Add(time.Hour)) {
		t.Fatal("expired while the queue's own clock is unset")
	}
	if !q.isExpired(time.Now().Add(-2*time.Minute), time.Time{}, time.Now()) {
		t.Fatal("MaxAge not applied")
	}
	if _, err := Open(tempPath(t), Options{MaxAge: -time.Second}); err == nil {
		t.Fatal("negative MaxAge accepted")
	}
}

// Expire is the sender's verb for a message whose time ran out after Next handed it out: its waiters
// learn ErrExpired (not delivered), it is counted as expired, removed from the file, and an Ack after
// it is a no-op.
func TestExpireAfterNext(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	seqs := mustAppend(t, q, msg("t", "a"), msg("t", "b"))
	if _, err := q.Next(ctxT(t), 0, 10); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[0]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[0]]) == 1 })
	q.Expire(seqs[0])
	q.Ack(seqs[0], seqs[1])
	if err := <-errc; !errors.Is(err, ErrExpired) {
		t.Fatalf("WaitAcked(expired on send) = %v, want ErrExpired", err)
	}
	if err := q.WaitAcked(ctxT(t), seqs[1]); err != nil {
		t.Fatalf("WaitAcked(acked) = %v", err)
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Expired != 1 || st.Depth != 0 {
		t.Fatalf("Stats %+v, want Expired 1 and Depth 0", st)
	}
	if err := q.WaitAcked(ctxT(t), seqs[0]); !errors.Is(err, ErrExpired) {
		t.Fatalf("late WaitAcked(expired on send) = %v, want ErrExpired", err)
	}
}

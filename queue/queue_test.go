package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

func TestOrderAcrossManyAppends(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	var want []Message
	var lastSeq uint64
	for i := 0; i < 300; i++ {
		batch := make([]Message, 1+i%4)
		for j := range batch {
			batch[j] = Message{Topic: fmt.Sprintf("t/%d", i), Payload: fmt.Appendf(nil, "%d-%d", i, j), QoS: byte(j % 2), Retain: j == 2}
		}
		for j, s := range mustAppend(t, q, batch...) {
			if s <= lastSeq {
				t.Fatalf("seq %d not above %d", s, lastSeq)
			}
			lastSeq = s
			batch[j].Seq = s
		}
		want = append(want, batch...)
	}
	// Read through Next in chunks of 7.
	var got []Message
	var after uint64
	for len(got) < len(want) {
		msgs, err := q.Next(ctxT(t), after, 7)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if len(msgs) == 0 || len(msgs) > 7 {
			t.Fatalf("Next returned %d messages", len(msgs))
		}
		got = append(got, msgs...)
		after = msgs[len(msgs)-1].Seq
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Seq != w.Seq || g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) || g.QoS != w.QoS || g.Retain != w.Retain || g.Created.IsZero() {
			t.Fatalf("message %d: got %+v, want %+v", i, g, w)
		}
	}
	st := q.Stats()
	if st.Depth != len(want) || st.Appended != uint64(len(want)) {
		t.Fatalf("Stats %+v, want depth/appended %d", st, len(want))
	}
}

func TestReopenKeepsEverythingAndSeqIncreases(t *testing.T) {
	path := tempPath(t)
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(1700000000, 0)
	first := mustAppend(t, q, Message{Topic: "a", Payload: []byte("1"), Created: created, Expires: created.Add(time.Hour)}, msg("b", "2"), msg("c", "3"))
	st1 := q.Stats()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	q = openT(t, path, Options{})
	st2 := q.Stats()
	if st2.Depth != 3 || st2.Bytes != st1.Bytes || !st2.Oldest.Equal(created) {
		t.Fatalf("after reopen Stats %+v, before %+v", st2, st1)
	}
	msgs := stored(t, q)
	if len(msgs) != 3 || msgs[0].Seq != first[0] || string(msgs[2].Payload) != "3" || !msgs[0].Expires.Equal(created.Add(time.Hour)) {
		t.Fatalf("after reopen: %+v", msgs)
	}
	// Remove everything: the seq must not restart even when the file is empty.
	q.Ack(first...)
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openT(t, path, Options{})
	if st := q.Stats(); st.Depth != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("empty queue Stats %+v", st)
	}
	next := mustAppend(t, q, msg("d", "4"))
	if next[0] <= first[2] {
		t.Fatalf("seq after reopen %d, want > %d", next[0], first[2])
	}
}

func TestAckedGoneAfterReopen(t *testing.T) {
	path := tempPath(t)
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := 0; i < 10; i++ {
		seqs = append(seqs, mustAppend(t, q, msg("t", fmt.Sprint(i)))...)
	}
	q.Ack(seqs[0], seqs[3], seqs[9])
	// Acked seqs never come back from Next, removed or not.
	msgs, err := q.Next(ctxT(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Seq == seqs[0] || m.Seq == seqs[3] || m.Seq == seqs[9] {
			t.Fatalf("Next returned acked seq %d", m.Seq)
		}
	}
	if len(msgs) != 7 {
		t.Fatalf("Next returned %d messages, want 7", len(msgs))
	}
	if err := q.Close(); err != nil { // flushes the acks
		t.Fatal(err)
	}
	q = openT(t, path, Options{})
	got := storedSeqs(t, q)
	want := []uint64{seqs[1], seqs[2], seqs[4], seqs[5], seqs[6], seqs[7], seqs[8]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen %v, want %v", got, want)
	}
	if st := q.Stats(); st.Depth != 7 {
		t.Fatalf("Depth %d, want 7", st.Depth)
	}
}

// A crash before the removal commit brings acked messages back (at least
// once). The "crash" is a consistent copy of the file taken while the
// removal is held back.
func TestUnflushedAcksComeBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.db")
	q := openT(t, path, Options{})
	seqs := mustAppend(t, q, msg("t", "1"), msg("t", "2"), msg("t", "3"))

	entered, release := holdCommits(t, q)
	q.Ack(seqs[0], seqs[1])
	<-entered // the removal commit is waiting
	if st := q.Stats(); st.Inflight != 2 || st.Depth != 3 {
		t.Fatalf("before removal Stats %+v, want Inflight 2 Depth 3 (removal-time accounting)", st)
	}
	if got := storedSeqs(t, q); len(got) != 1 || got[0] != seqs[2] {
		t.Fatalf("Next view before removal %v, want only %d", got, seqs[2])
	}
	snap := filepath.Join(dir, "crash.db")
	if err := q.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(snap, 0o600) }); err != nil {
		t.Fatal(err)
	}
	release()
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Inflight != 0 || st.Depth != 1 || st.Acked != 2 {
		t.Fatalf("after removal Stats %+v", st)
	}

	crashed := openT(t, snap, Options{})
	if got := storedSeqs(t, crashed); len(got) != 3 {
		t.Fatalf("after crash before removal: %v, want all 3 back", got)
	}
}

func TestConcurrentProducersGroupCommit(t *testing.T) {
	const producers, perProducer = 16, 500
	q := openT(t, tempPath(t), Options{})
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				if _, err := q.Append(context.Background(), msg(fmt.Sprintf("p%d", p), fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	msgs := stored(t, q)
	if len(msgs) != producers*perProducer {
		t.Fatalf("stored %d, want %d", len(msgs), producers*perProducer)
	}
	next := map[string]int{}
	for _, m := range msgs {
		want := next[m.Topic]
		if string(m.Payload) != fmt.Sprint(want) {
			t.Fatalf("producer %s: got %s, want %d (order broken)", m.Topic, m.Payload, want)
		}
		next[m.Topic]++
	}
	st := q.Stats()
	t.Logf("%d appends in %d commits (%.1f per fsync)", st.Appended, st.Commits, float64(st.Appended)/float64(st.Commits))
	if st.Commits >= st.Appended {
		t.Fatalf("no group commit: %d commits for %d appends", st.Commits, st.Appended)
	}
}

// Deterministic proof: ten Appends that arrive while a commit is held are
// written by exactly one transaction.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	entered, release := holdCommits(t, q)
	var wg sync.WaitGroup
	results := make([][]uint64, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = q.Append(context.Background(), msg("t", fmt.Sprint(i)))
		}()
	}
	<-entered
	testutil.WaitFor(t, 10*time.Second, "10 pending appends", func() bool { return pendingLen(q) == 10 })
	release()
	wg.Wait()
	for i, r := range results {
		if len(r) != 1 {
			t.Fatalf("append %d failed", i)
		}
	}
	if st := q.Stats(); st.Commits != 1 || st.Appended != 10 {
		t.Fatalf("Stats %+v, want 10 appends in 1 commit", st)
	}
}

func recSize(m Message) int64 {
	if m.Created.IsZero() {
		m.Created = time.Unix(1, 0)
	}
	return int64(encodedLen(&m))
}

func TestDropOldest(t *testing.T) {
	path := tempPath(t)
	m := msg("t", "0123456789")
	size := recSize(m)
	opts := Options{MaxBytes: 10 * size, Overflow: DropOldest}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for range 25 {
		seqs = append(seqs, mustAppend(t, q, m)...)
	}
	got := storedSeqs(t, q)
	if fmt.Sprint(got) != fmt.Sprint(seqs[15:]) {
		t.Fatalf("stored %v, want the newest 10 %v", got, seqs[15:])
	}
	st := q.Stats()
	if st.Dropped != 15 || st.Depth != 10 || st.Bytes != 10*size {
		t.Fatalf("Stats %+v, want Dropped 15 Depth 10 Bytes %d", st, 10*size)
	}
	// A batch of 3 drops the 3 oldest in the same commit.
	mustAppend(t, q, m, m, m)
	if got := storedSeqs(t, q); got[0] != seqs[18] {
		t.Fatalf("oldest after batch %d, want %d", got[0], seqs[18])
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openT(t, path, opts)
	if st := q.Stats(); st.Dropped != 18 || st.Depth != 10 || st.Bytes != 10*size {
		t.Fatalf("after reopen Stats %+v, want Dropped 18 persisted", st)
	}
}

func TestRejectStoresNothing(t *testing.T) {
	m := msg("t", "0123456789")
	size := recSize(m)
	q := openT(t, tempPath(t), Options{MaxBytes: 5 * size, Overflow: Reject})
	seqs := mustAppend(t, q, m, m, m, m)
	before := q.Stats()
	_, err := q.Append(ctxT(t), m, m)
	if !errors.Is(err, ErrFull) || errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append over the bound: %v, want ErrFull (not ErrTooLarge)", err)
	}
	after := q.Stats()
	if after.Depth != before.Depth || after.Bytes != before.Bytes || after.Dropped != 0 || len(storedSeqs(t, q)) != 4 {
		t.Fatalf("reject changed the queue: before %+v after %+v", before, after)
	}
	mustAppend(t, q, m) // exactly at the bound
	if _, err := q.Append(ctxT(t), m); !errors.Is(err, ErrFull) {
		t.Fatalf("Append at the bound: %v, want ErrFull", err)
	}
	// Acks make room (removed in the same commit as the next Append).
	q.Ack(seqs[0], seqs[1])
	mustAppend(t, q, m, m)
	if st := q.Stats(); st.Depth != 5 || st.Bytes != 5*size {
		t.Fatalf("Stats %+v", st)
	}
}

func TestTooLarge(t *testing.T) {
	for _, mode := range []Overflow{DropOldest, Reject} {
		t.Run(mode.String(), func(t *testing.T) {
			small := msg("t", "x")
			q := openT(t, tempPath(t), Options{MaxBytes: 100, Overflow: mode})
			mustAppend(t, q, small)
			big := msg("t", strings.Repeat("x", 100))
			_, err := q.Append(ctxT(t), big)
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrFull) {
				t.Fatalf("too-large message: %v, want ErrTooLarge wrapping ErrFull", err)
			}
			// A call that is too large together is refused whole, even with DropOldest.
			half := msg("t", strings.Repeat("x", 60))
			if _, err := q.Append(ctxT(t), half, half); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("too-large call: %v, want ErrTooLarge", err)
			}
			if st := q.Stats(); st.Depth != 1 || st.Dropped != 0 {
				t.Fatalf("Stats %+v: the oversized appends changed the queue", st)
			}
		})
	}
}

func TestInvalidMessage(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	_, err := q.Append(ctxT(t), msg("ok", "1"), Message{Topic: ""})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "message 2 of 2") {
		t.Fatalf("Append with an empty topic: %v", err)
	}
	if st := q.Stats(); st.Depth != 0 {
		t.Fatalf("an invalid call stored something: %+v", st)
	}
	if seqs, err := q.Append(ctxT(t)); err != nil || seqs != nil {
		t.Fatalf("empty Append = %v, %v", seqs, err)
	}
}

// One commit holding several Append calls: each call is all or nothing, and
// a call rejected for space does not fail the others.
func TestMixedBatchAllOrNothing(t *testing.T) {
	small := msg("t", strings.Repeat("s", 20))
	big := msg("t", strings.Repeat("b", 100))
	S, B := recSize(small), recSize(big)
	max := 4*S - 1 // small,small fits; then big does not (2S+B > max) but one more small does (3S <= max)
	if !(2*S+B > max && B <= max) {
		t.Fatalf("bad test sizes S=%d B=%d", S, B)
	}
	q := openT(t, tempPath(t), Options{MaxBytes: max, Overflow: Reject})
	entered, release := holdCommits(t, q)

	type result struct {
		seqs []uint64
		err  error
	}
	calls := [][]Message{{small, small}, {big}, {small}, {small}}
	results := make([]result, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := q.Append(context.Background(), c...)
			results[i] = result{s, err}
		}()
		if i == 0 {
			<-entered
		}
		testutil.WaitFor(t, 10*time.Second, "the call to be pending", func() bool { return pendingLen(q) == i+1 })
	}
	// An invalid call fails on its own, before the commit.
	if _, err := q.Append(ctxT(t), small, Message{Topic: "x", QoS: 9}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid call: %v", err)
	}
	release()
	wg.Wait()

	if results[0].err != nil || len(results[0].seqs) != 2 {
		t.Fatalf("call 0 (fits): %+v", results[0])
	}
	if !errors.Is(results[1].err, ErrFull) || errors.Is(results[1].err, ErrTooLarge) || results[1].seqs != nil {
		t.Fatalf("call 1 (over the bound after call 0): %+v, want ErrFull and no seqs", results[1])
	}
	if results[2].err != nil || len(results[2].seqs) != 1 {
		t.Fatalf("call 2 (fits): %+v", results[2])
	}
	if !errors.Is(results[3].err, ErrFull) {
		t.Fatalf("call 3 (no room left): %+v", results[3])
	}
	got := stored(t, q)
	if len(got) != 3 || got[0].Seq != results[0].seqs[0] || got[2].Seq != results[2].seqs[0] || got[2].Seq != got[1].Seq+1 {
		t.Fatalf("stored %d messages: %+v", len(got), got)
	}
	if st := q.Stats(); st.Commits != 1 || st.Bytes != 3*S {
		t.Fatalf("Stats %+v, want one commit holding exactly calls 0 and 2", st)
	}
}

func TestAppendCtxCanceledBeforeCommit(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	entered, release := holdCommits(t, q)
	go func() { _ = q.Flush(context.Background()) }() // occupies the committer
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := q.Append(ctx, msg("t", "x"))
		done <- err
	}()
	testutil.WaitFor(t, 10*time.Second, "the append to be pending", func() bool { return pendingLen(q) == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append = %v, want context.Canceled", err)
	}
	release()
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Depth != 0 {
		t.Fatalf("a withdrawn Append was stored: %+v", st)
	}
}

func TestNextBlocksUntilAppend(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	first := mustAppend(t, q, msg("t", "1"))
	got := make(chan []Message, 1)
	errc := make(chan error, 1)
	go func() {
		msgs, err := q.Next(context.Background(), first[0], 10)
		errc <- err
		got <- msgs
	}()
	select {
	case <-errc:
		t.Fatal("Next returned with nothing after the given seq")
	case <-time.After(50 * time.Millisecond):
	}
	second := mustAppend(t, q, msg("t", "2"))
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next was not woken by Append")
	}
	msgs := <-got
	if len(msgs) != 1 || msgs[0].Seq != second[0] || string(msgs[0].Payload) != "2" {
		t.Fatalf("Next = %+v", msgs)
	}
	// Acked messages do not wake or satisfy Next.
	q.Ack(second[0])
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if msgs, err := q.Next(ctx, first[0], 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next over an acked message = %+v, %v", msgs, err)
	}
}

func TestNextHonoursContextAndClose(t *testing.T) {
	q, err := Open(tempPath(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := q.Next(ctx, 0, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on empty queue with deadline: %v", err)
	}
	if _, err := q.Next(ctxT(t), 0, 0); err == nil {
		t.Fatal("Next with max 0 succeeded")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background(), 0, 1)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Next on an empty queue returned: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Next after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake Next")
	}
	if _, err := q.Next(ctxT(t), 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := q.Append(ctxT(t), msg("t", "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := q.Flush(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := q.WaitAcked(ctxT(t), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitAcked after Close: %v", err)
	}
	q.Ack(1) // no-op, no panic
	_ = q.Stats()
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestWaitAcked(t *testing.T) {
	m := msg("t", "0123456789")
	q := openT(t, tempPath(t), Options{MaxBytes: 3 * recSize(m), Overflow: DropOldest})
	seqs := mustAppend(t, q, m, m, m)

	// Registered before the ack.
	errc := make(chan error, 2)
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[1]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[1]]) == 1 })
	q.Ack(seqs[1])
	if err := <-errc; err != nil {
		t.Fatalf("WaitAcked(acked) = %v", err)
	}
	// Late: acked but maybe not removed, then removed.
	if err := q.WaitAcked(ctxT(t), seqs[1]); err != nil {
		t.Fatalf("late WaitAcked(acked) = %v", err)
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := q.WaitAcked(ctxT(t), seqs[1]); err != nil {
		t.Fatalf("late WaitAcked(acked, removed) = %v", err)
	}

	// Registered before the drop.
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[0]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[0]]) == 1 })
	more := mustAppend(t, q, m, m, m) // drops seqs[0] and seqs[2]
	if err := <-errc; !errors.Is(err, ErrDropped) {
		t.Fatalf("WaitAcked(dropped) = %v, want ErrDropped", err)
	}
	if err := q.WaitAcked(ctxT(t), seqs[2]); !errors.Is(err, ErrDropped) {
		t.Fatalf("late WaitAcked(dropped) = %v, want ErrDropped", err)
	}
	q.Ack(seqs[2]) // acking a dropped seq is a no-op
	if st := q.Stats(); st.Inflight != 0 || st.Dropped != 2 {
		t.Fatalf("Stats %+v", st)
	}

	// Context.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := q.WaitAcked(ctx, more[0]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitAcked(ctx) = %v", err)
	}
	q.mu.Lock()
	leftover := len(q.waiters)
	q.mu.Unlock()
	if leftover != 0 {
		t.Fatalf("%d waiters left after ctx ended", leftover)
	}
	// Never assigned.
	if err := q.WaitAcked(ctxT(t), more[1]+100); err == nil || errors.Is(err, ErrDropped) {
		t.Fatalf("WaitAcked(unassigned) = %v, want an error", err)
	}
	// Close wakes a waiter.
	go func() { errc <- q.WaitAcked(context.Background(), more[1]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[more[1]]) == 1 })
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitAcked at Close = %v", err)
	}
}

func TestStatsOldestAndBytes(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	if st := q.Stats(); !st.Oldest.IsZero() || st.Depth != 0 {
		t.Fatalf("empty Stats %+v", st)
	}
	t1 := time.Unix(1700000000, 0)
	a := Message{Topic: "t", Payload: []byte("aaaa"), Created: t1}
	b := Message{Topic: "t", Payload: []byte("bb"), Created: t1.Add(time.Minute)}
	seqs := mustAppend(t, q, a, b)
	st := q.Stats()
	if !st.Oldest.Equal(t1) || st.Bytes != recSize(a)+recSize(b) || st.Depth != 2 {
		t.Fatalf("Stats %+v", st)
	}
	q.Ack(seqs[0])
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st = q.Stats()
	if !st.Oldest.Equal(t1.Add(time.Minute)) || st.Bytes != recSize(b) || st.Depth != 1 || st.Acked != 1 {
		t.Fatalf("after ack Stats %+v", st)
	}
}

func TestFutureFormatVersionRefused(t *testing.T) {
	path := tempPath(t)
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q, msg("t", "keep me"))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	setVersion := func(v uint64) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(keyFormatVersion, be64(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	setVersion(FormatVersion + 1)
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", FormatVersion+1)) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a newer format: %v", err)
	}
	// Nothing was wiped: with the version restored the message is there.
	setVersion(FormatVersion)
	q = openT(t, path, Options{})
	if msgs := stored(t, q); len(msgs) != 1 || string(msgs[0].Payload) != "keep me" {
		t.Fatalf("after refusing a newer format the data changed: %+v", msgs)
	}
}

func TestForeignBoltFileRefused(t *testing.T) {
	path := tempPath(t)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "not a queue file") {
		t.Fatalf("Open of a foreign bbolt file: %v", err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := tempPath(t)
	openT(t, path, Options{})
	start := time.Now()
	q2, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		q2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %s", d)
	}
}

func TestOpenChecks(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing", "q.db"), Options{})
	if err == nil || !strings.Contains(err.Error(), "create it first") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open in a missing directory: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "q.db"), Options{MaxBytes: -1}); err == nil {
		t.Fatal("negative MaxBytes accepted")
	}
	if _, err := Open(filepath.Join(dir, "q.db"), Options{Overflow: 7}); err == nil {
		t.Fatal("unknown overflow accepted")
	}
	path := filepath.Join(dir, "q.db")
	openT(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %o, want 600", perm)
	}
}

// A record that cannot be decoded must not block the queue forever.
func TestCorruptRecordIsDiscarded(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	seqs := mustAppend(t, q, msg("t", "1"), msg("t", "2"), msg("t", "3"))
	if err := q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(dataBucket).Put(be64(seqs[1]), []byte{9, 9, 9})
	}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[1]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[1]]) == 1 })
	msgs, err := q.Next(ctxT(t), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Seq != seqs[0] || msgs[1].Seq != seqs[2] {
		t.Fatalf("Next around a corrupt record = %+v", msgs)
	}
	if err := <-errc; !errors.Is(err, ErrDropped) {
		t.Fatalf("WaitAcked(corrupt) = %v", err)
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Corrupt != 1 || st.Depth != 2 || st.Acked != 0 {
		t.Fatalf("Stats %+v", st)
	}
}

package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil"
)

func deadSeqs(t testing.TB, q *Queue) []uint64 {
	t.Helper()
	dls, err := q.DeadLetters(0, 1<<20)
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	var seqs []uint64
	for _, d := range dls {
		seqs = append(seqs, d.Seq)
	}
	return seqs
}

func TestDeadLetterMovesRecord(t *testing.T) {
	path := tempPath(t)
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Minute).Round(0)
	seqs := mustAppend(t, q, msg("t", "1"), Message{Topic: "bad/topic", Payload: []byte("poison"), QoS: 1, Retain: true, Created: created}, msg("t", "3"))
	before := q.Stats()

	// Cheap and immediate: with the committer held, DeadLetter returns and
	// Next already skips the seq.
	entered, release := holdCommits(t, q)
	errc := make(chan error, 1)
	go func() { errc <- q.WaitAcked(ctxT(t), seqs[1]) }()
	testutil.WaitFor(t, 10*time.Second, "the waiter", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters[seqs[1]]) == 1 })
	q.DeadLetter(seqs[1], "PUBACK 0x87 not authorized")
	<-entered
	msgs, err := q.Next(ctxT(t), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Seq != seqs[0] || msgs[1].Seq != seqs[2] {
		t.Fatalf("Next before the commit returned %+v, want seqs %d and %d", msgs, seqs[0], seqs[2])
	}
	werr := <-errc
	if !errors.Is(werr, ErrDeadLettered) || !strings.Contains(werr.Error(), "PUBACK 0x87 not authorized") {
		t.Fatalf("WaitAcked(dead-lettered) = %v, want ErrDeadLettered with the reason", werr)
	}
	if st := q.Stats(); st.Inflight != 1 || st.DeadLetters != 0 || st.Depth != 3 {
		t.Fatalf("Stats before the commit %+v, want Inflight 1, nothing moved yet", st)
	}
	// Ack of a dead-lettered seq is a no-op; so is a second DeadLetter.
	q.Ack(seqs[1])
	q.DeadLetter(seqs[1], "again")
	release()
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	st := q.Stats()
	size := recSize(Message{Topic: "bad/topic", Payload: []byte("poison"), QoS: 1, Retain: true})
	if st.Depth != 2 || st.Bytes != before.Bytes-size || st.DeadLetters != 1 || st.DeadLettered != 1 || st.Acked != 0 || st.Inflight != 0 || st.DeadLetterBytes <= size {
		t.Fatalf("Stats after the commit %+v (before %+v)", st, before)
	}
	dls, err := q.DeadLetters(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 {
		t.Fatalf("DeadLetters = %+v", dls)
	}
	d := dls[0]
	if d.Seq != seqs[1] || d.Topic != "bad/topic" || string(d.Payload) != "poison" || !d.Retain || d.QoS != 1 ||
		!d.Created.Equal(created) || d.Reason != "PUBACK 0x87 not authorized" || time.Since(d.At) > time.Minute || d.At.After(time.Now()) {
		t.Fatalf("dead letter %+v", d)
	}
	if err := q.WaitAcked(ctxT(t), seqs[1]); !errors.Is(err, ErrDeadLettered) || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("late WaitAcked(dead letter) = %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything persists.
	q = openT(t, path, Options{})
	if st := q.Stats(); st.DeadLetters != 1 || st.DeadLettered != 1 || st.Depth != 2 {
		t.Fatalf("after reopen Stats %+v", st)
	}
	if got := deadSeqs(t, q); !slices.Equal(got, []uint64{seqs[1]}) {
		t.Fatalf("after reopen dead letters %v", got)
	}
	if err := q.WaitAcked(ctxT(t), seqs[1]); !errors.Is(err, ErrDeadLettered) || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("WaitAcked(dead letter) after reopen = %v", err)
	}
	if got := storedSeqs(t, q); !slices.Equal(got, []uint64{seqs[0], seqs[2]}) {
		t.Fatalf("after reopen queue %v", got)
	}
}

func TestDeadLetterNoOps(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	seqs := mustAppend(t, q, msg("t", "1"), msg("t", "2"))
	q.Ack(seqs[0])
	q.DeadLetter(seqs[0], "acked already") // no-op
	q.DeadLetter(0, "zero")
	q.DeadLetter(seqs[1]+5, "never assigned")
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.DeadLetters != 0 || st.DeadLettered != 0 || st.Acked != 1 || st.Depth != 1 {
		t.Fatalf("Stats %+v", st)
	}
	if _, err := q.DeadLetters(0, 0); err == nil {
		t.Fatal("DeadLetters with max 0 succeeded")
	}
}

func TestRequeue(t *testing.T) {
	q := openT(t, tempPath(t), Options{})
	old := time.Now().Add(-time.Hour)
	var in []Message
	for i := range 6 {
		in = append(in, Message{Topic: fmt.Sprintf("t/%d", i), Payload: []byte{byte(i), 0xff}, QoS: byte(i % 2), Created: old})
	}
	seqs := mustAppend(t, q, in...)
	q.DeadLetter(seqs[4], "r4")
	q.DeadLetter(seqs[1], "r1")
	q.DeadLetter(seqs[2], "r2")
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := deadSeqs(t, q); !slices.Equal(got, []uint64{seqs[1], seqs[2], seqs[4]}) {
		t.Fatalf("dead letters %v, want ordered by original seq", got)
	}
	// Paging.
	page, err := q.DeadLetters(seqs[1], 1)
	if err != nil || len(page) != 1 || page[0].Seq != seqs[2] || page[0].Reason != "r2" {
		t.Fatalf("DeadLetters(after %d, 1) = %+v, %v", seqs[1], page, err)
	}

	// An unknown seq fails the whole call, naming it; nothing moves.
	_, err = q.Requeue(ctxT(t), seqs[4], seqs[0], 999)
	if !errors.Is(err, ErrNotDeadLettered) || !strings.Contains(err.Error(), fmt.Sprint(seqs[0])) || !strings.Contains(err.Error(), "999") {
		t.Fatalf("Requeue with unknown seqs: %v", err)
	}
	if got := deadSeqs(t, q); len(got) != 3 {
		t.Fatalf("a failed Requeue moved something: dead letters %v", got)
	}

	// Requeue out of order and with a duplicate: new seqs at the tail, in
	// original order, aligned with the arguments.
	before := q.Stats()
	newSeqs, err := q.Requeue(ctxT(t), seqs[4], seqs[1], seqs[4])
	if err != nil {
		t.Fatal(err)
	}
	if len(newSeqs) != 3 || newSeqs[0] != newSeqs[2] || newSeqs[1] <= seqs[5] || newSeqs[0] != newSeqs[1]+1 {
		t.Fatalf("Requeue returned %v (last seq before %d)", newSeqs, seqs[5])
	}
	// Durable before return: seen by a fresh read without Flush.
	if got := deadSeqs(t, q); !slices.Equal(got, []uint64{seqs[2]}) {
		t.Fatalf("dead letters after Requeue %v", got)
	}
	st := q.Stats()
	if st.Depth != before.Depth+2 || st.DeadLetters != 1 || st.DeadLettered != 3 {
		t.Fatalf("Stats after Requeue %+v (before %+v)", st, before)
	}
	msgs, err := q.Next(ctxT(t), seqs[5], 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Seq != newSeqs[1] || msgs[0].Topic != "t/1" || !bytes.Equal(msgs[1].Payload, []byte{4, 0xff}) || msgs[1].QoS != 0 {
		t.Fatalf("requeued messages %+v", msgs)
	}
	if time.Since(msgs[0].Created) > time.Minute {
		t.Fatalf("requeued Created %s, want the time of the requeue", msgs[0].Created)
	}

	// Delete.
	n, err := q.DeleteDeadLetters(ctxT(t), seqs[2], seqs[2], 12345)
	if err != nil || n != 1 {
		t.Fatalf("DeleteDeadLetters = %d, %v; want 1", n, err)
	}
	if st := q.Stats(); st.DeadLetters != 0 || st.DeadLetterBytes != 0 {
		t.Fatalf("Stats after delete %+v", st)
	}
	if n, err := q.DeleteDeadLetters(ctxT(t)); n != 0 || err != nil {
		t.Fatalf("empty DeleteDeadLetters = %d, %v", n, err)
	}
	if s, err := q.Requeue(ctxT(t)); s != nil || err != nil {
		t.Fatalf("empty Requeue = %v, %v", s, err)
	}
}

func TestRequeueRespectsMaxBytes(t *testing.T) {
	m := msg("t", "0123456789")
	size := recSize(m)
	q := openT(t, tempPath(t), Options{MaxBytes: 3 * size, Overflow: Reject})
	seqs := mustAppend(t, q, m, m, m)
	q.DeadLetter(seqs[0], "x")
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Dead letters do not count toward MaxBytes: there is room for one.
	mustAppend(t, q, m)
	if st := q.Stats(); st.Bytes != 3*size || st.DeadLetters != 1 {
		t.Fatalf("Stats %+v", st)
	}
	_, err := q.Requeue(ctxT(t), seqs[0])
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Requeue into a full queue (reject) = %v, want ErrFull", err)
	}
	if got := deadSeqs(t, q); !slices.Equal(got, []uint64{seqs[0]}) {
		t.Fatalf("a rejected Requeue moved the dead letter: %v", got)
	}
	q.Ack(seqs[1])
	if _, err := q.Requeue(ctxT(t), seqs[0]); err != nil {
		t.Fatalf("Requeue after room was made: %v", err)
	}
}

func TestDeadLetterBound(t *testing.T) {
	path := tempPath(t)
	opts := Options{MaxDeadLetters: 3}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range 8 {
		seqs = append(seqs, mustAppend(t, q, msg("t", fmt.Sprint(i)))...)
	}
	for _, s := range seqs[:5] {
		q.DeadLetter(s, "refused")
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := deadSeqs(t, q); !slices.Equal(got, seqs[2:5]) {
		t.Fatalf("dead letters %v, want the newest 3 %v", got, seqs[2:5])
	}
	st := q.Stats()
	if st.DeadLetters != 3 || st.DeadLettered != 5 || st.DeadLettersDropped != 2 || st.Depth != 3 {
		t.Fatalf("Stats %+v", st)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Persisted; and a lower bound at the next Open trims at once.
	q = openT(t, path, Options{MaxDeadLetters: 1})
	st = q.Stats()
	if st.DeadLetters != 1 || st.DeadLettered != 5 || st.DeadLettersDropped != 4 {
		t.Fatalf("after reopen with MaxDeadLetters 1: Stats %+v", st)
	}
	if got := deadSeqs(t, q); !slices.Equal(got, seqs[4:5]) {
		t.Fatalf("after reopen dead letters %v", got)
	}
	if _, err := Open(tempPath(t), Options{MaxDeadLetters: -1}); err == nil {
		t.Fatal("negative MaxDeadLetters accepted")
	}
}

// A DeadLetter that arrives while a commit is being written, for a record
// that commit's DropOldest then meets, is carried out as a dead letter and
// not counted as a drop.
func TestDropOldestMeetsLateDeadLetter(t *testing.T) {
	m := msg("t", "0123456789")
	q := openT(t, tempPath(t), Options{MaxBytes: 2 * recSize(m), Overflow: DropOldest})
	seqs := mustAppend(t, q, m, m)
	var once bool
	q.testHookWrite = func() error {
		if !once {
			once = true
			q.DeadLetter(seqs[0], "late")
		}
		return nil
	}
	mustAppend(t, q, m) // drops seqs[0], which is dead-lettered meanwhile
	q.testHookWrite = nil
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Dropped != 0 || st.DeadLettered != 1 || st.DeadLetters != 1 || st.Depth != 2 || st.Inflight != 0 {
		t.Fatalf("Stats %+v", st)
	}
	if got := deadSeqs(t, q); !slices.Equal(got, seqs[:1]) {
		t.Fatalf("dead letters %v", got)
	}
}

func TestDeadLetterReason(t *testing.T) {
	long := strings.Repeat("é", 1000) // 2000 bytes
	if got := cleanReason(long); len(got) > maxReasonLen || !strings.HasPrefix(long, got) || len(got) < maxReasonLen-1 {
		t.Fatalf("cleanReason kept %d bytes", len(got))
	}
	if got := cleanReason("a\xffb"); got != "a\uFFFDb" {
		t.Fatalf("cleanReason(invalid UTF-8) = %q", got)
	}
}

// FuzzDecodeDeadLetter: the decoder never panics, wraps ErrCorrupt, and what
// it accepts re-encodes to the same bytes.
func FuzzDecodeDeadLetter(f *testing.F) {
	at := time.Unix(1800000000, 7)
	m := Message{Topic: "a/b", Payload: []byte("x"), QoS: 1, Created: at}
	f.Add(encodeDeadLetter("PUBACK 0x87", at, encodeRecord(&m)))
	f.Add(encodeDeadLetter("", at, encodeRecord(&m)))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte{}, b...)
		d, err := decodeDeadLetter(b)
		if !bytes.Equal(in, b) {
			t.Fatal("decodeDeadLetter modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again := encodeDeadLetter(d.Reason, d.At, encodeRecord(&d.Message))
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, again)
		}
	})
}

func TestDeadLetterAfterClose(t *testing.T) {
	path := tempPath(t)
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seqs := mustAppend(t, q, msg("t", "1"))
	q.DeadLetter(seqs[0], "at close")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q.DeadLetter(seqs[0], "after close") // no-op, no panic
	if _, err := q.DeadLetters(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeadLetters after Close = %v", err)
	}
	if _, err := q.Requeue(context.Background(), seqs[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Requeue after Close = %v", err)
	}
	if _, err := q.DeleteDeadLetters(context.Background(), seqs[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteDeadLetters after Close = %v", err)
	}
	// Close committed the pending move.
	q = openT(t, path, Options{})
	if got := deadSeqs(t, q); !slices.Equal(got, seqs) || q.Stats().Depth != 0 {
		t.Fatalf("after Close and reopen: dead letters %v, Stats %+v", got, q.Stats())
	}
}

package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openStoreT opens a store with lanes named names (LaneOptions from lane when given) that is
// closed when the test ends.
func openStoreT(t testing.TB, path string, o StoreOptions) *Store {
	t.Helper()
	s, err := OpenStore(path, o)
	if err != nil {
		t.Fatalf("OpenStore(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func lanes(names ...string) StoreOptions {
	o := StoreOptions{}
	for _, n := range names {
		o.Lanes = append(o.Lanes, LaneOptions{Name: n})
	}
	return o
}

// laneContent is what a lane holds: topic/payload per seq.
func laneContent(t testing.TB, q *Queue) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for _, m := range stored(t, q) {
		out[m.Seq] = m.Topic + " " + string(m.Payload)
	}
	return out
}

func fileFormat(t testing.TB, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	_ = db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(metaBucket).Get(keyFormatVersion))
		return nil
	})
	return v
}

// One Append stores each message in every lane of its targets in one commit, under one seq; the
// lanes hand out only their own messages, in order.
func TestStoreFanOutOneCommit(t *testing.T) {
	s := openStoreT(t, tempPath(t), lanes("aws", "plant"))
	aws, plant := s.Lanes()[0], s.Lanes()[1]
	both, a, p := Lane(0)|Lane(1), Lane(0), Lane(1)
	before := s.Stats().Commits
	seqs, err := s.Append(ctxT(t),
		[]Message{msg("telemetry/1", "one"), msg("audit/1", "two"), msg("alarms/1", "three"), msg("telemetry/2", "four")},
		[]Targets{both, a, p, both})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Stats().Commits - before; c != 1 {
		t.Fatalf("%d commits for one Append, want 1", c)
	}
	if !(seqs[0] < seqs[1] && seqs[1] < seqs[2] && seqs[2] < seqs[3]) {
		t.Fatalf("seqs %v not increasing", seqs)
	}
	wantAWS := map[uint64]string{seqs[0]: "telemetry/1 one", seqs[1]: "audit/1 two", seqs[3]: "telemetry/2 four"}
	wantPlant := map[uint64]string{seqs[0]: "telemetry/1 one", seqs[2]: "alarms/1 three", seqs[3]: "telemetry/2 four"}
	if got := laneContent(t, aws); fmt.Sprint(got) != fmt.Sprint(wantAWS) {
		t.Fatalf("aws holds %v, want %v", got, wantAWS)
	}
	if got := laneContent(t, plant); fmt.Sprint(got) != fmt.Sprint(wantPlant) {
		t.Fatalf("plant holds %v, want %v", got, wantPlant)
	}
	if st := aws.Stats(); st.Depth != 3 || st.Appended != 3 {
		t.Fatalf("aws stats %+v", st)
	}
	if st := s.Stats(); st.Depth != 6 {
		t.Fatalf("store stats %+v, want depth 6 (a message per lane it is in)", st)
	}
	// Bad targets are refused before anything is stored.
	for _, to := range []Targets{0, Lane(2), Lane(0) | Lane(5)} {
		if _, err := s.Append(ctxT(t), []Message{msg("x", "y")}, []Targets{to}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("targets %#x: %v, want ErrInvalid", uint64(to), err)
		}
	}
	if _, err := s.Append(ctxT(t), []Message{msg("x", "y")}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no targets: %v", err)
	}
}

// Each lane drains on its own: acks in one lane remove the message there only; it leaves the file
// when the last lane has it; a reopen (lanes in another order) finds each lane's messages by name.
func TestStoreLanesDrainIndependently(t *testing.T) {
	path := tempPath(t)
	s, err := OpenStore(path, lanes("aws", "plant"))
	if err != nil {
		t.Fatal(err)
	}
	both := Lane(0) | Lane(1)
	var msgs []Message
	var to []Targets
	for i := range 50 {
		msgs = append(msgs, msg("t", fmt.Sprint(i)))
		to = append(to, both)
	}
	seqs, err := s.Append(ctxT(t), msgs, to)
	if err != nil {
		t.Fatal(err)
	}
	aws, plant := s.Lanes()[0], s.Lanes()[1]
	got, err := aws.Next(ctxT(t), 0, 100)
	if err != nil || len(got) != 50 {
		t.Fatalf("aws Next: %d, %v", len(got), err)
	}
	for i, m := range got {
		if m.Seq != seqs[i] || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("aws message %d: %+v", i, m)
		}
		aws.Ack(m.Seq)
	}
	// plant has taken nothing: aws's delivery waits for nothing of plant's.
	if err := aws.WaitAcked(ctxT(t), seqs[49]); err != nil {
		t.Fatalf("aws WaitAcked: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = s.WaitAcked(ctx, seqs[0], both)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Store.WaitAcked with plant not delivered: %v, want the deadline", err)
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := aws.Stats(); st.Depth != 0 || st.Acked != 50 {
		t.Fatalf("aws after acks: %+v", st)
	}
	if st := plant.Stats(); st.Depth != 50 {
		t.Fatalf("plant after aws's acks: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStoreT(t, path, lanes("plant", "aws"))
	if q, i := s.Lane("aws"); q.Stats().Depth != 0 || i != 1 {
		t.Fatalf("aws after reopen: %+v at %d", q.Stats(), i)
	}
	plant, _ = s.Lane("plant")
	got, err = plant.Next(ctxT(t), 0, 100)
	if err != nil || len(got) != 50 {
		t.Fatalf("plant after reopen: %d, %v", len(got), err)
	}
	for i, m := range got {
		if m.Seq != seqs[i] {
			t.Fatalf("plant order: message %d has seq %d, want %d", i, m.Seq, seqs[i])
		}
		plant.Ack(m.Seq)
	}
	if err := s.WaitAcked(ctxT(t), seqs[49], Lane(0)|Lane(1)); err != nil {
		t.Fatalf("Store.WaitAcked once both have it: %v", err)
	}
	// Numbering goes on after the last seq of the file, for every lane.
	next, err := s.Append(ctxT(t), []Message{msg("t", "later")}, []Targets{Lane(1)})
	if err != nil || next[0] <= seqs[49] {
		t.Fatalf("seq after reopen %v, %v", next, err)
	}
}

// With Reject in one target lane, a message that does not fit there is stored nowhere.
func TestStoreRejectInOneLaneStoresNothing(t *testing.T) {
	o := StoreOptions{Lanes: []LaneOptions{{Name: "aws"}, {Name: "plant", MaxBytes: 2048, Overflow: Reject}}}
	s := openStoreT(t, tempPath(t), o)
	big := Message{Topic: "t", Payload: bytes.Repeat([]byte("x"), 900), QoS: 1}
	both := Lane(0) | Lane(1)
	if _, err := s.Append(ctxT(t), []Message{big, big}, []Targets{both, both}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctxT(t), []Message{big}, []Targets{both})
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), `lane "plant"`) {
		t.Fatalf("third message: %v, want ErrFull naming plant", err)
	}
	if d := s.Lanes()[0].Stats().Depth; d != 2 {
		t.Fatalf("aws holds %d messages after the refused Append, want 2 (all or nothing)", d)
	}
	// aws alone still takes it.
	if _, err := s.Append(ctxT(t), []Message{big}, []Targets{Lane(0)}); err != nil {
		t.Fatal(err)
	}
	// A call bigger than a lane's bound is refused at once.
	if _, err := s.Append(ctxT(t), []Message{big, big, big}, []Targets{Lane(1), Lane(1), Lane(1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large for plant: %v", err)
	}
}

// The overall bound: past it, drop-oldest drops the oldest records of all lanes; reject refuses.
func TestStoreOverallBound(t *testing.T) {
	rec := int64(encodedLen(&Message{Topic: "t", Payload: bytes.Repeat([]byte("x"), 100)}))
	o := lanes("a", "b")
	o.MaxBytes = 4 * rec
	s := openStoreT(t, tempPath(t), o)
	m := func(p string) Message {
		return Message{Topic: "t", Payload: []byte(p + strings.Repeat("x", 100-len(p))), QoS: 1}
	}
	seqs, err := s.Append(ctxT(t), []Message{m("1"), m("2"), m("3")}, []Targets{Lane(0), Lane(1), Lane(0)})
	if err != nil {
		t.Fatal(err)
	}
	// Two more records (one message for both lanes) make 5 > 4: the oldest, seq 1 in a, goes.
	if _, err := s.Append(ctxT(t), []Message{m("4")}, []Targets{Lane(0) | Lane(1)}); err != nil {
		t.Fatal(err)
	}
	a, b := s.Lanes()[0], s.Lanes()[1]
	if st := a.Stats(); st.Depth != 2 || st.Dropped != 1 {
		t.Fatalf("a: %+v, want its oldest dropped", st)
	}
	if st := b.Stats(); st.Depth != 2 || st.Dropped != 0 {
		t.Fatalf("b: %+v", st)
	}
	if err := a.WaitAcked(ctxT(t), seqs[0]); !errors.Is(err, ErrDropped) {
		t.Fatalf("dropped seq: %v", err)
	}
	if st := s.Stats(); st.Bytes > 4*rec {
		t.Fatalf("store holds %d bytes, the overall bound is %d", st.Bytes, 4*rec)
	}

	o.Overflow = Reject
	r := openStoreT(t, tempPath(t), o)
	if _, err := r.Append(ctxT(t), []Message{m("1"), m("2")}, []Targets{Lane(0) | Lane(1), Lane(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Append(ctxT(t), []Message{m("3")}, []Targets{Lane(0) | Lane(1)}); !errors.Is(err, ErrFull) {
		t.Fatalf("over the overall bound with reject: %v", err)
	}
	if _, err := r.Append(ctxT(t), []Message{m("3")}, []Targets{Lane(1)}); err != nil {
		t.Fatalf("one more record fits: %v", err)
	}
	if _, err := r.Append(ctxT(t), []Message{m("1"), m("2"), m("3")}, []Targets{Lane(0) | Lane(1), Lane(0) | Lane(1), Lane(1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a call over the overall bound: %v", err)
	}
}

// Expiry and dead letters are per lane; Store.WaitAcked names the lane that failed.
func TestStoreExpiryAndDeadLettersPerLane(t *testing.T) {
	o := StoreOptions{Lanes: []LaneOptions{{Name: "aws", MaxAge: time.Hour}, {Name: "plant", MaxAge: time.Millisecond}}}
	s := openStoreT(t, tempPath(t), o)
	both := Lane(0) | Lane(1)
	seqs, err := s.Append(ctxT(t), []Message{msg("a", "1"), msg("a", "2")}, []Targets{both, both})
	if err != nil {
		t.Fatal(err)
	}
	aws, plant := s.Lanes()[0], s.Lanes()[1]
	time.Sleep(5 * time.Millisecond) // plant's max age passes
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	got, err := plant.Next(short, 0, 10)
	cancel()
	if len(got) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("plant handed out %+v (%v); its messages expired", got, err)
	}
	got, err = aws.Next(ctxT(t), 0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("aws Next: %v, %v", got, err)
	}
	aws.Ack(got[0].Seq)
	aws.DeadLetter(got[1].Seq, "refused by aws")
	if err := s.WaitAcked(ctxT(t), seqs[0], Lane(0)); err != nil {
		t.Fatalf("aws delivered seq %d: %v", seqs[0], err)
	}
	err = s.WaitAcked(ctxT(t), seqs[1], both)
	if !errors.Is(err, ErrDeadLettered) || !strings.Contains(err.Error(), `lane "aws"`) {
		t.Fatalf("WaitAcked of a message dead-lettered by aws: %v", err)
	}
	if err := plant.WaitAcked(ctxT(t), seqs[1]); !errors.Is(err, ErrExpired) {
		t.Fatalf("plant: %v, want expired", err)
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if dl, err := aws.DeadLetters(0, 10); err != nil || len(dl) != 1 || dl[0].Seq != seqs[1] {
		t.Fatalf("aws dead letters %+v, %v", dl, err)
	}
	if dl, err := plant.DeadLetters(0, 10); err != nil || len(dl) != 0 {
		t.Fatalf("plant dead letters %+v, %v", dl, err)
	}
	if st := plant.Stats(); st.Expired != 2 || st.Depth != 0 {
		t.Fatalf("plant stats %+v", st)
	}
	// A requeued dead letter goes back to its own lane only.
	nseq, err := aws.Requeue(ctxT(t), seqs[1])
	if err != nil {
		t.Fatal(err)
	}
	if st := plant.Stats(); st.Depth != 0 {
		t.Fatalf("plant after aws's requeue: %+v", st)
	}
	if c := laneContent(t, aws); c[nseq[0]] != "a 2" || len(c) != 1 {
		t.Fatalf("aws after requeue: %v", c)
	}
}

// A lane no longer configured is kept in the file, untouched, and comes back with its name; a file
// with one lane opened with one other name is that lane renamed.
func TestStoreOrphanAndRenamedLanes(t *testing.T) {
	path := tempPath(t)
	s, err := OpenStore(path, lanes("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctxT(t), []Message{msg("t", "for b"), msg("t", "for a")}, []Targets{Lane(1), Lane(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(path, lanes("a", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Lane("c"); c.Stats().Depth != 0 {
		t.Fatalf("new lane c holds %+v", c.Stats())
	}
	if _, err := s.Append(ctxT(t), []Message{msg("t", "for c")}, []Targets{Lane(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreT(t, path, lanes("b", "c", "a"))
	for name, want := range map[string]string{"a": "t for a", "b": "t for b", "c": "t for c"} {
		q, _ := s.Lane(name)
		c := laneContent(t, q)
		if len(c) != 1 {
			t.Fatalf("lane %s holds %v, want %q", name, c, want)
		}
		for _, v := range c {
			if v != want {
				t.Fatalf("lane %s holds %q, want %q", name, v, want)
			}
		}
	}

	one := tempPath(t)
	q, err := Open(one, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q, msg("t", "queued under default"))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	r := openStoreT(t, one, lanes("aws"))
	if c := laneContent(t, r.Lanes()[0]); len(c) != 1 {
		t.Fatalf("the only lane renamed to aws holds %v", c)
	}
}

// testdata/queue-format1-816ee48.db was written by the release before lanes (commit 816ee48, format
// 1) with TestWriteFormat1Fixture (see format1Fixture; same content: seqs 51..300 queued, 51..55
// dead letters), then cut to its last used page (bbolt had grown it to 16 MiB with zeros past
// 104 KiB). An OTA upgrade opens it in place: everything is kept for the lane named "default", or
// the only lane, or else the first; the file is format 2 afterwards.
const releaseFixture = "testdata/queue-format1-816ee48.db"

func TestStoreUpgradesReleaseFileInPlace(t *testing.T) {
	for _, tc := range []struct {
		lanes []string
		keeps string
	}{
		{[]string{"plant", "default"}, "default"},
		{[]string{"aws"}, "aws"},
		{[]string{"default"}, "default"},
		{[]string{"aws", "plant"}, "aws"},
	} {
		t.Run(strings.Join(tc.lanes, ","), func(t *testing.T) {
			data, err := os.ReadFile(releaseFixture)
			if err != nil {
				t.Fatalf("the committed fixture is missing: %v", err)
			}
			path := filepath.Join(t.TempDir(), "queue.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if v := fileFormat(t, path); v != 1 {
				t.Fatalf("fixture is format %d, want 1", v)
			}
			s, err := OpenStore(path, lanes(tc.lanes...))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if v := fileFormat(t, path); v != FormatVersion {
					t.Fatalf("after the upgrade the file is format %d, want %d", v, FormatVersion)
				}
			}()
			want := fixtureMessages()[fixtureAcked+fixtureDead:]
			for i, q := range s.Lanes() {
				st := q.Stats()
				if q.Name() != tc.keeps {
					if st.Depth != 0 || st.DeadLetters != 0 {
						t.Fatalf("lane %s got %+v; everything belongs to %s", q.Name(), st, tc.keeps)
					}
					continue
				}
				if st.Depth != len(want) || st.DeadLetters != fixtureDead || st.DeadLettered != fixtureDead {
					t.Fatalf("lane %s: %+v, want depth %d and %d dead letters", q.Name(), st, len(want), fixtureDead)
				}
				got, err := q.Next(ctxT(t), 0, 1000)
				if err != nil || len(got) != len(want) {
					t.Fatalf("Next: %d, %v", len(got), err)
				}
				for j, m := range got {
					w := want[j]
					if m.Seq != uint64(fixtureAcked+fixtureDead+1+j) || m.Topic != w.Topic || !bytes.Equal(m.Payload, w.Payload) ||
						m.QoS != w.QoS || m.Retain != w.Retain || !m.Created.Equal(w.Created) || !m.Expires.Equal(w.Expires) {
						t.Fatalf("message %d: got %+v, want %+v", j, m, w)
					}
				}
				dls, err := q.DeadLetters(0, 100)
				if err != nil || len(dls) != fixtureDead || dls[0].Reason != fmt.Sprintf("fixture: refused seq %d", fixtureAcked+1) {
					t.Fatalf("dead letters %+v, %v", dls, err)
				}
				// Numbering continues after the fixture's last seq, in every lane.
				seqs, err := s.Append(ctxT(t), []Message{msg("after/upgrade", "x")}, []Targets{Lane(i)})
				if err != nil || seqs[0] != fixtureTotal+1 {
					t.Fatalf("first seq after the upgrade %v, %v; want %d", seqs, err, fixtureTotal+1)
				}
			}
		})
	}
}

// A file of a format newer than this build's is refused, untouched, saying so.
func TestStoreRefusesNewerFormatUntouched(t *testing.T) {
	path := tempPath(t)
	s, err := OpenStore(path, lanes("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctxT(t), []Message{msg("t", "kept")}, []Targets{Lane(0) | Lane(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(keyFormatVersion, be64(FormatVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(path, lanes("a", "b"))
	if !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), "newer edge-agent") || !strings.Contains(err.Error(), "left untouched") {
		t.Fatalf("OpenStore of a newer format: %v", err)
	}
	if _, _, err := OpenStoreOrRecover(path, lanes("a", "b")); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("OpenStoreOrRecover of a newer format: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the file of a newer format was modified")
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("a newer format was moved aside: %v", m)
	}
}

// A damaged file with two lanes: each lane's readable records are salvaged into the lane of the
// same name.
func TestStoreSalvagePerLane(t *testing.T) {
	path := tempPath(t)
	s, err := OpenStore(path, lanes("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctxT(t), []Message{msg("t", "a and b"), msg("t", "b only"), msg("t", "a only")},
		[]Targets{Lane(0) | Lane(1), Lane(1), Lane(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dropMeta(t, path) // damage: the meta bucket is gone, the lanes are there
	r, rec, err := OpenStoreOrRecover(path, lanes("b", "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rec == nil || rec.Salvaged != 4 {
		t.Fatalf("recovery %+v, want 4 records salvaged", rec)
	}
	want := map[string][]string{"a": {"a and b", "a only"}, "b": {"a and b", "b only"}}
	for name, w := range want {
		q, _ := r.Lane(name)
		var got []string
		for _, m := range stored(t, q) {
			got = append(got, string(m.Payload))
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("lane %s salvaged %q, want %q", name, got, w)
		}
	}
}

// A message for two lanes, one per request, both lanes delivering it: what one commit writes while
// the queue is nearly empty is the same as for one lane (the lanes' buckets share the root page),
// so fan-out costs no extra wear (the one-lane figure: TestWearOneMessagePerRequest).
func TestWearLanesOneMessagePerRequest(t *testing.T) {
	s := openStoreT(t, tempPath(t), lanes("aws", "plant"))
	ctx := ctxT(t)
	m := benchMsg()
	const n = 200
	var after [2]uint64
	lifecycle := func() {
		t.Helper()
		if _, err := s.Append(ctx, []Message{m}, []Targets{Lane(0) | Lane(1)}); err != nil {
			t.Fatal(err)
		}
		for l, q := range s.Lanes() {
			msgs, err := q.Next(ctx, after[l], 1)
			if err != nil {
				t.Fatal(err)
			}
			after[l] = msgs[0].Seq
			q.Ack(after[l])
		}
	}
	lifecycle()
	w := startWear(t)
	for range n {
		lifecycle()
	}
	per := w.perMsg(n)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	skipNoWriteAccounting(t, int64(per))
	t.Logf("%.0f B written per message for two lanes (one per request, both removals included); %d commits", per, s.Stats().Commits)
	if per > wearOneMessageMax {
		t.Errorf("%.0f B written per 200 B message for two lanes, the target (one lane) is at most %d", per, wearOneMessageMax)
	}
	for _, q := range s.Lanes() {
		if st := q.Stats(); st.Depth != 0 || st.Acked != n+1 {
			t.Errorf("lane %s: %+v after the flush", q.Name(), st)
		}
	}
}

// Batches of 1000 for two lanes, both draining: each lane holds its own copy of a record, so a
// backlog costs each lane's pages; the figure is logged beside the one-lane one (TestWearBatches).
func TestWearLanesBatches(t *testing.T) {
	s := openStoreT(t, tempPath(t), lanes("aws", "plant"))
	ctx := ctxT(t)
	batch := make([]Message, 1000)
	to := make([]Targets, len(batch))
	for i := range batch {
		batch[i] = benchMsg()
		to[i] = Lane(0) | Lane(1)
	}
	raw := float64(len(batch[0].Topic) + len(batch[0].Payload))
	const batches = 20
	w := startWear(t)
	var after [2]uint64
	for range batches {
		if _, err := s.Append(ctx, batch, to); err != nil {
			t.Fatal(err)
		}
		for l, q := range s.Lanes() {
			for read := 0; read < len(batch); {
				msgs, err := q.Next(ctx, after[l], 64)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					q.Ack(m.Seq)
				}
				after[l] = msgs[len(msgs)-1].Seq
				read += len(msgs)
			}
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	per := w.perMsg(batches * len(batch))
	skipNoWriteAccounting(t, int64(per))
	t.Logf("%.0f B written per message for two lanes in batches of 1000, drain included (%.2f× raw)", per, per/raw)
	if per > 2*wearBatchRatioMax*raw {
		t.Errorf("%.0f B written per message for two lanes (%.2f× raw), at most twice the one-lane target (%.1f×) expected", per, per/raw, wearBatchRatioMax)
	}
}

// A Flush (or Append) returns with its whole commit applied in every lane: it once woke its caller
// as soon as its own lane was applied, and a removal of a later lane still showed as in flight.
func TestStoreFlushSeesEveryLane(t *testing.T) {
	ctx := ctxT(t)
	for iter := range 50 {
		// Each store is closed before the next opens: on 32-bit ARM each one maps 64 MiB of
		// address space, and 50 open at once do not fit.
		s, err := OpenStore(filepath.Join(t.TempDir(), "queue.db"), lanes("aws", "plant"))
		if err != nil {
			t.Fatal(err)
		}
		var after [2]uint64
		for range 20 {
			if _, err := s.Append(ctx, []Message{benchMsg()}, []Targets{Lane(0) | Lane(1)}); err != nil {
				t.Fatal(err)
			}
			for l, q := range s.Lanes() {
				msgs, err := q.Next(ctx, after[l], 1)
				if err != nil {
					t.Fatal(err)
				}
				after[l] = msgs[0].Seq
				q.Ack(after[l])
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range s.Lanes() {
			if st := q.Stats(); st.Inflight != 0 || st.Depth != 0 || st.Acked != 20 {
				t.Fatalf("iteration %d: lane %s after Flush: %+v", iter, q.Name(), st)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

package queue

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testdata/queue-format1.db was written by the queue of an earlier release: commit 08016bd (format 1,
// before removals were deferred, pages filled completely, the file mapped ahead and compacted), by
// TestWriteFormat1Fixture below run in a checkout of that commit:
//
//	QUEUE_WRITE_FIXTURE=$PWD/queue/testdata/queue-format1.db go test -run TestWriteFormat1Fixture ./queue/
//
// It holds fixtureMessages() appended in batches of 50 (seqs 1..300), seqs 1..50 acked and removed,
// seqs 51..55 dead-lettered. Every later release must open it and keep all of that: an OTA upgrade keeps
// what is queued (SPEC "Operations").
const format1Fixture = "testdata/queue-format1.db"

const (
	fixtureTotal = 300
	fixtureAcked = 50 // seqs 1..50
	fixtureDead  = 5  // seqs 51..55
)

// fixtureMessages is what the fixture was written from: text, binary, empty and 512-byte payloads, QoS 0
// and 1, retained ones, and expiry times far in the future, each with its own Created.
func fixtureMessages() []Message {
	created := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	out := make([]Message, fixtureTotal)
	for i := range out {
		n := i + 1
		m := Message{Topic: fmt.Sprintf("fixture/%d/t", n%7), QoS: byte(n % 2), Retain: n%11 == 0,
			Created: created.Add(time.Duration(n) * time.Second)}
		switch n % 4 {
		case 0:
			m.Payload = []byte{0, 1, 2, 0xff, 0xfe, byte(n)}
		case 1:
			m.Payload = []byte(fmt.Sprintf("reading %d: 21.5 °C", n))
		case 2:
			m.Payload = []byte{}
		case 3:
			m.Payload = bytes.Repeat([]byte{byte('a' + n%26)}, 512)
		}
		if n%5 == 0 {
			m.Expires = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
		}
		out[i] = m
	}
	return out
}

// TestWriteFormat1Fixture writes the fixture; it runs only when asked (see format1Fixture).
func TestWriteFormat1Fixture(t *testing.T) {
	path := os.Getenv("QUEUE_WRITE_FIXTURE")
	if path == "" {
		t.Skip("writes the format-1 fixture; set QUEUE_WRITE_FIXTURE=<path> in a checkout of the release that writes it")
	}
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := fixtureMessages()
	for i := 0; i < len(msgs); i += 50 {
		mustAppend(t, q, msgs[i:i+50]...)
	}
	for seq := uint64(1); seq <= fixtureAcked; seq++ {
		q.Ack(seq)
	}
	for seq := uint64(fixtureAcked + 1); seq <= fixtureAcked+fixtureDead; seq++ {
		q.DeadLetter(seq, fmt.Sprintf("fixture: refused seq %d", seq))
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// A queue file written by an earlier release (format 1) opens with everything it held: the queued
// messages in order with every field, the dead letters with their reasons, the persisted counters and
// the sequence numbering; and it then works as a queue of this release (append, ack, compaction).
func TestOpensFormat1FileFromEarlierRelease(t *testing.T) {
	data, err := os.ReadFile(format1Fixture)
	if err != nil {
		t.Fatalf("the committed fixture is missing: %v", err)
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := Open(path, Options{CompactMinSize: 1}) // compact as soon as it drains
	if err != nil {
		t.Fatalf("open the format-1 fixture: %v", err)
	}
	defer q.Close()

	want := fixtureMessages()[fixtureAcked+fixtureDead:]
	st := q.Stats()
	if st.Depth != len(want) || st.DeadLetters != fixtureDead || st.DeadLettered != fixtureDead {
		t.Fatalf("stats %+v: want depth %d, %d dead letters", st, len(want), fixtureDead)
	}
	if !st.Oldest.Equal(want[0].Created) {
		t.Fatalf("oldest %v, want %v", st.Oldest, want[0].Created)
	}
	got, err := q.Next(ctxT(t), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Next returned %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		w := want[i]
		if m.Seq != uint64(fixtureAcked+fixtureDead+1+i) || m.Topic != w.Topic || !bytes.Equal(m.Payload, w.Payload) ||
			m.QoS != w.QoS || m.Retain != w.Retain || !m.Created.Equal(w.Created) || !m.Expires.Equal(w.Expires) {
			t.Fatalf("message %d: got %+v, want seq %d %+v", i, m, fixtureAcked+fixtureDead+1+i, w)
		}
	}
	dls, err := q.DeadLetters(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != fixtureDead {
		t.Fatalf("%d dead letters, want %d", len(dls), fixtureDead)
	}
	for i, d := range dls {
		seq := uint64(fixtureAcked + 1 + i)
		w := fixtureMessages()[seq-1]
		if d.Seq != seq || d.Reason != fmt.Sprintf("fixture: refused seq %d", seq) || d.Topic != w.Topic || !bytes.Equal(d.Payload, w.Payload) {
			t.Fatalf("dead letter %d: %+v", i, d)
		}
	}

	// It goes on as a queue of this release: numbering continues, everything drains, the file compacts.
	seqs := mustAppend(t, q, msg("fixture/new", "after the upgrade"))
	if seqs[0] != fixtureTotal+1 {
		t.Fatalf("first seq after the upgrade %d, want %d", seqs[0], fixtureTotal+1)
	}
	for _, m := range got {
		q.Ack(m.Seq)
	}
	q.Ack(seqs[0])
	for range 2 { // the removal commit, then one that waits for the compaction after it
		if err := q.Flush(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Depth != 0 || st.DeadLetters != fixtureDead || st.Compactions == 0 {
		t.Fatalf("after draining: %+v (want depth 0, the dead letters kept, a compaction)", st)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if st := q2.Stats(); st.Depth != 0 || st.DeadLetters != fixtureDead || st.DeadLettered != fixtureDead {
		t.Fatalf("reopened: %+v", st)
	}
}

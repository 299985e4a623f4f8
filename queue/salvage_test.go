package queue

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkSubsequence checks that msgs are records of recs (the encoded
// messages of makeQueueFile), in their order, with every field kept.
func checkSubsequence(t testing.TB, msgs []Message, recs [][]byte) []int {
	t.Helper()
	var idx []int
	j := 0
	for _, m := range msgs {
		m.Seq = 0
		enc := encodeRecord(&m)
		for j < len(recs) && !bytes.Equal(recs[j], enc) {
			j++
		}
		if j == len(recs) {
			t.Fatalf("salvaged message %q is not one of the original records, or out of order", m.Payload)
		}
		idx = append(idx, j)
		j++
	}
	return idx
}

// recoverT writes damaged to path, runs OpenOrRecover and checks that the
// file was moved aside unchanged.
func recoverT(t *testing.T, path string, damaged []byte, opts Options) (*Queue, *Recovery) {
	t.Helper()
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	q, rec, err := OpenOrRecover(path, opts)
	if err != nil {
		t.Fatalf("OpenOrRecover: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	if rec == nil {
		t.Fatal("the damage was not detected")
	}
	t.Logf("salvaged %d, dead letters %d, not salvaged %d, error %q (reason %q)",
		rec.Salvaged, rec.SalvagedDeadLetters, rec.NotSalvaged, rec.SalvageError, rec.Reason)
	if kept, err := os.ReadFile(rec.MovedTo); err != nil || !bytes.Equal(kept, damaged) {
		t.Fatalf("the moved-aside file was modified (%v)", err)
	}
	return q, rec
}

// nextAll returns every message Next delivers.
func nextAll(t *testing.T, q *Queue) []Message {
	t.Helper()
	if q.Stats().Depth == 0 {
		return nil
	}
	msgs, err := q.Next(ctxT(t), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// dropMeta deletes the meta bucket: damage that leaves every record readable.
func dropMeta(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(metaBucket) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSalvage(t *testing.T) {
	const n = 300
	t.Run("one leaf page scribbled", func(t *testing.T) {
		path, recs := makeQueueFile(t, n)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ps := pageSizeOf(t, path)
		leaf := -1
		for _, id := range treePages(t, path) {
			if bytes.Contains(file[id*ps:(id+1)*ps], recs[n/2]) {
				leaf = id
			}
		}
		if leaf < 0 {
			t.Fatal("no live page holds the middle record")
		}
		var want []int
		for i, r := range recs {
			if !bytes.Contains(file[leaf*ps:(leaf+1)*ps], r) {
				want = append(want, i)
			}
		}
		if len(want) == n || len(want) < n/2 {
			t.Fatalf("the page holds %d of %d records", n-len(want), n)
		}
		rng := rand.New(rand.NewPCG(7, 7))
		for i := leaf * ps; i < (leaf+1)*ps; i++ {
			file[i] = byte(rng.Uint32())
		}
		q, rec := recoverT(t, path, file, Options{})
		if rec.Salvaged != len(want) || !strings.Contains(rec.SalvageError, "skipped unreadable records") {
			t.Fatalf("salvaged %d (%q), want %d and the skipped page named", rec.Salvaged, rec.SalvageError, len(want))
		}
		got := checkSubsequence(t, nextAll(t, q), recs)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("delivered records %v, want %v", got, want)
		}
	})
	t.Run("garbage in two of three record values", func(t *testing.T) {
		path, recs := makeQueueFile(t, n)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for i, r := range recs {
			if i%3 == 0 {
				want = append(want, i)
				continue
			}
			at := bytes.Index(file, r)
			for j := range r {
				file[at+j] = 0xee
			}
		}
		q, rec := recoverT(t, path, file, Options{})
		if rec.Salvaged != len(want) || rec.NotSalvaged != n-len(want) || rec.SalvageError != "" {
			t.Fatalf("Recovery %+v, want %d salvaged", *rec, len(want))
		}
		if got := checkSubsequence(t, nextAll(t, q), recs); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("delivered records %v, want %v", got, want)
		}
	})
	t.Run("freelist page damaged", func(t *testing.T) {
		path, recs := makeQueueFile(t, n)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true, PreLoadFreelist: true})
		if err != nil {
			t.Fatal(err)
		}
		var fl []int
		ps := db.Info().PageSize
		_ = db.View(func(tx *bolt.Tx) error {
			for id := 2; id < int(tx.Size())/ps; id++ {
				if p, err := tx.Page(id); err == nil && p != nil && p.Type == "freelist" {
					fl = append(fl, id)
				}
			}
			return nil
		})
		db.Close()
		if len(fl) == 0 {
			t.Fatal("no freelist page")
		}
		for _, id := range fl {
			for i := id * ps; i < (id+1)*ps; i++ {
				file[i] = 0xa5
			}
		}
		q, rec := recoverT(t, path, file, Options{})
		if rec.Salvaged != n || rec.SalvageError != "" {
			t.Fatalf("Recovery %+v, want all %d salvaged", *rec, n)
		}
		if got := checkSubsequence(t, nextAll(t, q), recs); len(got) != n {
			t.Fatalf("delivered %d records, want %d", len(got), n)
		}
	})
	for _, tc := range []struct {
		name   string
		damage func(file []byte, ps int) []byte
		why    string
	}{
		{"both meta pages zeroed", func(file []byte, ps int) []byte { clear(file[:2*ps]); return file }, "invalid database"},
		{"truncated header", func(file []byte, ps int) []byte { return file[:100] }, "cannot open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := makeQueueFile(t, n)
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			q, rec := recoverT(t, path, tc.damage(file, pageSizeOf(t, path)), Options{})
			if rec.Salvaged != 0 || !strings.Contains(rec.SalvageError, tc.why) {
				t.Fatalf("Recovery %+v, want nothing salvaged and SalvageError saying %q", *rec, tc.why)
			}
			if st := q.Stats(); st.Depth != 0 {
				t.Fatalf("Stats %+v", st)
			}
		})
	}
	t.Run("dead letters", func(t *testing.T) {
		path := tempPath(t)
		q, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []Message
		for i := range 20 {
			msgs = append(msgs, Message{Topic: "t", Payload: fmt.Appendf(nil, "m%02d", i), QoS: 1, Retain: i%2 == 0,
				Created: time.Now().Round(0), Expires: time.Now().Add(time.Hour).Round(0)})
		}
		seqs := mustAppend(t, q, msgs...)
		for _, i := range []int{3, 7, 11} {
			q.DeadLetter(seqs[i], fmt.Sprintf("poison %d", i))
		}
		if err := q.Flush(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		dropMeta(t, path)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		q2, rec := recoverT(t, path, file, Options{})
		if rec.Salvaged != 17 || rec.SalvagedDeadLetters != 3 || rec.SalvageError != "" {
			t.Fatalf("Recovery %+v", *rec)
		}
		var got []string
		for _, m := range nextAll(t, q2) {
			got = append(got, string(m.Payload))
			i := 0
			fmt.Sscanf(string(m.Payload), "m%d", &i)
			w := msgs[i]
			if m.Topic != w.Topic || m.QoS != w.QoS || m.Retain != w.Retain || !m.Created.Equal(w.Created) || !m.Expires.Equal(w.Expires) {
				t.Fatalf("salvaged %+v, want %+v", m, w)
			}
		}
		if want := "[m00 m01 m02 m04 m05 m06 m08 m09 m10 m12 m13 m14 m15 m16 m17 m18 m19]"; fmt.Sprint(got) != want {
			t.Fatalf("delivered %v, want %s", got, want)
		}
		dls, err := q2.DeadLetters(0, 10)
		if err != nil || len(dls) != 3 {
			t.Fatalf("DeadLetters = %+v, %v", dls, err)
		}
		for i, dl := range dls {
			if want := []int{3, 7, 11}[i]; string(dl.Payload) != fmt.Sprintf("m%02d", want) || dl.Reason != fmt.Sprintf("poison %d", want) {
				t.Fatalf("dead letter %d = %+v", i, dl)
			}
		}
		if st := q2.Stats(); st.DeadLetters != 3 || st.Depth != 17 {
			t.Fatalf("Stats %+v", st)
		}
		// A salvaged dead letter can be requeued.
		if _, err := q2.Requeue(ctxT(t), dls[0].Seq); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reject when full", func(t *testing.T) {
		path, recs := makeQueueFile(t, n)
		dropMeta(t, path)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		size := int64(len(recs[0]))
		q, rec := recoverT(t, path, file, Options{MaxBytes: 123 * size, Overflow: Reject})
		if rec.Salvaged != 123 || rec.NotSalvaged != n-123 || !strings.Contains(rec.SalvageError, "full") {
			t.Fatalf("Recovery %+v, want 123 salvaged", *rec)
		}
		if got := checkSubsequence(t, nextAll(t, q), recs); len(got) != 123 || got[122] != 122 {
			t.Fatalf("delivered %v", got)
		}
	})
	t.Run("drop oldest when full", func(t *testing.T) {
		path, recs := makeQueueFile(t, n)
		dropMeta(t, path)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		size := int64(len(recs[0]))
		q, rec := recoverT(t, path, file, Options{MaxBytes: 100 * size})
		if rec.Salvaged != n || rec.SalvageError != "" {
			t.Fatalf("Recovery %+v", *rec)
		}
		got := checkSubsequence(t, nextAll(t, q), recs)
		if len(got) != 100 || got[0] != n-100 || q.Stats().Dropped != n-100 {
			t.Fatalf("delivered %d from %d, Stats %+v", len(got), got[0], q.Stats())
		}
	})
}

// The salvage of a ~50 MiB file (every record readable). Run with
// go test -run XXX -bench Salvage ./queue/
func BenchmarkSalvage(b *testing.B) {
	const n, size = 50_000, 480
	dir := b.TempDir()
	src := filepath.Join(dir, "src.db")
	q, err := Open(src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var batch []Message
	for i := range n {
		batch = append(batch, Message{Topic: "sensors/t", Payload: bytes.Repeat([]byte{byte(i)}, size), QoS: 1})
		if len(batch) == 1000 {
			mustAppend(b, q, batch...)
			batch = batch[:0]
		}
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	dropMeta(b, src)
	file, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(file)))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("q%d.db", i))
		if err := os.WriteFile(path, file, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		q, rec, err := OpenOrRecover(path, Options{})
		if err != nil || rec == nil || rec.Salvaged != n {
			b.Fatalf("OpenOrRecover = %+v, %v", rec, err)
		}
		b.Logf("salvaged %d messages from a %.1f MiB file in %s", rec.Salvaged, float64(len(file))/(1<<20), time.Since(start))
		b.StopTimer()
		q.Close()
		os.Remove(path)
		os.Remove(rec.MovedTo)
		b.StartTimer()
	}
}

package queue

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// makeQueueFile writes a closed queue file with n messages and returns its
// path and the encoded record of each message (Created fixed, so the bytes
// can be found in the file).
func makeQueueFile(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := tempPath(t)
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Round(0)
	var recs [][]byte
	var batch []Message
	for i := range n {
		m := Message{Topic: "sensors/t", Payload: fmt.Appendf(nil, "record-%05d-%s", i, strings.Repeat("p", 200)), QoS: 1, Created: created}
		batch = append(batch, m)
		recs = append(recs, encodeRecord(&m))
	}
	for len(batch) > 0 {
		k := min(len(batch), 100)
		mustAppend(t, q, batch[:k]...)
		batch = batch[k:]
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return path, recs
}

func pageSizeOf(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.Info().PageSize
}

// usedSize is the size of the pages bbolt has in use (its high-water mark), which may be less than
// the file's length.
func usedSize(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.View(func(tx *bolt.Tx) error { n = int(tx.Size()); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// treePages returns the ids of the branch and leaf pages in use.
func treePages(t *testing.T, path string) []int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []int
	if err := db.View(func(tx *bolt.Tx) error {
		for id := 2; id < int(tx.Size())/db.Info().PageSize; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p != nil && (p.Type == "leaf" || p.Type == "branch") {
				ids = append(ids, id)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

var corruptName = regexp.MustCompile(`^queue\.db\.corrupt-\d{8}T\d{6}Z$`)

func TestOpenOrRecoverDamagedFiles(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, file []byte, recs [][]byte) []byte
		reason string // a fragment of Recovery.Reason
	}{
		{"truncated mid-way", func(t *testing.T, path string, file []byte, _ [][]byte) []byte {
			// Mid-way through the pages in use: bbolt grows the file ahead of its data, so the
			// second half of the file itself may hold nothing yet.
			return file[:usedSize(t, path)/2]
		}, "corrupt"},
		{"random pages overwritten with garbage", func(t *testing.T, path string, file []byte, _ [][]byte) []byte {
			ids := treePages(t, path)
			ps := pageSizeOf(t, path)
			rng := rand.New(rand.NewPCG(4, 2))
			rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			for _, id := range ids[:max(1, len(ids)/3)] {
				for i := id * ps; i < (id+1)*ps; i++ {
					file[i] = byte(rng.Uint32())
				}
			}
			return file
		}, "corrupt"},
		{"meta pages zeroed", func(t *testing.T, path string, file []byte, _ [][]byte) []byte {
			ps := pageSizeOf(t, path)
			clear(file[:2*ps])
			return file
		}, "invalid database"},
		{"garbage in the record values", func(t *testing.T, path string, file []byte, recs [][]byte) []byte {
			for i, rec := range recs {
				at := bytes.Index(file, rec)
				if at < 0 {
					t.Fatalf("record %d not found in the file", i)
				}
				for j := range rec {
					file[at+j] = 0xee
				}
			}
			return file
		}, "cannot be decoded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, recs := makeQueueFile(t, 300)
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(t, path, file, recs)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}

			q, rec, err := OpenOrRecover(path, Options{})
			if err != nil {
				t.Fatalf("OpenOrRecover: %v", err)
			}
			t.Cleanup(func() { q.Close() })
			if rec == nil {
				t.Fatal("OpenOrRecover did not recover the damaged file")
			}
			t.Logf("recovery: %+v", *rec)
			if !strings.Contains(rec.Reason, tc.reason) {
				t.Fatalf("Recovery.Reason %q does not say %q", rec.Reason, tc.reason)
			}
			if filepath.Dir(rec.MovedTo) != filepath.Dir(path) || !corruptName.MatchString(filepath.Base(rec.MovedTo)) {
				t.Fatalf("moved to %s", rec.MovedTo)
			}
			if !strings.HasSuffix(rec.MovedTo, rec.At.UTC().Format("20060102T150405Z")) || time.Since(rec.At) > time.Minute {
				t.Fatalf("Recovery.At %s does not match %s", rec.At, rec.MovedTo)
			}
			kept, err := os.ReadFile(rec.MovedTo)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kept, damaged) {
				t.Fatal("the moved-aside file differs from the damaged file")
			}
			// The fresh queue holds what was salvaged, in order, and works.
			if st := q.Stats(); st.Depth != rec.Salvaged || st.DeadLetters != 0 {
				t.Fatalf("fresh queue Stats %+v, salvaged %d", st, rec.Salvaged)
			}
			if rec.Salvaged == 0 && rec.NotSalvaged == 0 && rec.SalvageError == "" {
				t.Fatal("nothing salvaged and SalvageError does not say why")
			}
			seqs := mustAppend(t, q, msg("t", "after recovery"))
			msgs, err := q.Next(ctxT(t), 0, 1000)
			if err != nil || len(msgs) != rec.Salvaged+1 || msgs[len(msgs)-1].Seq != seqs[0] || string(msgs[len(msgs)-1].Payload) != "after recovery" {
				t.Fatalf("Next on the fresh queue = %d messages, %v", len(msgs), err)
			}
			checkSubsequence(t, msgs[:rec.Salvaged], recs)
		})
	}
}

func TestOpenOrRecoverLeavesGoodAndForeignFilesAlone(t *testing.T) {
	onlyFile := func(t *testing.T, dir string) {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.Contains(e.Name(), ".corrupt-") {
				t.Fatalf("%s was moved aside", e.Name())
			}
		}
	}
	t.Run("healthy", func(t *testing.T) {
		path, _ := makeQueueFile(t, 50)
		q, rec, err := OpenOrRecover(path, Options{})
		if err != nil || rec != nil {
			t.Fatalf("OpenOrRecover(healthy) = %v, %v", rec, err)
		}
		defer q.Close()
		if st := q.Stats(); st.Depth != 50 {
			t.Fatalf("Stats %+v", st)
		}
		onlyFile(t, filepath.Dir(path))
	})
	t.Run("locked", func(t *testing.T) {
		path, _ := makeQueueFile(t, 5)
		openT(t, path, Options{})
		_, rec, err := OpenOrRecover(path, Options{LockTimeout: 100 * time.Millisecond})
		if !errors.Is(err, ErrLocked) || rec != nil {
			t.Fatalf("OpenOrRecover(locked) = %v, %v", rec, err)
		}
		onlyFile(t, filepath.Dir(path))
	})
	t.Run("newer format", func(t *testing.T) {
		path, _ := makeQueueFile(t, 5)
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(keyFormatVersion, be64(FormatVersion+1)) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, rec, err := OpenOrRecover(path, Options{})
		if !errors.Is(err, ErrUnsupportedFormat) || rec != nil {
			t.Fatalf("OpenOrRecover(newer format) = %v, %v", rec, err)
		}
		onlyFile(t, filepath.Dir(path))
	})
	t.Run("foreign bbolt file", func(t *testing.T) {
		path := tempPath(t)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, rec, err := OpenOrRecover(path, Options{}); err == nil || rec != nil || !strings.Contains(err.Error(), "not a queue file") {
			t.Fatalf("OpenOrRecover(foreign) = %v, %v", rec, err)
		}
		onlyFile(t, filepath.Dir(path))
	})
	t.Run("one bad record", func(t *testing.T) {
		path, recs := makeQueueFile(t, 20)
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(file, recs[7])
		file[at] = 9 // record version 9
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		q, rec, err := OpenOrRecover(path, Options{})
		if err != nil || rec != nil {
			t.Fatalf("OpenOrRecover(one bad record) = %v, %v; want it handled at read time", rec, err)
		}
		defer q.Close()
		msgs, err := q.Next(ctxT(t), 0, 100)
		if err != nil || len(msgs) != 19 {
			t.Fatalf("Next = %d messages, %v; want 19", len(msgs), err)
		}
		if err := q.Flush(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if st := q.Stats(); st.Corrupt != 1 || st.Depth != 19 {
			t.Fatalf("Stats %+v", st)
		}
		onlyFile(t, filepath.Dir(path))
	})
}

// Open refuses a damaged file with ErrCorrupt and leaves it where it is; a
// queue file without its meta bucket is damage, not a foreign file.
func TestOpenReportsDamage(t *testing.T) {
	path, _ := makeQueueFile(t, 5)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(metaBucket) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open without the meta bucket = %v, want ErrCorrupt naming the file", err)
	}
	q, rec, err := OpenOrRecover(path, Options{})
	if err != nil || rec == nil || !strings.Contains(rec.Reason, `"meta"`) {
		t.Fatalf("OpenOrRecover without the meta bucket = %+v, %v", rec, err)
	}
	q.Close()

	// Zeroed metas: plain Open says ErrCorrupt and moves nothing.
	path2, _ := makeQueueFile(t, 5)
	file, err := os.ReadFile(path2)
	if err != nil {
		t.Fatal(err)
	}
	clear(file[:2*pageSizeOf(t, path2)])
	if err := os.WriteFile(path2, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path2, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with zeroed metas = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(path2); err != nil {
		t.Fatalf("Open moved the file: %v", err)
	}
	// Two recoveries in the same second get distinct names.
	now := time.Now()
	a, err := moveAside(path2, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path2, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := moveAside(path2, now)
	if err != nil || a == b || !strings.HasSuffix(b, "-2") {
		t.Fatalf("moveAside twice: %s, %s, %v", a, b, err)
	}
}

// Cut the file at every page boundary: OpenOrRecover either recovers or, if
// the cut removed only bbolt's unused tail, keeps every record. It never
// crashes the process (faults on the mapped file are recovered) and never
// loses part of the queue silently. A zero-length file is a new queue.
func TestOpenOrRecoverTruncatedAnywhere(t *testing.T) {
	const n = 300
	path, _ := makeQueueFile(t, n)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := pageSizeOf(t, path)
	recovered := 0
	// Past the pages in use the file holds nothing yet (bbolt grows it ahead): a few cuts there are enough.
	end := min(len(file), usedSize(t, path)+4*ps)
	for cut := ps; cut < end; cut += ps {
		if err := os.WriteFile(path, file[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		q, rec, err := OpenOrRecover(path, Options{})
		if err != nil {
			t.Fatalf("cut at %d of %d: %v", cut, len(file), err)
		}
		depth := q.Stats().Depth
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if rec == nil {
			if depth != n {
				t.Fatalf("cut at %d of %d: no recovery but %d of %d records", cut, len(file), depth, n)
			}
			continue
		}
		recovered++
		if depth != rec.Salvaged || depth > n || (depth == 0 && rec.SalvageError == "") {
			t.Fatalf("cut at %d: recovered queue has %d records, salvaged %d (%q)", cut, depth, rec.Salvaged, rec.SalvageError)
		}
		if err := os.Remove(rec.MovedTo); err != nil {
			t.Fatal(err)
		}
	}
	if recovered == 0 {
		t.Fatal("no cut was detected as damage")
	}
}

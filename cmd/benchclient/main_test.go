package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"one p99", ms(7), 99, 7 * time.Millisecond},
		{"median odd", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"median even", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100", ms(1, 2, 3), 100, 3 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p=%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestPayloadSizeAndUniqueness(t *testing.T) {
	a, err := payload("x", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := payload("x", 2, 64)
	if len(a) != 64 || len(b) != 64 || string(a) == string(b) {
		t.Fatalf("payloads %q, %q: want two distinct 64-byte payloads", a, b)
	}
	if _, err := payload("a-long-tag", 1, 8); err == nil {
		t.Fatal("a size below the tag and counter must be an error")
	}
}

// TestCheckerCountsDistinctAcrossPartialWrites feeds the checker a file that
// grows in pieces cut mid-line, with a duplicate and another topic.
func TestCheckerCountsDistinctAcrossPartialWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub.out")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ck := &checker{f: r, prefix: []byte("bench/a "), seen: map[uint64]struct{}{}}
	for _, piece := range []string{"bench/a p1\nbench/a p", "2\nbench/b p3\n", "bench/a p1\nbench/ab p4\nbench/a p5"} {
		if _, err := w.WriteString(piece); err != nil {
			t.Fatal(err)
		}
		if err := ck.poll(); err != nil {
			t.Fatal(err)
		}
	}
	if len(ck.seen) != 2 || ck.dups != 1 {
		t.Fatalf("seen %d distinct, %d dups; want 2 and 1 (p5 has no newline yet)", len(ck.seen), ck.dups)
	}
	w.WriteString("\n")
	ck.poll()
	if len(ck.seen) != 3 {
		t.Fatalf("seen %d after the line ended, want 3", len(ck.seen))
	}
}

// The /proc readers find their fields in this very process.
func TestProcFields(t *testing.T) {
	if kib, err := rssAnon(os.Getpid()); err != nil || kib <= 0 {
		t.Errorf("rssAnon(self) = %d, %v; want > 0 KiB", kib, err)
	}
	if b, err := writeBytes(os.Getpid()); err != nil || b < 0 {
		t.Errorf("writeBytes(self) = %d, %v; want >= 0", b, err)
	}
	if _, err := procField(os.Getpid(), "status", "NoSuchField"); err == nil {
		t.Error("procField with a missing field: want an error")
	}
}

package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/redact"
)

// lines is a concurrency-safe sink that keeps each Write as one line.
type lines struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return l.b.Write(p)
}

func (l *lines) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// deadBroker logs what the transport logs against a broker that refuses every connection: one
// warning per attempt, every 100–200 ms of simulated time, for d. It returns the attempts made.
func deadBroker(t *testing.T, h slog.Handler, start time.Time, d time.Duration) int {
	t.Helper()
	log := slog.New(h).With("component", "transport")
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for now := start; now.Before(start.Add(d)); now = now.Add(100*time.Millisecond + rand.N[time.Duration](100*time.Millisecond)) {
		n++
		err := fmt.Errorf("dial tcp 127.0.0.1:%d: connect: connection refused", 40000+rng.IntN(3))
		r := slog.NewRecord(now, slog.LevelWarn, "mqtt connection attempt failed", 0)
		r.AddAttrs(slog.String("url", "ws://127.0.0.1/mqtt"), slog.Int("attempt", n), slog.Any("error", err),
			slog.Duration("retry_in", 150*time.Millisecond))
		if err := log.Handler().Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

var repeatedRE = regexp.MustCompile(`\(repeated (\d+) times in the last (minute|\d+ minutes)\)`)

func TestRepeatsDeadBrokerSimulatedClock(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		d        time.Duration
		maxLines int
	}{
		// The bound: 20 s of reconnects every 100–200 ms, at most a dozen lines. The burst is
		// all that is written inside the first minute.
		{"20s", 20 * time.Second, DefaultBurst},
		// Hours offline: the burst, then one line a minute (a week: 3 + 10080 lines).
		{"6h", 6 * time.Hour, DefaultBurst + 6*60},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := &lines{}
			h, err := New(out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			attempts := deadBroker(t, redact.NewHandler(h, redact.NewSet()), start, tt.d)
			if out.n > tt.maxLines || out.n > 12 && tt.d <= 20*time.Second {
				t.Fatalf("%d attempts in %v wrote %d lines, want at most %d:\n%.2000s", attempts, tt.d, out.n, tt.maxLines, out.String())
			}
			// Every attempt is accounted for: written, or counted in a later line.
			counted := out.n
			for _, m := range repeatedRE.FindAllStringSubmatch(out.String(), -1) {
				var k int
				fmt.Sscan(m[1], &k)
				counted += k
			}
			if attempts-counted < 0 || attempts-counted > 1000 {
				t.Fatalf("%d attempts, %d written or counted", attempts, counted)
			}
			t.Logf("%v: %d attempts, %d lines, %d attempts after the last line", tt.d, attempts, out.n, attempts-counted)
			if tt.d > time.Hour && !strings.Contains(out.String(), "in the last minute)") {
				t.Fatalf("no summary line:\n%.1000s", out.String())
			}
		})
	}
}

func TestRepeatsKinds(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	out := &lines{}
	h := NewRepeats(slog.NewTextHandler(out, nil), RepeatOptions{Burst: 2, Every: time.Minute, Kinds: 4})
	emit := func(h slog.Handler, at time.Duration, level slog.Level, msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(t0.Add(at), level, msg, 0)
		r.AddAttrs(attrs...)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	count := func(sub string) int { return strings.Count(out.String(), sub) }

	// Info is never limited.
	for i := range 10 {
		emit(h, time.Duration(i)*time.Millisecond, slog.LevelInfo, "mqtt connected")
	}
	if c := count("mqtt connected"); c != 10 {
		t.Fatalf("info lines: %d, want 10", c)
	}
	// Different errors are different kinds; digits in the error do not matter.
	for i := range 5 {
		emit(h, time.Second, slog.LevelWarn, "fail", slog.Any("err", errors.New("refused port "+fmt.Sprint(i))))
		emit(h, time.Second, slog.LevelWarn, "fail", slog.String("err", "timeout"))
	}
	if a, b := count("refused port"), count("err=timeout"); a != 2 || b != 2 {
		t.Fatalf("burst of 2 per kind: got %d and %d\n%s", a, b, out)
	}
	// Another scope (With) is another kind.
	emit(h.WithAttrs([]slog.Attr{slog.String("component", "aws")}), time.Second, slog.LevelWarn, "fail", slog.String("err", "timeout"))
	if b := count("err=timeout"); b != 3 {
		t.Fatalf("scoped kind held back: %d\n%s", b, out)
	}
	// A minute after the last written one, the next is written with the count held back.
	emit(h, time.Second+time.Minute, slog.LevelWarn, "fail", slog.String("err", "timeout"))
	if !strings.Contains(out.String(), `msg="fail (repeated 3 times in the last minute)" err=timeout repeated=3`) {
		t.Fatalf("no summary:\n%s", out)
	}
	// Bounded: never more kinds than Kinds.
	for i := range 100 {
		emit(h, 2*time.Minute, slog.LevelError, fmt.Sprintf("kind %c", 'a'+i%26), slog.String("err", "x"))
	}
	if n := len(h.st.kinds); n > 4 || h.st.lru.Len() != n {
		t.Fatalf("%d kinds remembered, bound 4", n)
	}
	// A kind quiet for a minute starts over: its burst is written again.
	before := count("kind z")
	emit(h, 4*time.Minute, slog.LevelError, "kind z", slog.String("err", "x"))
	emit(h, 4*time.Minute, slog.LevelError, "kind z", slog.String("err", "x"))
	if got := count("kind z") - before; got != 2 {
		t.Fatalf("after a quiet minute: %d lines, want 2", got)
	}
}

func TestJournald(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := os.CreateTemp(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	st, _ := f.Stat()
	env := map[string]string{"JOURNAL_STREAM": devIno(st.Sys())}
	getenv := func(k string) string { return env[k] }
	if !UnderJournald(f, getenv) {
		t.Fatalf("JOURNAL_STREAM=%s names f, not detected", env["JOURNAL_STREAM"])
	}
	if UnderJournald(other, getenv) {
		t.Fatal("another file taken for the journal stream")
	}
	for _, v := range []string{"", "1:", "x:y", "12"} {
		env["JOURNAL_STREAM"] = v
		if UnderJournald(f, getenv) {
			t.Fatalf("JOURNAL_STREAM=%q taken for journald", v)
		}
	}

	for _, format := range []string{"text", "json"} {
		out := &lines{}
		h, err := New(out, Options{Level: "debug", Format: format, Journal: true})
		if err != nil {
			t.Fatal(err)
		}
		set := redact.NewSet()
		set.Add("broker password", "hunter2-secret")
		log := slog.New(redact.NewHandler(h, set)).With("component", "transport")
		log.Error("broker refused", "err", errors.New("bad password hunter2-secret"))
		log.Warn("mqtt connection attempt failed", "attempt", 1)
		log.Info("mqtt connected")
		log.Debug("detail")
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		t.Logf("%s:\n%s", format, out)
		want := []string{"<3>", "<4>", "<6>", "<7>"}
		if len(got) != len(want) || out.n != len(want) {
			t.Fatalf("%s: %d lines in %d writes, want %d", format, len(got), out.n, len(want))
		}
		for i, line := range got {
			if !strings.HasPrefix(line, want[i]) {
				t.Fatalf("%s line %d: %q, want prefix %s", format, i, line, want[i])
			}
			body := strings.TrimPrefix(line, want[i])
			if strings.Contains(body, "time=") || strings.Contains(body, `"time"`) {
				t.Fatalf("%s: a timestamp under journald: %q", format, line)
			}
			if strings.Contains(body, "hunter2") {
				t.Fatalf("secret logged: %q", line)
			}
			if format == "json" && !json.Valid([]byte(body)) {
				t.Fatalf("not JSON after the prefix: %q", line)
			}
		}
	}
	// Without Journal: time first, no prefix.
	out := &lines{}
	h, _ := New(out, Options{})
	slog.New(h).Warn("x")
	if !strings.HasPrefix(out.String(), "time=") {
		t.Fatalf("text form: %q", out)
	}
	if _, err := New(out, Options{Format: "xml"}); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := New(out, Options{Level: "loud"}); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("bad level: %v", err)
	}
}

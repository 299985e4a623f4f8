package logging

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// RepeatOptions bound how often one kind of warning or error is written. Zero fields take the
// defaults.
type RepeatOptions struct {
	Burst int           // occurrences written in full before the limit applies (default 3)
	Every time.Duration // then at most one line per Every, with the count held back (default 1m)
	Kinds int           // kinds remembered (default 256); the one seen least recently is forgotten
}

// Defaults of RepeatOptions.
const (
	DefaultBurst = 3
	DefaultEvery = time.Minute
	DefaultKinds = 256
)

// RepeatedKey is the attribute a line that stands for held-back repeats carries: their number.
const RepeatedKey = "repeated"

// Repeats is a slog.Handler that limits repeated warnings and errors (records of level Warn and
// above); it passes every other record through. Two records are of one kind when their level,
// message, With/WithGroup scope and error attributes (an error value, or a value under the key
// "err", "error" or "reason", with digits ignored) are the same.
//
// Per kind: the first Burst occurrences are written; after that one is written when Every has passed
// since the last one written, its message ending "(repeated N times in the last minute)" and
// attribute repeated=N for the N held back; a kind not seen for Every starts over. The clock is the
// records' own time (slog sets it), so a test can drive it. Safe for concurrent use.
type Repeats struct {
	inner slog.Handler
	st    *repeatState
	scope string // With/WithGroup of this handler, part of every key
}

type repeatState struct {
	burst int
	every time.Duration
	max   int

	mu    sync.Mutex
	kinds map[string]*list.Element // of *kind
	lru   *list.List               // front: seen most recently
}

type kind struct {
	key      string
	n        int       // written since the kind (re)started, up to burst
	written  time.Time // last written
	seen     time.Time // last occurrence
	withheld int       // held back since written
}

// NewRepeats wraps inner.
func NewRepeats(inner slog.Handler, o RepeatOptions) *Repeats {
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Kinds <= 0 {
		o.Kinds = DefaultKinds
	}
	return &Repeats{inner: inner, st: &repeatState{burst: o.Burst, every: o.Every, max: o.Kinds,
		kinds: map[string]*list.Element{}, lru: list.New()}}
}

// Enabled implements slog.Handler.
func (h *Repeats) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Repeats) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.inner.Handle(ctx, r)
	}
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	write, withheld, since := h.st.note(h.key(r), now)
	if !write {
		return nil
	}
	if withheld > 0 {
		nr := slog.NewRecord(r.Time, r.Level, fmt.Sprintf("%s (repeated %d times in the last %s)", r.Message, withheld, span(since)), r.PC)
		r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
		nr.AddAttrs(slog.Int(RepeatedKey, withheld))
		r = nr
	}
	return h.inner.Handle(ctx, r)
}

// note records one occurrence of key at now and says whether to write it, and if so how many were
// held back since the kind was last written, over how long.
func (s *repeatState) note(key string, now time.Time) (write bool, withheld int, since time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.kinds[key]
	if !ok {
		if s.lru.Len() >= s.max {
			old := s.lru.Back()
			s.lru.Remove(old)
			delete(s.kinds, old.Value.(*kind).key)
		}
		s.kinds[key] = s.lru.PushFront(&kind{key: key, n: 1, written: now, seen: now})
		return true, 0, 0
	}
	s.lru.MoveToFront(el)
	k := el.Value.(*kind)
	quiet := now.Sub(k.seen) >= s.every
	k.seen = now
	switch {
	case quiet || k.n < s.burst:
		if quiet {
			k.n = 0
		}
		withheld, since = k.withheld, now.Sub(k.written)
		k.n++
		k.written, k.withheld = now, 0
		return true, withheld, since
	case now.Sub(k.written) >= s.every:
		withheld, since = k.withheld, now.Sub(k.written)
		k.written, k.withheld = now, 0
		return true, withheld, since
	default:
		k.withheld++
		return false, 0, 0
	}
}

// span says d for "in the last …": "minute", "2 minutes", "3 hours".
func span(d time.Duration) string {
	switch m := int(d.Round(time.Minute) / time.Minute); {
	case m <= 1:
		return "minute"
	case m < 120:
		return fmt.Sprintf("%d minutes", m)
	default:
		return fmt.Sprintf("%d hours", m/60)
	}
}

// key names r's kind: level, scope, message and error attributes.
func (h *Repeats) key(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(h.scope)
	b.WriteByte(0)
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if v, ok := errText(a); ok {
			b.WriteByte(0)
			b.WriteString(a.Key)
			b.WriteByte('=')
			writeNoDigits(&b, v)
		}
		return true
	})
	return b.String()
}

// errText returns the text of an error attribute.
func errText(a slog.Attr) (string, bool) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindAny {
		if err, ok := v.Any().(error); ok {
			return err.Error(), true
		}
	}
	switch a.Key {
	case "err", "error", "reason":
		return v.String(), true
	}
	return "", false
}

// writeNoDigits writes s with each run of digits as one '#': an error that quotes a port, an
// address or a counter is still the same error.
func writeNoDigits(b *strings.Builder, s string) {
	digit := false
	for _, c := range s {
		if c >= '0' && c <= '9' {
			if !digit {
				b.WriteByte('#')
			}
			digit = true
			continue
		}
		digit = false
		b.WriteRune(c)
	}
}

// WithAttrs implements slog.Handler; the new handler shares the counts.
func (h *Repeats) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.scope)
	for _, a := range as {
		b.WriteString(a.String())
		b.WriteByte(' ')
	}
	return &Repeats{inner: h.inner.WithAttrs(as), st: h.st, scope: b.String()}
}

// WithGroup implements slog.Handler; the new handler shares the counts.
func (h *Repeats) WithGroup(name string) slog.Handler {
	return &Repeats{inner: h.inner.WithGroup(name), st: h.st, scope: h.scope + name + "."}
}

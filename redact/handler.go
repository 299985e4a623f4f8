package redact

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
)

// Handler is a slog.Handler that scrubs the known secrets from the message and from every attribute
// value of a record (strings, errors, fmt.Stringers, []byte, groups, and any other value as fmt and
// encoding/json would print it) before the inner handler sees it.
//
// Attributes given to Logger.With are scrubbed when With is called, against the secrets known then.
type Handler struct {
	inner slog.Handler
	set   *Set
}

// NewHandler wraps inner; a nil set gets a new, empty Set.
func NewHandler(inner slog.Handler, set *Set) *Handler {
	if set == nil {
		set = NewSet()
	}
	return &Handler{inner: inner, set: set}
}

// SetOf returns the Set of h if h is a *Handler (as a Logger built on NewHandler, or derived from
// one with With or WithGroup, has), else nil.
func SetOf(h slog.Handler) *Set {
	if rh, ok := h.(*Handler); ok {
		return rh.set
	}
	return nil
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler: it passes a scrubbed copy of r to the inner handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, h.set.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, nr)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(out), set: h.set}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), set: h.set}
}

func (h *Handler) attr(a slog.Attr) slog.Attr {
	a.Value = h.value(a.Value.Resolve())
	return a
}

func (h *Handler) value(v slog.Value) slog.Value {
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) >= MinLen {
			if clean := h.set.String(s); clean != s {
				return slog.StringValue(clean)
			}
		}
		return v
	case slog.KindGroup:
		as := v.Group()
		out := make([]slog.Attr, len(as))
		for i, a := range as {
			out[i] = h.attr(a)
		}
		return slog.GroupValue(out...)
	case slog.KindAny:
	default: // numbers, bools, durations, times: nothing to scrub
		return v
	}
	switch x := v.Any().(type) {
	case error:
		return slog.StringValue(h.set.String(x.Error()))
	case fmt.Stringer:
		return slog.StringValue(h.set.String(x.String()))
	case []byte:
		return slog.StringValue(h.set.String(string(x)))
	default:
		// Anything else (a struct, a slice, a map): keep the value, so the JSON handler still prints
		// it as JSON, unless a secret shows in either way the handlers print it.
		s := fmt.Sprintf("%+v", x)
		if clean := h.set.String(s); clean != s {
			return slog.StringValue(clean)
		}
		if j, err := json.Marshal(x); err == nil && h.set.String(string(j)) != string(j) {
			return slog.StringValue(h.set.String(s))
		}
		return v
	}
}

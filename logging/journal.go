package logging

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
)

// journalHandler puts the record's syslog priority in front of the line its inner handler writes.
// The inner handler writes each record with one Write call to w, while Handle holds w.mu.
type journalHandler struct {
	inner slog.Handler
	w     *journalWriter
}

// journalWriter writes prefix and line in one Write, so journald sees them as one line.
type journalWriter struct {
	mu     sync.Mutex // held by journalHandler.Handle around the inner Handle
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (j *journalWriter) Write(p []byte) (int, error) {
	j.buf = append(append(j.buf[:0], j.prefix...), p...)
	_, err := j.w.Write(j.buf)
	if cap(j.buf) > 64<<10 { // one huge record does not keep its buffer
		j.buf = nil
	}
	return len(p), err
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = append(strconv.AppendInt(append(h.w.prefix[:0], '<'), int64(Priority(r.Level)), 10), '>')
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), w: h.w}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), w: h.w}
}

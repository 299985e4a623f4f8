package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Options configure New. The zero value is info-level text.
type Options struct {
	Level  string // "debug", "info" (""), "warn" or "error": config key log.level
	Format string // "text" ("") or "json": config key log.format
	// Journal selects the journald form: a priority prefix and no timestamp (see UnderJournald).
	Journal bool
	Repeats RepeatOptions
}

// New returns the handler that writes records to w as o says, behind Repeats.
func New(w io.Writer, o Options) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmpOr(o.Level, "info"))); err != nil {
		return nil, fmt.Errorf("log.level %q: use debug, info, warn or error", o.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var jw *journalWriter
	if o.Journal {
		jw = &journalWriter{w: w}
		w = jw
		opts.ReplaceAttr = dropTime
	}
	var h slog.Handler
	switch o.Format {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log.format %q: use text or json", o.Format)
	}
	if jw != nil {
		h = &journalHandler{inner: h, w: jw}
	}
	return NewRepeats(h, o.Repeats), nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// UnderJournald reports whether f is the stream systemd connected to journald: the environment
// variable JOURNAL_STREAM (read with getenv) holds "DEVICE:INODE" of that stream, and it matches f's
// own device and inode. A process whose stderr was redirected elsewhere (a shell started from the
// unit, a pipe to a file) inherits the variable but not the stream, and writes the ordinary form.
func UnderJournald(f *os.File, getenv func(string) string) bool {
	v := getenv("JOURNAL_STREAM")
	devS, inoS, ok := strings.Cut(v, ":")
	if !ok || f == nil {
		return false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino //nolint:unconvert // field types differ by GOARCH
}

// Priority is the syslog priority journald stores for a record of level l: 3 (err) for errors, 4
// (warning), 6 (info), 7 (debug).
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// dropTime removes the record's time: journald stamps every entry itself.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

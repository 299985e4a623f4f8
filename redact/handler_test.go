package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const (
	password = "correct-horse-battery"
	session  = "FwoGZXIvYXdzEBYaDH+session/token=="
)

type stringer struct{ s string }

func (x stringer) String() string { return "stringer(" + x.s + ")" }

type valuer struct{ s string }

func (x valuer) LogValue() slog.Value { return slog.StringValue("valuer " + x.s) }

type nested struct {
	Name  string
	Inner struct{ Token string }
}

func newSet() *Set {
	s := NewSet()
	s.Add("broker password", password)
	s.Add("aws session token", session)
	return s
}

// logEverything logs the secrets in every place an attribute can hold them.
func logEverything(l *slog.Logger) {
	var n nested
	n.Name, n.Inner.Token = "creds", session
	l = l.With("with_attr", "pw="+password, slog.Group("with_group", "tok", session))
	l.Info("connecting with "+password,
		"str", "x "+session+" y",
		"err", fmt.Errorf("handshake: 403 body echoes %s: %w", session, errors.New("refused")),
		"stringer", stringer{password},
		"bytes", []byte("raw "+password),
		"valuer", valuer{session},
		slog.Group("grp", "inner", password, slog.Group("deeper", "e", errors.New(session))),
		"nested", n,
		"count", 3,
		"clean", []string{"a", "b"},
	)
	l.WithGroup("g").Warn("in a group", "tok", session, "n", 1)
}

func TestHandlerText(t *testing.T) {
	var buf bytes.Buffer
	set := newSet()
	l := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), set))
	logEverything(l)
	out := buf.String()
	for _, leak := range []string{password, session, "session/token"} {
		if strings.Contains(out, leak) {
			t.Errorf("log holds %q:\n%s", leak, out)
		}
	}
	for _, want := range []string{
		`msg="connecting with [redacted]"`, `with_attr="pw=[redacted]"`, `with_group.tok=[redacted]`,
		`str="x [redacted] y"`, `err="handshake: 403 body echoes [redacted]: refused"`,
		`stringer=stringer([redacted])`, `bytes="raw [redacted]"`, `valuer="valuer [redacted]"`,
		`grp.inner=[redacted]`, `grp.deeper.e=[redacted]`, `nested="{Name:creds Inner:{Token:[redacted]}}"`,
		`count=3`, `clean="[a b]"`, `g.tok=[redacted] g.n=1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if SetOf(l.Handler()) != set || SetOf(l.With("a", 1).WithGroup("b").Handler()) != set || SetOf(slog.NewTextHandler(&buf, nil)) != nil {
		t.Error("SetOf does not find the Set through With and WithGroup")
	}
}

func TestHandlerJSON(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil), newSet()))
	logEverything(l)
	out := buf.String()
	for _, leak := range []string{password, session, "session/token", `session\/token`} {
		if strings.Contains(out, leak) {
			t.Errorf("log holds %q:\n%s", leak, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	if rec["msg"] != "connecting with [redacted]" || rec["err"] != "handshake: 403 body echoes [redacted]: refused" ||
		rec["count"] != float64(3) {
		t.Errorf("record: %v", rec)
	}
	// A value without secrets keeps its JSON form.
	if c, ok := rec["clean"].([]any); !ok || len(c) != 2 {
		t.Errorf("clean = %#v, want a JSON array", rec["clean"])
	}
	if g, ok := rec["grp"].(map[string]any); !ok || g["inner"] != Placeholder {
		t.Errorf("grp = %#v", rec["grp"])
	}
}

// Secrets learnt after the logger was built are scrubbed from later records.
func TestHandlerLearnsLater(t *testing.T) {
	var buf bytes.Buffer
	set := NewSet()
	l := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), set)).With("component", "aws")
	l.Info("before", "tok", "later-secret-value")
	set.Add("cognito login token", "later-secret-value")
	l.Info("after", "tok", "later-secret-value")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], "later-secret-value") || strings.Contains(lines[1], "later-secret-value") {
		t.Fatalf("got:\n%s", buf.String())
	}
}

func TestHandlerLevels(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}), nil)
	l := slog.New(h)
	l.Info("dropped")
	l.Warn("kept")
	if strings.Contains(buf.String(), "dropped") || !strings.Contains(buf.String(), "kept") {
		t.Fatalf("levels not honoured: %s", buf.String())
	}
	if SetOf(h) == nil {
		t.Fatal("NewHandler(…, nil) has no Set")
	}
}

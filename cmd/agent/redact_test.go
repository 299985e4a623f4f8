package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/redact"
)

// The daemon's logger, text or JSON, scrubs every secret the agent registers with its Set.
func TestDaemonLoggerScrubs(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		log, err := newLogger(config.Log{Level: "info", Format: format}, &out)
		if err != nil {
			t.Fatal(err)
		}
		set := redact.SetOf(log.Handler())
		if set == nil {
			t.Fatalf("%s logger has no redact.Set", format)
		}
		set.Add("broker password", "pa55word-from-file")
		log.With("component", "transport").Error("connect failed", "err", errors.New("server said: bad password pa55word-from-file"))
		if s := out.String(); strings.Contains(s, "pa55word") || !strings.Contains(s, redact.Placeholder) {
			t.Errorf("%s log: %s", format, s)
		}
	}
}

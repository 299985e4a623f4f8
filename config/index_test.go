package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// Why config keeps its own key index (index.go) instead of go-toml's errors: for each case below,
// go-toml v2's error lacks the key, the array index or the line that Parse reports. If an upgrade
// makes go-toml give them, this test fails: then drop the part of the index that case needed.
func TestIndexNeededOverGoTomlErrors(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		libLine   int    // the line go-toml reports
		libKey    string // the key go-toml reports ("" = none)
		want      string // what Parse reports
	}{
		// A type error: DecodeError.Key() is empty for every type error.
		{"type error", "[[subscribe]]\ntopic = 'a'\n[[subscribe]]\ntopic = 'b'\nqos = 'x'\n", 5, "",
			"test.toml:5: subscribe[1].qos: wrong type"},
		// A value whose UnmarshalText fails (Size, Duration): no key and line 1, wherever it is.
		{"unmarshaler", "client_id = 'x'\n\n[api]\nmax_payload = true\n", 1, "",
			"test.toml:4: api.max_payload: size \"true\" does not start with a number"},
		// An unknown key in the second [[subscribe]]: StrictMissingError names "subscribe.bogus", not which entry.
		{"unknown key in an array of tables", "[[subscribe]]\ntopic = 'a'\n[[subscribe]]\ntopic = 'b'\nbogus = 1\n", 5, "subscribe.bogus",
			"test.toml:5: unknown key subscribe[1].bogus"},
	} {
		err := toml.NewDecoder(bytes.NewReader([]byte(c.doc))).DisallowUnknownFields().Decode(new(Config))
		line, key := 0, ""
		var de *toml.DecodeError
		var se *toml.StrictMissingError
		switch {
		case errors.As(err, &se):
			line, _ = se.Errors[0].Position()
			key = strings.Join(se.Errors[0].Key(), ".")
		case errors.As(err, &de):
			line, _ = de.Position()
			key = strings.Join(de.Key(), ".")
		default:
			t.Fatalf("%s: go-toml returned %T %v", c.name, err, err)
		}
		if line != c.libLine || key != c.libKey {
			t.Errorf("%s: go-toml now reports line %d key %q (was %d %q): see whether the index is still needed", c.name, line, key, c.libLine, c.libKey)
		}
		if _, err := Parse([]byte(c.doc), "test.toml"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse: %v, want %q", c.name, err, c.want)
		}
	}
	// A value that decodes but is wrong (every check of validate.go) gets no go-toml error at all: its
	// line comes from the index, and so does whether a key was set (max_publish_rate = 0 means "no
	// limit", left out means the provider's default).
	_, err := Parse([]byte("client_id = 'x'\n[broker]\nurl = 'ws://h/mqtt'\n\nkeepalive = '1500ms'\n"), "test.toml")
	if err == nil || !strings.Contains(err.Error(), "test.toml:5: broker.keepalive: 1.5s: MQTT counts keepalive in whole seconds") {
		t.Errorf("semantic error: %v", err)
	}
	aws := "client_id = 'x'\n[broker]\nprovider = 'aws-iot'\nurl = 'wss://x.iot.eu-west-1.amazonaws.com/mqtt'\n"
	for doc, want := range map[string]float64{aws: 100, aws + "max_publish_rate = 0\n": 0} {
		if c, err := Parse([]byte(doc), "test.toml"); err != nil || c.Broker.MaxPublishRate != want {
			t.Errorf("max_publish_rate: %v, %v; want %v", c, err, want)
		}
	}
}

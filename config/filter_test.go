package config

import (
	"strings"
	"testing"
)

// Filters in the config follow the same rules as at the socket (package topic): a control character
// or a noncharacter is a config error naming the key.
func TestFilterCharacterRules(t *testing.T) {
	for _, c := range []struct{ filter, want string }{
		{`a/\u0001/#`, "control character U+0001 at byte 2"},
		{`a/\u009f`, "control character U+009F"},
		{`a/\uFDD0/+`, "noncharacter U+FDD0"},
		{`a/\uFFFF`, "noncharacter U+FFFF"},
	} {
		doc := "client_id = 'x'\nstate_dir = '/tmp/x'\n[broker]\nprovider = 'mqtt'\nurl = 'ws://127.0.0.1:1883/mqtt'\n" +
			"[[subscribe]]\ntopic = \"" + c.filter + "\"\n"
		_, err := Parse([]byte(doc), "test.toml")
		if err == nil || !strings.Contains(err.Error(), "subscribe[0].topic") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("filter %s: %v, want an error naming subscribe[0].topic and %q", c.filter, err, c.want)
		}
	}
}

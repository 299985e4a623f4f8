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

// A [[subscribe]] filter is held to the provider's topic limits too (AWS IoT: 256 bytes, 8 levels):
// the broker would refuse it, so the file is refused instead, naming the key.
func TestSubscribeFilterProviderLimits(t *testing.T) {
	for _, c := range []struct{ provider, url, want string }{
		{"aws-iot", "wss://x.iot.eu-west-1.amazonaws.com/mqtt", "filter has 8 slashes, over the limit of 7"},
		{"mqtt", "ws://127.0.0.1:1883/mqtt", ""},
	} {
		doc := "client_id = 'x'\nstate_dir = '/tmp/x'\n[broker]\nprovider = '" + c.provider + "'\nurl = '" + c.url + "'\n" +
			"[[subscribe]]\ntopic = 'a/b/c/d/e/f/g/h/#'\n"
		_, err := Parse([]byte(doc), "test.toml")
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), "test.toml:7: subscribe[0].topic") || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.provider, err, c.want)
		}
	}
}

package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: Parse must never panic, and must answer either a config or
// errors that are *Error values naming a file.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"testdata/spec-example.toml", "testdata/two-brokers.toml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, s := range []string{
		"", "[broker]\nurl = 'ws://h/mqtt'\n", `"cli\u0065nt" = 1`, "[log.format]\n", "a.b.c = 1\n",
		"[[subscribe]]\ntopic='a'\n[[subscribe.x]]\n", "[queue]\nmax_bytes = '1.5GiB'\n", "broker = {url = 1}\n",
		"subscribe = [{topic = 'a'}, 1, [2]]\n", "[broker]\nkeepalive = {x = 1}\n", "[access]\n[[access]]\n",
		"x = \"\"\"\nmulti\nline\"\"\"\n[queue\n", "client_id = 2000-01-01T00:00:00Z\n",
		"[[broker]]\nname='a'\nurl='ws://h/mqtt'\n[broker.queue]\nmax_bytes=1\n[[broker]]\n[broker.cognito]\n",
		"broker = [{name = 'a'}, 1]\n", "[broker]\n[[broker]]\n", "[[broker]]\n[[broker.queue]]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s), "f.toml")
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.File != "f.toml" || !strings.HasPrefix(err.Error(), "f.toml") {
			t.Fatalf("error %T %q is not a *config.Error for f.toml", err, err)
		}
		if e.Line < 0 || e.Line > strings.Count(s, "\n")+1 {
			t.Fatalf("line %d outside the document: %v", e.Line, err)
		}
	})
}

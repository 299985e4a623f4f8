package main

import (
	"encoding/json"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/queue"
)

func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^version: dev
commit: unknown
build date: unknown
go: go\S+
platform: [a-z0-9]+/[a-z0-9]+(/v[5-7])?
queue format: ` + strconv.Itoa(queue.FormatVersion) + "\n$")
	for _, arg := range []string{"version", "--version"} {
		r := runCLI(t, nil, arg)
		r.want(t, 0)
		if !want.MatchString(r.stdout) || r.stderr != "" {
			t.Fatalf("%s: %q", arg, r.stdout)
		}
	}
}

func TestVersionStamped(t *testing.T) {
	old := [3]string{version, commit, date}
	version, commit, date = "1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-11-30T17:30:27Z"
	defer func() { version, commit, date = old[0], old[1], old[2] }()

	r := runCLI(t, nil, "version")
	r.want(t, 0)
	for _, line := range []string{"version: 1.2.3", "commit: 0123456789abcdef0123456789abcdef01234567",
		"build date: 2026-11-30T17:30:27Z", "go: " + runtime.Version()} {
		if !strings.Contains(r.stdout, line+"\n") {
			t.Errorf("no %q in %q", line, r.stdout)
		}
	}

	r = runCLI(t, nil, "version", "--json")
	r.want(t, 0)
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	wantJSON := map[string]any{"version": "1.2.3", "commit": "0123456789abcdef0123456789abcdef01234567",
		"build_date": "2026-11-30T17:30:27Z", "go_version": runtime.Version(), "queue_format": float64(queue.FormatVersion)}
	for k, v := range wantJSON {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if s, _ := got["platform"].(string); !strings.HasPrefix(s, runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("platform %q", s)
	}
}

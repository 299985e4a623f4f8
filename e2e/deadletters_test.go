package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// TestDeadLettersCLI: a message the broker refuses does not block the stream; `edge-agent deadletters`
// lists it with the reason, --requeue sends it again (refused again), --delete removes it.
func TestDeadLettersCLI(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	os.WriteFile(acl, []byte("topic deny forbidden/#\ntopic readwrite #\n"), 0o644)
	b := mosquitto.Start(t, mosquitto.WithConfig("acl_file "+acl))
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "ok/#")
	ag := newAgent(t, b.WSURL())
	ag.start()
	for _, args := range [][]string{
		{"pub", "-t", "forbidden/x", "-m", "poison"},
		{"pub", "-t", "ok/after", "-m", "fine"},
	} {
		if _, errOut, code := ag.cli("", args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	if _, err := sub.WaitCount(1, 15*time.Second); err != nil {
		t.Fatalf("the refused message blocked the one behind it: %v", err)
	}
	var out string
	testutil.WaitFor(t, 10*time.Second, "the dead letter to be listed", func() bool {
		out, _, _ = ag.cli("", "deadletters")
		return strings.Contains(out, "forbidden/x")
	})
	if !regexp.MustCompile(`(?m)^\d+\s+forbidden/x\s+1\s+\S+\s+.*not authorized.*"poison"$`).MatchString(out) ||
		!strings.Contains(out, "1 dead letter(s)") {
		t.Fatalf("deadletters listing:\n%s", out)
	}
	if o, e, code := ag.cli("", "deadletters", "--requeue", "all"); code != 0 || !strings.Contains(o, "requeued 1") {
		t.Fatalf("--requeue all: %d %s %s", code, o, e)
	}
	testutil.WaitFor(t, 10*time.Second, "the requeued message to be refused again", func() bool {
		out, _, _ = ag.cli("", "deadletters", "--json")
		return strings.Count(out, `"topic":"forbidden/x"`) == 1
	})
	if o, e, code := ag.cli("", "deadletters", "--delete", "all"); code != 0 || !strings.Contains(o, "deleted 1") {
		t.Fatalf("--delete all: %d %s %s", code, o, e)
	}
	if o, _, _ := ag.cli("", "deadletters"); !strings.Contains(o, "0 dead letter(s)") {
		t.Fatalf("after delete:\n%s", o)
	}
	if _, e, code := ag.cli("", "deadletters", "--requeue", "x1"); code != 2 || !strings.Contains(e, "not an id") {
		t.Fatalf("bad id: %d %s", code, e)
	}
}

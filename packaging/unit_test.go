package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest systemd-analyze security exposure the unit may have (0 = locked down,
// 10 = no sandbox). The agent needs its state and socket directories, the network and nothing else.
const maxExposure = 2.0

// unitFile is systemd/edge-agent.service with ExecStart pointing at a real binary (the amd64
// package's), since verify checks that the command exists.
func unitFile(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	run(t, nil, "dpkg-deb", "-x", debs(t)["amd64"], data)
	unit, err := os.ReadFile(filepath.Join(repo(t), "systemd/edge-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	const exec = "\nExecStart=/usr/bin/edge-agent "
	if !strings.Contains(string(unit), exec) {
		t.Fatalf("the unit does not run /usr/bin/edge-agent, where the package installs it")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "edge-agent.service")
	body := strings.Replace(string(unit), exec, "\nExecStart="+filepath.Join(data, "usr/bin/edge-agent")+" ", 1)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnitVerify(t *testing.T) {
	need(t, "systemd-analyze")
	if out := run(t, nil, "systemd-analyze", "verify", unitFile(t)); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify complains:\n%s", out)
	}
}

func TestUnitSecurity(t *testing.T) {
	need(t, "systemd-analyze")
	out := run(t, nil, "systemd-analyze", "security", "--offline=true", "--no-pager", unitFile(t))
	m := regexp.MustCompile(`Overall exposure level for edge-agent\.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	exposure, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security --offline=true: exposure %.1f", exposure)
	if exposure > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", exposure, maxExposure, out)
	}
	// What the agent needs stays granted: the sandbox must not break it.
	unit, _ := os.ReadFile(filepath.Join(repo(t), "systemd/edge-agent.service"))
	for _, line := range []string{"Type=notify", "StateDirectory=edge-agent", "RuntimeDirectory=edge-agent", "NoNewPrivileges=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "User=edge-agent", "WatchdogSec="} {
		if !strings.Contains(string(unit), "\n"+line) {
			t.Errorf("unit lacks %q", line)
		}
	}
}

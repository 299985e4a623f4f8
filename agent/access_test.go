package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

// The child half of TestAccessRulesWithRealPeers: run as another user, do one request over the socket
// and print the status code.
func init() {
	spec := os.Getenv("EDGE_AGENT_TEST_ACCESS_CLIENT") // "METHOD SOCKET PATH"
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f[1])
	}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(f[0], "http://agent"+f[2], strings.NewReader("x"))
	resp, err := c.Do(req)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	os.Exit(0)
}

// [[access]] rules are enforced against the real SO_PEERCRED identity of the calling process: a
// process running as another user may do exactly what its rule allows.
func TestAccessRulesWithRealPeers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test starts a client process as uid 65534 and needs root (CI runs as root)")
	}
	const nobody = 65534
	b := mosquitto.Start(t)
	// The socket's directory and a copy of this test binary must be reachable by the other user.
	dir := testutil.SocketDir(t)
	os.Chmod(dir, 0o755)
	self, _ := os.Executable()
	client := filepath.Join(dir, "client")
	if out, err := exec.Command("cp", self, client).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Chmod(client, 0o755)
	sock := filepath.Join(dir, "agent.sock")
	ta := startAgentAt(t, b.WSURL(), fmt.Sprintf(`
[[access]]
uid       = %d
publish   = ["sensors/#"]
subscribe = ["cmd/+/reboot"]
`, nobody), t.TempDir(), sock)
	if fi, _ := os.Stat(sock); fi.Mode().Perm() != 0o666 {
		t.Fatalf("with [[access]] rules the socket must be 0666 (checked per request), got %v", fi.Mode().Perm())
	}
	as := func(uid uint32, method, path string) string {
		cmd := exec.Command(client, "-test.run=^$")
		if emu := os.Getenv("AGENT_TEST_CHILD_EXEC"); emu != "" { // e.g. qemu-arm-static for an ARM test binary
			cmd = exec.Command(emu, client, "-test.run=^$")
		}
		cmd.Env = append(os.Environ(), "EDGE_AGENT_TEST_ACCESS_CLIENT="+method+" "+sock+" "+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v: %s", uid, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		uid          uint32
		method, path string
		want         string
	}{
		{nobody, "POST", "/v1/publish?topic=sensors/t1", "202"},
		{nobody, "POST", "/v1/publish?topic=actuators/valve", "403"},
		{nobody, "GET", "/v1/subscribe?topic=sensors/%23", "403"},
		{nobody, "GET", "/v1/subscribe?topic=cmd/%23", "403"},
		{nobody, "GET", "/v1/deadletters", "403"},
		{nobody, "GET", "/v1/status", "200"},
		{0, "POST", "/v1/publish?topic=actuators/valve", "202"},
	} {
		got := as(c.uid, c.method, c.path)
		if !strings.HasPrefix(got, c.want+" ") {
			t.Errorf("uid %d %s %s: %q, want %s", c.uid, c.method, c.path, got, c.want)
		}
		if c.want == "403" && !strings.Contains(got, fmt.Sprint(c.uid)) && !strings.Contains(got, "only root") {
			t.Errorf("403 does not say who was refused: %q", got)
		}
	}
	if st := ta.status(); st.Accepted != 2 {
		t.Fatalf("accepted %d, want 2", st.Accepted)
	}
}

// Package e2e drives the real edge-agent binary as a user would: a real Mosquitto, the agent as a
// separate process killed with SIGKILL, the CLI publishing through the Unix socket, and a TCP proxy
// that cuts the network.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/netproxy"
	"github.com/edge-agent/edge-agent/internal/rabbitmq"
	"github.com/edge-agent/edge-agent/internal/testutil"
)

var (
	agentBin string // the agent exactly as shipped
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edge-agent-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "edge-agent")
	tags, err := goTags("../scripts/build.env")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-tags", tags, "-o", agentBin, "github.com/edge-agent/edge-agent/cmd/agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build edge-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	rabbitmq.CloseShared() // started by the first test that needs it (mqtt311_test.go)
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// goTags reads GO_TAGS from the build settings every shipped binary is built with, so the agent under
// test is the one we ship.
func goTags(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("build settings: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "GO_TAGS="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("build settings: no GO_TAGS line in %s", path)
}

// agentProc is the edge-agent binary running as its own process.
type agentProc struct {
	t      *testing.T
	bin    string
	cfg    string
	sock   string
	state  string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}

	httpOnce sync.Once
	http     *http.Client // see httpClient
}

// agentOptions tune newAgentWith; the zero value is what newAgent uses.
type agentOptions struct {
	Keepalive     string // broker.keepalive; default "5s"
	FastReconnect bool   // reconnect_min/max of fastReconnectMin/Max instead of the defaults
	Broker        string // more lines of the [broker] table, e.g. "protocol = \"3.1.1\"\n"
}

func newAgent(t *testing.T, brokerURL string) *agentProc {
	t.Helper()
	return newAgentWith(t, brokerURL, agentOptions{})
}

func newAgentWith(t *testing.T, brokerURL string, o agentOptions) *agentProc {
	t.Helper()
	if o.Keepalive == "" {
		o.Keepalive = "5s"
	}
	dir := t.TempDir()
	p := &agentProc{t: t, bin: agentBin, cfg: filepath.Join(dir, "agent.toml"), sock: testutil.SocketPath(t, "agent.sock"), state: filepath.Join(dir, "state")}
	toml := fmt.Sprintf("client_id = \"e2e-%d\"\nstate_dir = %q\nsocket = %q\n\n[broker]\nprovider = \"mqtt\"\nurl = %q\nkeepalive = %q\n",
		time.Now().UnixNano(), p.state, p.sock, brokerURL, o.Keepalive)
	if o.FastReconnect {
		toml += fmt.Sprintf("reconnect_min = %q\nreconnect_max = %q\n", fastReconnectMin, fastReconnectMax)
	}
	toml += o.Broker
	if err := os.WriteFile(p.cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = lf
	t.Cleanup(func() {
		p.kill()
		lf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(lf.Name())
			t.Logf("agent log:\n%s", b)
		}
	})
	return p
}

func (p *agentProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "run", "--config", p.cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	cmd := p.cmd
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			p.t.Fatalf("agent exited during start-up: %v", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatal("agent socket not up after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and reaps the process.
func (p *agentProc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// terminate sends SIGTERM and returns the exit code.
func (p *agentProc) terminate() int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatal("agent did not exit within 30s of SIGTERM")
	}
	code := p.cmd.ProcessState.ExitCode()
	p.cmd = nil
	return code
}

// cli runs the edge-agent CLI against this agent's socket.
func (p *agentProc) cli(stdin string, args ...string) (string, string, int) {
	p.t.Helper()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(os.Environ(), "EDGE_AGENT_SOCKET="+p.sock)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			p.t.Fatalf("%v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

type status struct {
	State string `json:"state"`
	Queue struct {
		Depth int `json:"depth"`
	} `json:"queue"`
}

func (p *agentProc) status() status {
	p.t.Helper()
	out, errOut, code := p.cli("", "status", "--json")
	if code != 0 {
		p.t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		p.t.Fatalf("status --json: %v: %q", err, out)
	}
	return st
}

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// TestStoreAndForwardAcrossCutAndKill is the acceptance run: 2,000 messages published with
// `edge-agent pub -l`, across a network cut and a kill -9 of the agent, all reach a Mosquitto
// subscriber, in order, none lost.
func TestStoreAndForwardAcrossCutAndKill(t *testing.T) {
	b := mosquitto.Start(t)
	wsHost := strings.TrimSuffix(strings.TrimPrefix(b.WSURL(), "ws://"), "/mqtt")
	proxy, err := netproxy.New(wsHost)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "e2e/#")
	ag := newAgent(t, "ws://"+proxy.Addr()+"/mqtt")
	ag.start()

	pub := func(from, to int) {
		t.Helper()
		_, errOut, code := ag.cli(numbered(from, to), "pub", "-t", "e2e/seq", "-q", "1", "-l")
		if code != 0 {
			t.Fatalf("pub -l %d..%d: exit %d: %s", from, to, code, errOut)
		}
	}
	pub(1, 500)
	if _, err := sub.WaitCount(500, 30*time.Second); err != nil {
		t.Fatalf("online phase: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "every PUBACK of the online phase", func() bool { return ag.status().Queue.Depth == 0 })

	proxy.Cut()
	testutil.WaitFor(t, 15*time.Second, "agent to see the cut", func() bool { return ag.status().State != "connected" })
	pub(501, 1500)
	if d := ag.status().Queue.Depth; d != 1000 {
		t.Fatalf("queue depth while offline = %d, want 1000", d)
	}

	ag.kill() // kill -9 while offline with 1000 queued
	ag.start()
	if d := ag.status().Queue.Depth; d != 1000 {
		t.Fatalf("queue depth after kill -9 and restart = %d, want 1000", d)
	}
	pub(1501, 2000)
	if d := ag.status().Queue.Depth; d != 1500 {
		t.Fatalf("queue depth = %d, want 1500", d)
	}

	proxy.Restore()
	msgs, err := sub.WaitDistinct(2000, 60*time.Second)
	if err != nil {
		t.Fatalf("after restore: %v", err)
	}
	dups, err := mosquitto.CheckNumbered(msgs, 2000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2000 published, 2000 delivered in order, %d duplicates, 0 lost", dups)
	testutil.WaitFor(t, 10*time.Second, "queue to drain", func() bool { return ag.status().Queue.Depth == 0 })
	if code := ag.terminate(); code != 0 {
		t.Fatalf("SIGTERM exit code %d, want 0", code)
	}
}

// TestSubPrintsBrokerMessages: `edge-agent sub -v -C 2` prints what the broker sends.
func TestSubPrintsBrokerMessages(t *testing.T) {
	b := mosquitto.Start(t)
	ag := newAgent(t, b.WSURL())
	ag.start()
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ag.status().State == "connected" })

	cmd := exec.Command(agentBin, "sub", "-t", "down/#", "-v", "-C", "2")
	cmd.Env = append(os.Environ(), "EDGE_AGENT_SOCKET="+ag.sock)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The sub process's subscription is in place only once it has connected; publish until it exits.
	host, port, _ := net.SplitHostPort(b.TCPAddr())
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("sub: %v\n%s", err, out.String())
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(got) != 2 || !strings.HasPrefix(got[0], "down/cmd hello-") || !strings.HasPrefix(got[1], "down/cmd hello-") {
				t.Fatalf("sub printed %q", out.String())
			}
			return
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("sub did not print 2 messages: %q", out.String())
		case <-time.After(200 * time.Millisecond):
			exec.Command("mosquitto_pub", "-h", host, "-p", port, "-t", "down/cmd", "-m", fmt.Sprintf("hello-%d", i)).Run()
		}
	}
}

// TestCurlStylePublish: a plain HTTP client over the Unix socket, as `curl --unix-socket` is.
func TestCurlStylePublish(t *testing.T) {
	b := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, b.TCPAddr(), "curl/#")
	ag := newAgent(t, b.WSURL())
	ag.start()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", ag.sock)
	}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://localhost/v1/publish?topic=curl/t&wait=delivered", "text/plain", strings.NewReader(`{"temp":21.5}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	msgs, err := sub.WaitCount(1, 10*time.Second)
	if err != nil || string(msgs[0].Payload) != `{"temp":21.5}` {
		t.Fatalf("subscriber got %v, %v", msgs, err)
	}
	if code := ag.terminate(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if _, err := os.Stat(ag.sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after SIGTERM: %v", err)
	}
}

package aedes

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mqttprobe"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

const (
	// readyTimeout bounds how long Start and Restart wait for the listeners.
	readyTimeout = 15 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// InstallCommand installs the npm modules (run from the repository root).
	InstallCommand = "npm ci --no-audit --no-fund --prefix internal/aedes"
)

// Broker is a running (or stopped) Aedes process owned by one test.
type Broker struct {
	script  string
	logPath string

	tcpPort, wsPort int

	mu   sync.Mutex
	proc *testproc.Proc
}

// Start launches Aedes on free loopback ports and waits until it answers an MQTT
// 3.1.1 CONNECT over WebSocket (at most ~15 s, else t.Fatal with the log tail).
// A t.Cleanup kills the process.
func Start(t testing.TB) *Broker {
	t.Helper()
	node, dir := lookInstall(t)
	b := &Broker{script: filepath.Join(dir, "broker.mjs"), logPath: filepath.Join(t.TempDir(), "aedes.log")}
	t.Cleanup(b.Kill)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ports, perr := testproc.FreePorts(2)
		if perr != nil {
			t.Fatalf("aedes: pick free ports: %v", perr)
		}
		b.tcpPort, b.wsPort = ports[0], ports[1]
		if err = b.launch(node); !errors.Is(err, testproc.ErrExited) {
			break // started, or failed for another reason than a port taken meanwhile
		}
	}
	if err != nil {
		t.Fatalf("aedes: start %s %s: %v\n%s", node, b.script, err, b.LogTail())
	}
	return b
}

// lookInstall finds node and this package's directory, and fails the test with
// the command to run when node or the npm modules are missing.
func lookInstall(t testing.TB) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("aedes: node is not installed: run scripts/test.sh (it installs it) or apt-get install -y nodejs npm, then %s", InstallCommand)
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("aedes: cannot find the package directory (runtime.Caller)")
	}
	dir = filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "aedes", "package.json")); err != nil {
		t.Fatalf("aedes: the npm modules are not installed in %s: run scripts/test.sh, or from the repository root: %s", dir, InstallCommand)
	}
	return node, dir
}

// WSURL is the MQTT-over-WebSocket endpoint: ws://127.0.0.1:PORT/mqtt.
func (b *Broker) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d/mqtt", b.wsPort) }

// TCPAddr is the plain MQTT listener, "127.0.0.1:PORT".
func (b *Broker) TCPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.tcpPort)) }

// Running reports whether the process is alive.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc != nil && b.proc.Running()
}

// Stop sends SIGTERM (Aedes closes its servers and clients), waits up to 5 s, then
// SIGKILL. A no-op when the broker is not running.
func (b *Broker) Stop() { b.end(func(p *testproc.Proc) { p.Stop(syscall.SIGTERM, stopGrace) }) }

// Kill sends SIGKILL (kill -9): clients see their connection die without a
// DISCONNECT or a close frame. A no-op when the broker is not running.
func (b *Broker) Kill() { b.end((*testproc.Proc).Kill) }

func (b *Broker) end(how func(*testproc.Proc)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		how(b.proc)
	}
}

// Restart stops the broker if it runs (Stop) and starts it again on the same
// ports, retrying for a few seconds while a port is still busy. Sessions and
// retained messages are gone.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	node, _ := lookInstall(t)
	b.Stop()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := b.launch(node)
		if err == nil {
			return
		}
		if !errors.Is(err, testproc.ErrExited) || time.Now().After(deadline) {
			t.Fatalf("aedes: restart on the same ports: %v\n%s", err, b.LogTail())
		}
		retry := time.NewTimer(100 * time.Millisecond)
		<-retry.C
	}
}

// LogTail returns the last lines of the broker's output, for failure messages.
func (b *Broker) LogTail() string { return testproc.Tail(40, b.logPath) }

// launch starts node and waits for its ready line and a CONNACK 0 to a 3.1.1
// CONNECT over WebSocket.
func (b *Broker) launch(node string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil && b.proc.Running() {
		return errors.New("aedes is already running")
	}
	out, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	offset, _ := out.Seek(0, 2)
	p, err := testproc.Start(out, filepath.Dir(b.script), nil, node, b.script,
		strconv.Itoa(b.tcpPort), strconv.Itoa(b.wsPort))
	if err != nil {
		return err
	}
	b.proc = p
	return p.WaitReady(readyTimeout, func() error {
		data, _ := os.ReadFile(b.logPath)
		if int64(len(data)) < offset || !bytes.Contains(data[offset:], []byte("aedes ready")) {
			return errors.New(`no "aedes ready" line yet`)
		}
		a, err := mqttprobe.WS(b.WSURL(), "mqtt", mqttprobe.V311, 2*time.Second)
		if err != nil {
			return err
		}
		if code, ok := a.Connack(); !ok || code != 0 {
			return fmt.Errorf("MQTT 3.1.1 CONNECT over WebSocket: %v", a)
		}
		return nil
	})
}

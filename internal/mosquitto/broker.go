package mosquitto

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testproc"
)

const (
	// readyTimeout bounds how long Start and Restart wait for the listeners.
	readyTimeout = 10 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before sending SIGKILL.
	stopGrace = 5 * time.Second
	// installHint is the message of every "binary missing" failure.
	installHint = "run scripts/test.sh (it installs it) or apt-get install -y mosquitto mosquitto-clients"
)

// Option configures Start.
type Option func(*options)

type options struct {
	tls         bool
	persistence bool
	global      []string
	perListener []string
}

// WithTLS adds a third listener: MQTT over WebSocket with TLS (wss), using a CA and
// a server certificate for 127.0.0.1/localhost generated for this test. See
// Broker.WSSURL, Broker.CAPEM and Broker.CAFile.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithPersistence turns mosquitto's persistence on, with its database in the
// broker's directory. Mosquitto saves it on a clean shutdown (Stop, Restart) and
// loads it on start, so persistent sessions (see Persistent) keep their
// subscriptions and queued QoS 1 messages across a Restart — what a production
// broker does. Kill (SIGKILL) saves nothing.
func WithPersistence() Option { return func(o *options) { o.persistence = true } }

// WithConfig adds raw mosquitto.conf lines to the global section, after the
// package's own defaults (so they can override them), e.g.
// "max_inflight_messages 10" or "allow_anonymous false".
func WithConfig(lines ...string) Option {
	return func(o *options) { o.global = append(o.global, lines...) }
}

// WithListenerConfig adds raw mosquitto.conf lines to every listener block.
// Mosquitto scopes some options to the listener they follow even with
// per_listener_settings false (max_qos, max_topic_alias, max_connections, …).
func WithListenerConfig(lines ...string) Option {
	return func(o *options) { o.perListener = append(o.perListener, lines...) }
}

// Broker is a running (or stopped) mosquitto process owned by one test.
type Broker struct {
	bin      string
	dir      string
	confPath string
	logPath  string
	outPath  string // the process's stdout+stderr (errors before the log file opens)

	tcpPort, wsPort, wssPort int
	tls                      *tlsMaterial
	caPEM                    []byte
	caFile                   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited and been reaped
}

// Start launches a private mosquitto on free loopback ports and waits until every
// listener accepts connections (at most ~10 s, else t.Fatal with the log tail).
// A t.Cleanup kills the process.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := lookBinary(t, "mosquitto", "/usr/sbin/mosquitto")
	dir := t.TempDir()
	b := &Broker{
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "mosquitto.conf"),
		logPath:  filepath.Join(dir, "mosquitto.log"),
		outPath:  filepath.Join(dir, "mosquitto.out"),
	}
	if o.tls {
		m, err := newTLSMaterial(dir)
		if err != nil {
			t.Fatalf("mosquitto: generate TLS certificates: %v", err)
		}
		b.tls = m
		b.caPEM, b.caFile = m.caPEM, m.caFile
	}
	t.Cleanup(b.Kill)

	// Free ports are picked by binding :0 and closing again, so another process
	// can take one before mosquitto binds it. Pick new ports and retry then.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if err := b.pickPorts(o.tls); err != nil {
			t.Fatalf("mosquitto: pick free ports: %v", err)
		}
		if err := os.WriteFile(b.confPath, []byte(b.config(o)), 0o600); err != nil {
			t.Fatalf("mosquitto: write config: %v", err)
		}
		lastErr = b.launch(readyTimeout)
		if lastErr == nil {
			return b
		}
		if !errors.Is(lastErr, errExited) {
			break
		}
	}
	t.Fatalf("mosquitto: start %s -c %s: %v\n--- log tail ---\n%s", b.bin, b.confPath, lastErr, b.LogTail())
	return nil
}

// WSURL is the MQTT-over-WebSocket endpoint: ws://127.0.0.1:PORT/mqtt.
func (b *Broker) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d/mqtt", b.wsPort) }

// WSSURL is the TLS WebSocket endpoint wss://127.0.0.1:PORT/mqtt; "" without WithTLS.
func (b *Broker) WSSURL() string {
	if b.wssPort == 0 {
		return ""
	}
	return fmt.Sprintf("wss://127.0.0.1:%d/mqtt", b.wssPort)
}

// TCPAddr is the plain MQTT listener, "127.0.0.1:PORT" (for mosquitto_sub/pub checkers).
func (b *Broker) TCPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.tcpPort)) }

// CAPEM is the PEM of the CA that signed the wss listener's certificate; nil without WithTLS.
func (b *Broker) CAPEM() []byte { return append([]byte(nil), b.caPEM...) }

// CAFile is the path of a file holding CAPEM (usable as the agent's ca_file); "" without WithTLS.
func (b *Broker) CAFile() string { return b.caFile }

// Dir is the broker's temporary directory (config, log, certificates).
func (b *Broker) Dir() string { return b.dir }

// Running reports whether the process is alive.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runningLocked()
}

func (b *Broker) runningLocked() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM (a clean broker shutdown: clients see a DISCONNECT or FIN),
// waits, and sends SIGKILL if the process is still alive after 5 s. It is a no-op
// when the broker is not running.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM, stopGrace) }

// Kill sends SIGKILL and waits for the process: clients see their connection die
// without a DISCONNECT. It is a no-op when the broker is not running.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL, stopGrace) }

func (b *Broker) signal(sig syscall.Signal, grace time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.runningLocked() {
		return
	}
	_ = b.cmd.Process.Signal(sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-b.done:
		return
	case <-timer.C:
	}
	_ = b.cmd.Process.Kill()
	<-b.done
}

// Restart stops the broker if it is running (SIGTERM, see Stop) and starts it again
// on the same ports, retrying for a few seconds while a port is still busy. Unless
// the broker was started WithPersistence, sessions and retained messages are gone.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.Stop()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := b.launch(readyTimeout)
		if err == nil {
			return
		}
		if !errors.Is(err, errExited) || time.Now().After(deadline) {
			t.Fatalf("mosquitto: restart on the same ports: %v\n--- log tail ---\n%s", err, b.LogTail())
		}
		retry := time.NewTimer(100 * time.Millisecond)
		<-retry.C
	}
}

// LogTail returns the last lines of the broker's log and of its stdout/stderr, for
// failure messages.
func (b *Broker) LogTail() string {
	var sb strings.Builder
	for _, p := range []string{b.logPath, b.outPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		fmt.Fprintf(&sb, "==> %s <==\n%s\n", filepath.Base(p), tail(data, 40))
	}
	return sb.String()
}

var errExited = errors.New("mosquitto exited")

// launch starts the process with the current config and waits until it logs
// "running" and every port accepts a connection.
func (b *Broker) launch(timeout time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runningLocked() {
		return errors.New("mosquitto is already running")
	}
	logOffset := int64(0)
	if fi, err := os.Stat(b.logPath); err == nil {
		logOffset = fi.Size()
	}
	out, err := os.OpenFile(b.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.outPath, err)
	}
	cmd := exec.Command(b.bin, "-c", b.confPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return fmt.Errorf("exec %s: %w", b.bin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		_ = out.Close()
		close(done)
	}()
	b.cmd, b.done = cmd, done

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return fmt.Errorf("%w before it was ready (%v)", errExited, waitErr)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("not ready after %v (listeners 127.0.0.1:%v)", timeout, b.ports())
		case <-tick.C:
		}
		if b.readyLocked(logOffset) {
			return nil
		}
	}
}

// readyLocked: the log (past offset) says "running" — mosquitto logs that only
// after every listener is open — and every port accepts a TCP connection.
func (b *Broker) readyLocked(logOffset int64) bool {
	data, err := os.ReadFile(b.logPath)
	if err != nil || int64(len(data)) < logOffset || !bytes.Contains(data[logOffset:], []byte(" running")) {
		return false
	}
	for _, p := range b.ports() {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
	}
	return true
}

func (b *Broker) ports() []int {
	ps := []int{b.tcpPort, b.wsPort}
	if b.wssPort != 0 {
		ps = append(ps, b.wssPort)
	}
	return ps
}

func (b *Broker) pickPorts(withTLS bool) error {
	n := 2
	if withTLS {
		n = 3
	}
	ports, err := testproc.FreePorts(n)
	if err != nil {
		return err
	}
	b.tcpPort, b.wsPort = ports[0], ports[1]
	if withTLS {
		b.wssPort = ports[2]
	}
	return nil
}

func lookBinary(t testing.TB, name, fallback string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return fallback
	}
	if name == "mosquitto" {
		t.Fatalf("mosquitto not installed: %s", installHint)
	}
	t.Fatalf("%s not installed (package mosquitto-clients): %s", name, installHint)
	return ""
}

func tail(data []byte, lines int) string {
	s := strings.TrimRight(string(data), "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

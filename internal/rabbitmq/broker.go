package rabbitmq

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/mqttprobe"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

const (
	// serverScript is rabbitmq-server without Debian's wrapper (which would switch
	// to the rabbitmq user and write its logs under /var/log).
	serverScript = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	// readyTimeout bounds how long a boot may take before Start gives up.
	readyTimeout = 90 * time.Second
	// stopGrace is how long Stop waits after SIGTERM (a clean shutdown takes ~2 s).
	stopGrace = 20 * time.Second
	// installHint is the message of every "not installed" failure.
	installHint = "run scripts/test.sh (it installs it) or apt-get install -y rabbitmq-server"
	// userName is the test user; anonymous MQTT clients are mapped to it.
	userName = "edge-test"
)

// Broker is a running (or stopped) RabbitMQ node owned by one test or, through
// Shared, by one test binary.
type Broker struct {
	dir      string
	node     string
	password string
	// ports: AMQP, MQTT, WebSocket MQTT, Erlang distribution, epmd.
	amqpPort, mqttPort, wsPort, distPort, epmdPort int

	mu     sync.Mutex
	epmd   *testproc.Proc
	rabbit *testproc.Proc
	booted time.Duration // how long the last boot took
}

var nodeSeq atomic.Int64

// Start launches a private RabbitMQ node and waits until its WebSocket listener
// answers an MQTT 3.1.1 CONNECT with CONNACK 0 (at most 90 s, else t.Fatal with
// the log tail). A t.Cleanup kills it and its epmd. Boot takes seconds: see
// Shared.
func Start(t testing.TB) *Broker {
	t.Helper()
	b, err := start(t.TempDir())
	if b != nil {
		t.Cleanup(b.close)
	}
	if err != nil {
		t.Fatalf("rabbitmq: %v", err)
	}
	t.Logf("rabbitmq: node %s booted in %v", b.node, b.BootTime().Round(time.Millisecond))
	return b
}

func start(dir string) (*Broker, error) {
	if _, err := os.Stat(serverScript); err != nil {
		return nil, fmt.Errorf("rabbitmq-server is not installed (%s): %s", serverScript, installHint)
	}
	b := &Broker{
		dir:      dir,
		node:     fmt.Sprintf("edge-test-%d-%d@localhost", os.Getpid(), nodeSeq.Add(1)),
		password: "edge-test-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	for _, d := range []string{"log", "mnesia", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	// Free ports are picked by binding :0 and closing again, so another process
	// can take one before the node binds it: pick new ports and retry then.
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		ports, perr := testproc.FreePorts(5)
		if perr != nil {
			return b, fmt.Errorf("pick free ports: %w", perr)
		}
		b.amqpPort, b.mqttPort, b.wsPort, b.distPort, b.epmdPort = ports[0], ports[1], ports[2], ports[3], ports[4]
		if err = b.writeConfig(); err != nil {
			return b, err
		}
		if err = b.launch(); err == nil || !errors.Is(err, testproc.ErrExited) {
			break
		}
		b.close()
	}
	if err != nil {
		return b, fmt.Errorf("start %s (node %s): %w\n%s", serverScript, b.node, err, b.LogTail())
	}
	return b, nil
}

// WSURL is the MQTT-over-WebSocket endpoint: ws://127.0.0.1:PORT/ws.
func (b *Broker) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d/ws", b.wsPort) }

// TCPAddr is the plain MQTT listener, "127.0.0.1:PORT".
func (b *Broker) TCPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.mqttPort)) }

// User is the test user's name and password (anonymous MQTT clients act as it).
func (b *Broker) User() (name, password string) { return userName, b.password }

// Node is the Erlang node name, e.g. "edge-test-1234-1@localhost".
func (b *Broker) Node() string { return b.node }

// BootTime is how long the last Start or Restart took until the broker answered.
func (b *Broker) BootTime() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.booted
}

// Running reports whether the node's VM is alive.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rabbit != nil && b.rabbit.Running()
}

// Stop shuts the node down cleanly (SIGTERM: clients get their TCP connections
// closed), waiting up to 20 s before SIGKILL. A no-op when it is not running.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rabbit != nil {
		b.rabbit.Stop(syscall.SIGTERM, stopGrace)
	}
}

// Kill sends SIGKILL to the node's VM and its process group (kill -9): clients
// see their connections die without a close. A no-op when it is not running.
func (b *Broker) Kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rabbit != nil {
		b.rabbit.Kill()
	}
}

// Restart stops the node if it runs (Stop) and boots it again with the same
// ports and data directory: durable state (persistent MQTT sessions and their
// queued QoS 1 messages, the test user) survives. t.Fatal when it does not come
// back within 90 s.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.Stop()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := b.launch()
		if err == nil {
			t.Logf("rabbitmq: node %s rebooted in %v", b.node, b.BootTime().Round(time.Millisecond))
			return
		}
		if !errors.Is(err, testproc.ErrExited) || time.Now().After(deadline) {
			t.Fatalf("rabbitmq: restart node %s on the same ports: %v\n%s", b.node, err, b.LogTail())
		}
		retry := time.NewTimer(500 * time.Millisecond)
		<-retry.C
	}
}

// LogTail returns the last lines of the node's log and of its stdout/stderr.
func (b *Broker) LogTail() string {
	return testproc.Tail(40, filepath.Join(b.dir, "log", "rabbit.log"), filepath.Join(b.dir, "rabbit.out"), filepath.Join(b.dir, "epmd.out"))
}

// close kills the node and its epmd and waits for both.
func (b *Broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range []*testproc.Proc{b.rabbit, b.epmd} {
		if p != nil {
			p.Kill()
		}
	}
	b.rabbit, b.epmd = nil, nil
}

// launch starts epmd (unless it runs) and the node, and waits until the
// WebSocket listener accepts an MQTT 3.1.1 CONNECT.
func (b *Broker) launch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rabbit != nil && b.rabbit.Running() {
		return errors.New("the node is already running")
	}
	began := time.Now()
	if b.epmd == nil || !b.epmd.Running() {
		p, err := b.run("epmd.out", "epmd", "-port", strconv.Itoa(b.epmdPort))
		if err != nil {
			return fmt.Errorf("epmd: %w", err)
		}
		b.epmd = p
		epmdAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.epmdPort))
		if err := p.WaitReady(10*time.Second, func() error { return dial(epmdAddr) }); err != nil {
			return err
		}
	}
	p, err := b.run("rabbit.out", serverScript)
	if err != nil {
		return err
	}
	b.rabbit = p
	err = p.WaitReady(readyTimeout, func() error {
		if err := dial(net.JoinHostPort("127.0.0.1", strconv.Itoa(b.wsPort))); err != nil {
			return err
		}
		a, err := mqttprobe.WS(b.WSURL(), "mqtt", mqttprobe.V311, 5*time.Second)
		if err != nil {
			return err
		}
		if code, ok := a.Connack(); !ok || code != 0 {
			return fmt.Errorf("MQTT 3.1.1 CONNECT over WebSocket: %v", a)
		}
		return nil
	})
	b.booted = time.Since(began)
	return err
}

// run starts one process of the node with its environment, output appended to
// dir/outName.
func (b *Broker) run(outName, name string, args ...string) (*testproc.Proc, error) {
	out, err := os.OpenFile(filepath.Join(b.dir, outName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	return testproc.Start(out, b.dir, b.env(), name, args...)
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// env points every file of the node into its directory and its Erlang
// distribution at its own epmd.
func (b *Broker) env() []string {
	d := func(p string) string { return filepath.Join(b.dir, p) }
	return []string{
		"HOME=" + d("home"), // the Erlang cookie
		"ERL_EPMD_PORT=" + strconv.Itoa(b.epmdPort),
		// The node must not start a shared epmd daemon on the default port.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false",
		// rabbitmq-server's systemd mode: it execs the VM instead of running it
		// behind a shell, so the VM itself is our child (it gets SIGTERM and
		// Pdeathsig). Nothing listens on the socket; the node only logs that.
		"NOTIFY_SOCKET=" + d("no-systemd.sock"),
		"RABBITMQ_NODENAME=" + b.node,
		"RABBITMQ_USE_LONGNAME=false",
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(b.distPort),
		"RABBITMQ_CONF_ENV_FILE=" + d("rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE=" + d("rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + d("advanced.config"),
		"RABBITMQ_MNESIA_BASE=" + d("mnesia"),
		"RABBITMQ_LOG_BASE=" + d("log"),
		"RABBITMQ_ENABLED_PLUGINS=rabbitmq_web_mqtt",
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + d("enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR=" + d("plugins-expand"),
		"RABBITMQ_PID_FILE=" + d("rabbit.pid"),
	}
}

// writeConfig writes rabbitmq.conf for the current ports (and an empty env file,
// so the system's /etc/rabbitmq/rabbitmq-env.conf is not read).
func (b *Broker) writeConfig() error {
	lines := []string{
		"# generated by internal/rabbitmq for one test",
		fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d", b.amqpPort),
		fmt.Sprintf("mqtt.listeners.tcp.default = 127.0.0.1:%d", b.mqttPort),
		"web_mqtt.tcp.ip = 127.0.0.1",
		fmt.Sprintf("web_mqtt.tcp.port = %d", b.wsPort),
		"default_user = " + userName,
		"default_pass = " + b.password,
		"loopback_users = none",
		"mqtt.allow_anonymous = true",
		"mqtt.default_user = " + userName,
		"mqtt.default_pass = " + b.password,
		"log.console = false",
		"log.file = " + filepath.Join(b.dir, "log", "rabbit.log"),
		"log.file.level = info",
	}
	if err := os.WriteFile(filepath.Join(b.dir, "rabbitmq-env.conf"), nil, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.dir, "rabbitmq.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

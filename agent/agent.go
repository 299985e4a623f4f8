package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
	"github.com/edge-agent/edge-agent/redact"
	"github.com/edge-agent/edge-agent/transport"
)

// Version is reported by /v1/status and /metrics; cmd/agent sets it from its build stamp.
var Version = "dev"

// QueueFile is the name of the queue database inside state_dir.
const QueueFile = "queue.db"

// Agent is the daemon: it owns the queue, the transport and the local API.
// Create it with New and start it with Run; an Agent runs once.
type Agent struct {
	cfg    *config.Config
	log    *slog.Logger
	tlsCfg *tls.Config
	passwd []byte
	api    *localapi.Server
	aws    *awsiot.Provider // provider aws-iot only
	diag   diagnosis
	// secrets are scrubbed from every log record and from server-sent text in /v1/status.
	secrets *redact.Set

	// set by Run
	q       *queue.Queue
	tr      *transport.Client
	hub     *hub
	started time.Time
	stats   counters

	recovery *queue.Recovery // set when a damaged queue file was moved aside at start
}

// New checks cfg and prepares an Agent: it reads the password and CA files and resolves access
// rules, so that a bad file fails here, before anything listens. Nothing is opened until Run.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("agent: no configuration")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(discard{}, nil))
	}
	// The daemon's logger already scrubs (cmd/agent wraps it); any other logger is wrapped here.
	secrets := redact.SetOf(log.Handler())
	if secrets == nil {
		secrets = redact.NewSet()
		log = slog.New(redact.NewHandler(log.Handler(), secrets))
	}
	a := &Agent{cfg: cfg, log: log, secrets: secrets}
	aws, err := awsiot.FromConfig(cfg, log.With("component", "aws"), secrets) // nil unless provider aws-iot
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", cfg.Broker.Provider, err)
	}
	a.aws = aws
	if cfg.Broker.PasswordFile != "" {
		b, err := os.ReadFile(cfg.Broker.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("agent: broker.password_file: %w", err)
		}
		a.passwd = bytes.TrimRight(b, "\r\n")
		secrets.Add("broker password", string(a.passwd))
	}
	if cfg.Broker.CAFile != "" {
		pem, err := os.ReadFile(cfg.Broker.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent: broker.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent: broker.ca_file %s: no PEM certificates found", cfg.Broker.CAFile)
		}
		a.tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	api, err := localapi.New(a, a.apiOptions())
	if err != nil {
		return nil, err
	}
	a.api = api
	return a, nil
}

// Run opens the queue, starts the transport and serves the local API until ctx is done, then shuts
// down in order (see the package comment). ready is called once, when the socket is listening.
// A cancelled ctx is a clean shutdown and returns nil.
func (a *Agent) Run(ctx context.Context, ready func()) error {
	a.started = time.Now()
	q, err := a.openQueue()
	if err != nil {
		return err
	}
	a.q = q
	a.hub = newHub(a.log.With("component", "subscribers"), hubLimitsFor(a.cfg))
	a.hub.broker = a.cfg.Broker.Name
	tr, err := transport.New(a.transportConfig(), (*source)(a))
	if err != nil {
		q.Close()
		return fmt.Errorf("agent: %w", err)
	}
	a.tr = tr
	a.hub.tr = tr
	ln, err := a.api.Listen()
	if err != nil {
		q.Close()
		return err
	}

	r := a.start(ctx, ln)
	a.log.Info("serving local API", "socket", a.cfg.Socket, "provider", a.cfg.Broker.Provider,
		"endpoint", tr.Status().URL, "client_id", a.cfg.ClientID)
	if ready != nil {
		ready()
	}
	return a.shutdown(r, r.wait(ctx, a.log))
}

// openQueue creates state_dir and opens the queue in it; a damaged queue file is moved aside, what
// can be salvaged from it is kept, and the recovery is logged and kept for /v1/status.
func (a *Agent) openQueue() (*queue.Queue, error) {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: state_dir: %w", err)
	}
	overflow := queue.DropOldest
	if a.cfg.Queue.Overflow == "reject" {
		overflow = queue.Reject
	}
	qpath := filepath.Join(a.cfg.StateDir, QueueFile)
	q, rec, err := queue.OpenOrRecover(qpath, queue.Options{
		MaxBytes:       int64(a.cfg.Queue.MaxBytes),
		Overflow:       overflow,
		MaxAge:         a.cfg.Queue.MaxAge.Duration,
		MaxDeadLetters: a.cfg.Queue.MaxDeadLetters,
		Logger:         a.log.With("component", "queue"),
	})
	if rec != nil {
		a.recovery = rec
		a.log.Error(fmt.Sprintf("queue database was damaged: moved aside and started a fresh queue; %d messages were salvaged from it, the rest were not delivered", rec.Salvaged),
			"path", qpath, "moved_to", rec.MovedTo, "reason", rec.Reason, "salvaged", rec.Salvaged,
			"salvaged_dead_letters", rec.SalvagedDeadLetters, "salvage_error", rec.SalvageError)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: open queue %s: %w", qpath, err)
	}
	st := q.Stats()
	a.log.Info("queue open", "path", qpath, "depth", st.Depth, "bytes", st.Bytes, "dead_letters", st.DeadLetters)
	return q, nil
}

// transportConfig is the transport's configuration: the broker keys of the resolved config (with the
// provider's limits already applied by config), the subscriptions, and the agent's callbacks. It
// needs a.hub.
func (a *Agent) transportConfig() transport.Config {
	subs := make([]transport.Subscription, 0, len(a.cfg.Subscribe))
	for _, s := range a.cfg.Subscribe {
		subs = append(subs, transport.Subscription{Filter: s.Topic, QoS: byte(s.QoS)})
	}
	tcfg := transport.Config{
		URL:            a.cfg.Broker.URL,
		ClientID:       a.cfg.ClientID,
		Username:       a.cfg.Broker.Username,
		Password:       a.passwd,
		TLS:            a.tlsCfg,
		Keepalive:      a.cfg.Broker.Keepalive.Duration,
		Subscriptions:  subs,
		MaxInflight:    a.cfg.Broker.MaxInflight,
		OnMessage:      a.hub.dispatch,
		OnConnectError: a.onConnectError,
		OnConnected:    a.onConnected,
		Logger:         a.log.With("component", "transport"),
		// config applies the provider's limits (Broker.Limits) to these keys.
		MaxPublishRate:   a.cfg.Broker.MaxPublishRate,
		MaxByteRate:      int64(a.cfg.Broker.MaxByteRate),
		MaxSubscriptions: a.cfg.Broker.MaxSubscriptions,
		// Issue 7: the inbound side is bounded, a message the broker hangs up on cannot block the queue.
		MaxPacketSize: uint32(a.cfg.Broker.MaxPacketSize),
		PoisonAfter:   a.cfg.Broker.PoisonAfter,
		Backoff:       transport.FleetJitter(a.cfg.Broker.ReconnectMin.Duration, a.cfg.Broker.ReconnectMax.Duration),
	}
	// Issue 10: the MQTT version (negotiated under "auto"), the 3.x window and a persistent session.
	tcfg.Protocol = transport.Protocol(a.cfg.Broker.Protocol)
	tcfg.ClosedIsNotVersion = a.cfg.Broker.Limits.CloseIsPolicy
	tcfg.MaxInflight3 = a.cfg.Broker.MaxInflight3
	tcfg.SessionExpiry = a.cfg.Broker.SessionExpiry.Duration
	if a.aws != nil {
		tcfg.Endpoint = a.aws.Endpoint
	}
	return tcfg
}

// running is what Run started: the transport, the local API server and (aws-iot) the credential
// refresher, each on a goroutine that wg waits for. The transport and the refresher stop when
// stopTransport is called, not when Run's ctx is done, so that they outlive the API's shutdown.
type running struct {
	wg            sync.WaitGroup
	stopTransport context.CancelFunc
	trDone        chan error // the transport's Run result; buffered, read once more at shutdown
	srvDone       chan error // the API server's Serve result; likewise
}

// start starts the goroutines of a running agent that serves the API on ln.
func (a *Agent) start(ctx context.Context, ln net.Listener) *running {
	trCtx, stopTransport := context.WithCancel(context.WithoutCancel(ctx))
	r := &running{stopTransport: stopTransport, trDone: make(chan error, 1), srvDone: make(chan error, 1)}
	if a.aws != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := a.aws.Run(trCtx); err != nil {
				a.log.Error("credential refresher stopped", "err", err)
			}
		}()
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.trDone <- a.tr.Run(trCtx)
	}()
	go func() {
		defer r.wg.Done()
		r.srvDone <- a.api.Serve(ln)
	}()
	return r
}

// wait blocks until ctx is done (a clean stop: nil) or the API server or the transport stops on its
// own (an error). A result it reads is put back for shutdown.
func (r *running) wait(ctx context.Context, log *slog.Logger) error {
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-r.srvDone:
		r.srvDone <- err
		return fmt.Errorf("agent: local API stopped: %w", err)
	case err := <-r.trDone:
		r.trDone <- err
		return fmt.Errorf("agent: transport stopped: %w", err)
	}
}

// shutdown stops what start started, in order, and closes the queue. It returns runErr, or else the
// first error of the shutdown.
func (a *Agent) shutdown(r *running, runErr error) error {
	// 1. Stop accepting, end subscriber streams, let in-flight publishes finish.
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := a.api.Shutdown(shCtx); err != nil {
		a.log.Warn("local API did not finish in time; closed its connections", "err", err)
	}
	cancel()
	// 2. Stop the transport: it waits briefly for outstanding PUBACKs.
	r.stopTransport()
	r.wg.Wait()
	if err := <-r.trDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("agent: transport: %w", err)
	}
	if err := <-r.srvDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("agent: local API: %w", err)
	}
	// 3. Close the queue: flushes acknowledgements, closes bbolt cleanly.
	if err := a.q.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("agent: close queue: %w", err)
	}
	a.log.Info("stopped")
	return runErr
}

// discard is an io.Writer that drops everything (a nil logger's sink).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

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

// Agent is the daemon: it owns the queue store, one transport per broker and the local API.
// Create it with New and start it with Run; an Agent runs once.
type Agent struct {
	cfg   *config.Config
	log   *slog.Logger
	api   *localapi.Server
	links []*link // one per broker, in config order (cfg.Brokers)
	// secrets are scrubbed from every log record and from server-sent text in /v1/status.
	secrets *redact.Set

	// set by Run
	store   *queue.Store
	hub     *hub
	started time.Time

	recovery *queue.Recovery // set when a damaged queue file was moved aside at start
}

// New checks cfg and prepares an Agent: for every broker it reads the password and CA files and
// parses the routes, and it resolves access rules, so that a bad file fails here, before anything
// listens. Nothing is opened until Run.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("agent: no configuration")
	}
	if len(cfg.Brokers) == 0 || len(cfg.Brokers) > queue.MaxLanes {
		return nil, fmt.Errorf("agent: %d brokers configured; want 1 to %d", len(cfg.Brokers), queue.MaxLanes)
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
	for i := range cfg.Brokers {
		l, err := newLink(cfg, i, log, secrets)
		if err != nil {
			return nil, err
		}
		a.links = append(a.links, l)
	}
	api, err := localapi.New(a, a.apiOptions())
	if err != nil {
		return nil, err
	}
	a.api = api
	return a, nil
}

// Run opens the queue store (one lane per broker), starts one transport per broker and serves the
// local API until ctx is done, then shuts down in order (see the package comment). ready is called
// once, when the socket is listening. A cancelled ctx is a clean shutdown and returns nil.
func (a *Agent) Run(ctx context.Context, ready func()) error {
	a.started = time.Now()
	store, err := a.openStore()
	if err != nil {
		return err
	}
	a.store = store
	a.hub = newHub(a.log.With("component", "subscribers"), hubLimitsFor(a.cfg), a.links)
	for i, l := range a.links {
		l.q = store.Lanes()[i]
		tr, err := transport.New(l.transportConfig(a.hub), (*source)(l))
		if err != nil {
			store.Close()
			return fmt.Errorf("agent: %s: %w", l.key("url"), err)
		}
		l.tr = tr
	}
	ln, err := a.api.Listen()
	if err != nil {
		store.Close()
		return err
	}

	r := a.start(ctx, ln)
	if len(a.links) > 1 {
		a.log.Info("serving local API", "socket", a.cfg.Socket, "brokers", len(a.links))
	}
	for _, l := range a.links {
		msg := "broker"
		if len(a.links) == 1 {
			msg = "serving local API"
		}
		l.log.Info(msg, "socket", a.cfg.Socket, "provider", l.cfg.Provider, "endpoint", l.tr.Status().URL,
			"client_id", l.cfg.ClientID, "publish", l.cfg.Publish)
	}
	if ready != nil {
		ready()
	}
	return a.shutdown(r, r.wait(ctx, a.log))
}

// openStore creates state_dir and opens the queue store in it, one lane per broker; a damaged queue
// file is moved aside, what can be salvaged from it is kept, and the recovery is logged and kept for
// /v1/status.
func (a *Agent) openStore() (*queue.Store, error) {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: state_dir: %w", err)
	}
	opts := queue.StoreOptions{Options: queue.Options{
		MaxBytes: int64(a.cfg.Queue.MaxBytes),
		Overflow: overflowOf(a.cfg.Queue.Overflow),
		Logger:   a.log.With("component", "queue"),
	}}
	for _, l := range a.links {
		opts.Lanes = append(opts.Lanes, l.laneOptions())
	}
	qpath := filepath.Join(a.cfg.StateDir, QueueFile)
	store, rec, err := queue.OpenStoreOrRecover(qpath, opts)
	if rec != nil {
		a.recovery = rec
		a.log.Error(fmt.Sprintf("queue database was damaged: moved aside and started a fresh queue; %d messages were salvaged from it, the rest were not delivered", rec.Salvaged),
			"path", qpath, "moved_to", rec.MovedTo, "reason", rec.Reason, "salvaged", rec.Salvaged,
			"salvaged_dead_letters", rec.SalvagedDeadLetters, "salvage_error", rec.SalvageError)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: open queue %s: %w", qpath, err)
	}
	for i, q := range store.Lanes() {
		st := q.Stats()
		a.links[i].log.Info("queue open", "path", qpath, "depth", st.Depth, "bytes", st.Bytes, "dead_letters", st.DeadLetters)
	}
	return store, nil
}

// running is what Run started: one transport per broker, the local API server and (aws-iot) each
// credential refresher, each on a goroutine that wg waits for. The transports and the refreshers
// stop when stopTransport is called, not when Run's ctx is done, so that they outlive the API's
// shutdown.
type running struct {
	wg            sync.WaitGroup
	stopTransport context.CancelFunc
	trDone        chan linkResult // each transport's Run result; buffered for all, read again at shutdown
	srvDone       chan error      // the API server's Serve result; buffered, read once more at shutdown
}

// linkResult is what a broker's transport Run returned.
type linkResult struct {
	l   *link
	err error
}

// start starts the goroutines of a running agent that serves the API on ln.
func (a *Agent) start(ctx context.Context, ln net.Listener) *running {
	trCtx, stopTransport := context.WithCancel(context.WithoutCancel(ctx))
	r := &running{stopTransport: stopTransport, trDone: make(chan linkResult, len(a.links)), srvDone: make(chan error, 1)}
	for _, l := range a.links {
		if l.aws != nil {
			r.wg.Go(func() {
				if err := l.aws.Run(trCtx); err != nil {
					l.log.Error("credential refresher stopped", "err", err)
				}
			})
		}
		r.wg.Go(func() { r.trDone <- linkResult{l, l.tr.Run(trCtx)} })
	}
	r.wg.Go(func() { r.srvDone <- a.api.Serve(ln) })
	return r
}

// wait blocks until ctx is done (a clean stop: nil) or the API server or a transport stops on its
// own (an error). A result it reads is put back for shutdown.
func (r *running) wait(ctx context.Context, log *slog.Logger) error {
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-r.srvDone:
		r.srvDone <- err
		return fmt.Errorf("agent: local API stopped: %w", err)
	case res := <-r.trDone:
		r.trDone <- res
		return fmt.Errorf("agent: transport of %s stopped: %w", res.l.key("url"), res.err)
	}
}

// shutdown stops what start started, in order, and closes the queue store. It returns runErr, or
// else the first error of the shutdown.
func (a *Agent) shutdown(r *running, runErr error) error {
	// 1. Stop accepting, end subscriber streams, let in-flight publishes finish.
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := a.api.Shutdown(shCtx); err != nil {
		a.log.Warn("local API did not finish in time; closed its connections", "err", err)
	}
	cancel()
	// 2. Stop the transports, all at once: each waits briefly for its outstanding PUBACKs.
	r.stopTransport()
	r.wg.Wait()
	for range a.links {
		if res := <-r.trDone; res.err != nil && runErr == nil {
			runErr = fmt.Errorf("agent: transport of %s: %w", res.l.key("url"), res.err)
		}
	}
	if err := <-r.srvDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("agent: local API: %w", err)
	}
	// 3. Close the queue store: flushes acknowledgements, closes bbolt cleanly.
	if err := a.store.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("agent: close queue: %w", err)
	}
	a.log.Info("stopped")
	return runErr
}

// discard is an io.Writer that drops everything (a nil logger's sink).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/logging"
	"github.com/edge-agent/edge-agent/redact"
)

const defaultConfigPath = "/etc/edge-agent/agent.toml"

func setupRun(fs *flag.FlagSet) func(context.Context, *cli) int {
	path := fs.String("config", defaultConfigPath, "configuration `file`")
	fs.StringVar(path, "c", defaultConfigPath, "configuration `file` (short for --config)")
	return func(ctx context.Context, c *cli) int {
		cfg, log, err := prepare(*path, c.stderr)
		if err != nil {
			return c.errorf("%v", err)
		}
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		agent.Version = version
		if commit != "unknown" {
			agent.Commit = commit
		}
		a, err := agent.New(cfg, log) // registers the secrets it reads with the logger's redact.Set
		secrets := redact.SetOf(log.Handler())
		if err != nil {
			log.Error("edge-agent cannot start", "err", err)
			return c.errorf("%s", secrets.String(err.Error()))
		}
		var r runner = a
		if cfg.Metrics.Listen != "" {
			// Bound before Run, so that a taken port fails the start; served once the agent is ready.
			ln, err := net.Listen("tcp", cfg.Metrics.Listen)
			if err != nil {
				log.Error("edge-agent cannot start", "err", err)
				return c.errorf("metrics.listen %s: %v (pick another port, or leave metrics.listen out)", cfg.Metrics.Listen, err)
			}
			r = &withMetrics{Agent: a, ln: ln, log: log}
		}
		if err := serve(ctx, r, cfg.Socket, log, c.getenv); err != nil {
			log.Error("edge-agent stopped", "err", err)
			return c.errorf("%s", secrets.String(err.Error()))
		}
		return 0
	}
}

// prepare loads the configuration and builds the logger; config warnings
// go through the logger.
func prepare(path string, logOut io.Writer) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	log, err := newLogger(cfg.Log, logOut)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	log.Info("edge-agent starting", "version", version, "config", path, "provider", cfg.Broker.Provider, "client_id", cfg.ClientID)
	return cfg, log, nil
}

// newLogger builds the agent's logger: text (one key=value line per record;
// journald adds its own timestamp but a terminal does not) or JSON, behind a
// redact.Handler whose Set the agent fills with the secrets it learns, so
// that no record carries one.
//
// When w is the stream systemd connected to journald (JOURNAL_STREAM), lines carry their syslog
// priority and no timestamp; repeated warnings and errors are rate-limited (package logging).
func newLogger(l config.Log, w io.Writer) (*slog.Logger, error) {
	f, _ := w.(*os.File)
	inner, err := logging.New(w, logging.Options{Level: l.Level, Format: l.Format,
		Journal: f != nil && logging.UnderJournald(f, os.Getenv)})
	if err != nil {
		return nil, err
	}
	return slog.New(redact.NewHandler(inner, redact.NewSet())), nil
}

// withMetrics runs the agent and, once it is ready, serves GET /metrics on ln (metrics.listen)
// until the agent stops.
type withMetrics struct {
	*agent.Agent
	ln  net.Listener
	log *slog.Logger
}

func (m *withMetrics) Run(ctx context.Context, ready func()) error {
	var wg sync.WaitGroup
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stop()
		wg.Wait()
	}()
	started := false
	err := m.Agent.Run(ctx, func() {
		started = true
		m.log.Info("serving metrics", "listen", m.ln.Addr().String())
		wg.Go(func() {
			if err := m.Agent.ServeMetrics(mctx, m.ln); err != nil {
				m.log.Error("metrics listener stopped", "err", err)
			}
		})
		ready()
	})
	if !started {
		m.ln.Close()
	}
	return err
}

// runner is what serve needs of *agent.Agent.
type runner interface {
	Run(ctx context.Context, ready func()) error
	// Healthy reports whether the agent still works end to end; the watchdog is pinged only then.
	Healthy(ctx context.Context) error
}

// serve runs the agent until ctx is done and keeps systemd informed:
// READY=1 once the socket is listening, WATCHDOG=1 while running,
// STOPPING=1 as soon as shutdown begins.
func serve(ctx context.Context, a runner, socket string, log *slog.Logger, getenv func(string) string) error {
	sd, err := newNotifier(getenv)
	if err != nil {
		log.Warn("systemd notification disabled", "err", err)
		sd = nil
	}
	defer sd.Close()
	every, watchdogOn, err := watchdogInterval(getenv)
	if err != nil {
		log.Warn("systemd watchdog disabled", "err", err)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, endRun := context.WithCancel(context.Background())
	defer endRun() // runs before wg.Wait: ends the helpers below

	var stopOnce sync.Once
	stopping := func() {
		stopOnce.Do(func() {
			if err := sd.Notify("STOPPING=1\nSTATUS=stopping"); err != nil {
				log.Warn("systemd notify failed", "err", err)
			}
		})
	}
	wg.Go(func() { // STOPPING=1 as soon as a signal arrives
		select {
		case <-ctx.Done():
			stopping()
		case <-runCtx.Done():
		}
	})
	var once sync.Once
	ready := func() {
		once.Do(func() {
			log.Info("edge-agent ready", "socket", socket)
			if err := sd.Notify("READY=1\nSTATUS=serving on " + socket); err != nil {
				log.Warn("systemd notify failed", "err", err)
			}
			if st, ok := a.(statusSource); ok && sd != nil { // STATUS=: state, queue depth
				wg.Go(func() { // until shutdown begins (STATUS=stopping stays) or Run returns
					sctx, end := context.WithCancel(runCtx)
					defer end()
					defer context.AfterFunc(ctx, end)()
					sd.reportStatus(sctx, statusPoll, statusMinGap, st.Status, func(err error) { log.Warn("systemd status", "err", err) })
				})
			}
			if sd != nil && watchdogOn {
				wg.Go(func() {
					sd.watchdog(runCtx, every, a.Healthy, func(err error) { log.Warn("systemd watchdog", "err", err) })
				})
			}
		})
	}
	err = a.Run(ctx, ready)
	if ctx.Err() != nil {
		stopping() // in case Run returned before the goroutine above saw ctx
	}
	if err != nil {
		_ = sd.Notify("STATUS=failed: " + err.Error()) // best effort: the error is returned anyway
		return err
	}
	log.Info("edge-agent stopped cleanly")
	return nil
}

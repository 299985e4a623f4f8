package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/localapi"
)

// identityFromAgent asks the running agent (GET /v1/identity), which creates the identity if needed.
func identityFromAgent(ctx context.Context, socket string) (string, error) {
	api := localapi.NewClient(socket)
	defer api.Close()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	var id localapi.Identity
	if err := api.GetJSON(ctx, "/v1/identity", &id); err != nil {
		return "", err
	}
	if id.IdentityID == "" {
		return "", errors.New("edge-agent sent no identity id")
	}
	return id.IdentityID, nil
}

// identityFromConfig reads the agent's config and gets the identity id the way the agent does: from
// state_dir if it was created before, else by one Cognito GetId whose answer is kept in state_dir.
func identityFromConfig(ctx context.Context, path string, logOut io.Writer) (string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var b *config.Broker // the only aws-iot broker
	for i := range cfg.Brokers {
		if cfg.Brokers[i].Provider != config.ProviderAWSIoT {
			continue
		}
		if b != nil {
			return "", fmt.Errorf("%s: brokers %q and %q are both aws-iot: ask the running agent, edge-agent identity --broker NAME", path, b.Name, cfg.Brokers[i].Name)
		}
		b = &cfg.Brokers[i]
	}
	if b == nil || b.Cognito.IdentityPoolID == "" {
		return "", fmt.Errorf("%s: no Cognito identity: this needs broker.provider = %q and [cognito] identity_pool_id", path, config.ProviderAWSIoT)
	}
	p, err := awsiot.FromConfig(cfg, b, log, nil)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	id, err := p.IdentityID(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("no answer from Cognito within 45s: %w", err)
		}
		return "", err
	}
	return id, nil
}

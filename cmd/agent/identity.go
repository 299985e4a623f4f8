package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/awsiot"
	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/localapi"
)

// identityFromAgent asks the running agent (GET /v1/identity[?broker=…]), which creates the
// identity if needed.
func identityFromAgent(ctx context.Context, socket, broker string) (string, error) {
	api := localapi.NewClient(socket)
	defer api.Close()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	path := "/v1/identity"
	if broker != "" {
		path += "?" + url.Values{"broker": {broker}}.Encode()
	}
	var id localapi.Identity
	if err := api.GetJSON(ctx, path, &id); err != nil {
		return "", err
	}
	if id.IdentityID == "" {
		return "", errors.New("edge-agent sent no identity id")
	}
	return id.IdentityID, nil
}

// identityFromConfig reads the agent's config and gets the identity id of the aws-iot broker named
// broker ("" = the only aws-iot broker) the way the agent does: from state_dir if it was created
// before, else by one Cognito GetId whose answer is kept in state_dir.
func identityFromConfig(ctx context.Context, path, broker string, logOut io.Writer) (string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	if err := chooseAWSBroker(cfg, broker); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := awsiot.FromConfig(cfg, &cfg.Broker, log, nil) // nil unless provider aws-iot
	if err != nil {
		return "", err
	}
	if p == nil || cfg.Broker.Cognito.IdentityPoolID == "" {
		return "", fmt.Errorf("%s: no Cognito identity: this needs broker.provider = %q and [cognito] identity_pool_id", path, config.ProviderAWSIoT)
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

// chooseAWSBroker makes the broker named name (or, for "", the only aws-iot broker) cfg.Broker and
// its Cognito settings cfg.Cognito.
func chooseAWSBroker(cfg *config.Config, name string) error {
	var names, aws []string
	pick := -1
	for i, b := range cfg.Brokers {
		names = append(names, b.Name)
		if b.Provider == config.ProviderAWSIoT {
			aws = append(aws, b.Name)
			if name == "" {
				pick = i
			}
		}
		if name != "" && b.Name == name {
			pick = i
		}
	}
	switch {
	case len(cfg.Brokers) == 0:
		return nil // a config from before several brokers: cfg.Broker it is
	case name != "" && pick < 0:
		return fmt.Errorf("no broker named %q (brokers: %s)", name, strings.Join(names, ", "))
	case name == "" && len(aws) > 1:
		return fmt.Errorf("several aws-iot brokers (%s): choose one with --broker NAME", strings.Join(aws, ", "))
	case pick < 0:
		return nil // no aws-iot broker: FromConfig says so for cfg.Broker
	}
	cfg.Broker = cfg.Brokers[pick]
	cfg.Cognito = cfg.Broker.Cognito
	return nil
}

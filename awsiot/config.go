package awsiot

import (
	"log/slog"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/redact"
)

// FromConfig builds the Provider for a configuration that config.Parse or config.Load resolved:
// broker.url and broker.region, the [cognito] table and state_dir. It returns nil and no error when
// the broker's provider is not AWS IoT, so that a caller needs no test of the provider's name. It is
// the one place a Provider is made from a configuration (the daemon and `edge-agent identity`).
// log and secrets may be nil (see Options).
func FromConfig(cfg *config.Config, log *slog.Logger, secrets *redact.Set) (*Provider, error) {
	if cfg.Broker.Provider != config.ProviderAWSIoT {
		return nil, nil
	}
	return New(Options{
		URL:             cfg.Broker.URL,
		Region:          cfg.Broker.Region,
		IdentityPoolID:  cfg.Cognito.IdentityPoolID,
		CognitoEndpoint: cfg.Cognito.Endpoint,
		LoginProvider:   cfg.Cognito.LoginProvider,
		LoginTokenFile:  cfg.Cognito.LoginTokenFile,
		StateDir:        cfg.StateDir,
		Logger:          log,
		Secrets:         secrets,
	})
}

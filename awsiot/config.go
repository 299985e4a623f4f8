package awsiot

import (
	"log/slog"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/redact"
)

// FromConfig builds the Provider of broker b of a configuration that config.Parse or config.Load
// resolved: b's url and region, b's Cognito table ([broker.cognito], the single form's [cognito]) and
// cfg's state_dir, where the identity id is kept in IdentityFileFor(b.Name). It returns nil and no
// error when b's provider is not AWS IoT, so that a caller needs no test of the provider's name. It is
// the one place a Provider is made from a configuration (the daemon and `edge-agent identity`).
// log and secrets may be nil (see Options).
func FromConfig(cfg *config.Config, b *config.Broker, log *slog.Logger, secrets *redact.Set) (*Provider, error) {
	if b.Provider != config.ProviderAWSIoT {
		return nil, nil
	}
	return New(Options{
		URL:             b.URL,
		Region:          b.Region,
		IdentityPoolID:  b.Cognito.IdentityPoolID,
		CognitoEndpoint: b.Cognito.Endpoint,
		LoginProvider:   b.Cognito.LoginProvider,
		LoginTokenFile:  b.Cognito.LoginTokenFile,
		StateDir:        cfg.StateDir,
		IdentityFile:    IdentityFileFor(b.Name),
		Logger:          log,
		Secrets:         secrets,
	})
}

// IdentityFileFor is the file in state_dir that keeps the Cognito identity id of the broker named
// name: IdentityFileName for the broker named config.DefaultBrokerName (the single [broker] form, so
// that a gateway upgraded from one broker keeps its identity), else IdentityFileName + "-" + name.
func IdentityFileFor(name string) string {
	if name == "" || name == config.DefaultBrokerName {
		return IdentityFileName
	}
	return IdentityFileName + "-" + name
}

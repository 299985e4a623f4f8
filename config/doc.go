// Package config reads and checks the edge-agent configuration file (TOML).
//
// Parsing is strict: an unknown key, a value of the wrong type or a value
// outside its allowed range is an error that names the file, the line and
// the key ("agent.toml:7: unknown key broker.urll"), so an operator can fix
// the file without guessing. Defaults are applied before the file is read;
// Parse checks the document on its own, Load also checks that the files the
// configuration points to (password_file, ca_file) exist and can be opened.
//
// The rules of each provider are here too, once: Parse sets Broker.Limits
// from the provider (the AWS IoT Core quotas for "aws-iot", see limits.go)
// and applies them to the keys they bound, so the agent reads limits, never
// the provider's name. Lines and keys of errors come from index.go, because
// the TOML decoder's errors lack them (index_test.go says which cases).
//
// Several brokers ([[broker]] entries, brokers.go) are decoded apart from the
// rest of the document, because one Go field cannot take both a table and an
// array of tables; each is then checked like the single [broker] table, with
// its own provider's limits, and Config.Brokers holds them all resolved.
//
// Concurrency: Parse, Load and Default have no shared state and may be
// called from any goroutine. A *Config is a plain value; callers that share
// one between goroutines must not modify it.
package config

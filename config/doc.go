// Package config reads and checks the edge-agent configuration file (TOML).
//
// Parsing is strict: an unknown key, a value of the wrong type or a value
// outside its allowed range is an error that names the file, the line and
// the key ("agent.toml:7: unknown key broker.urll"), so an operator can fix
// the file without guessing. Defaults are applied before the file is read;
// Parse checks the document on its own, Load also checks that the files the
// configuration points to (password_file, ca_file) exist and can be opened.
//
// Concurrency: Parse, Load and Default have no shared state and may be
// called from any goroutine. A *Config is a plain value; callers that share
// one between goroutines must not modify it.
package config

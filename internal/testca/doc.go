// Package testca is test support: a throw-away certificate authority that
// issues TLS server certificates for loopback test servers (a fake AWS IoT
// endpoint, a mosquitto wss listener, an in-process broker). Production code
// never imports it.
//
// New makes an ECDSA P-256 root; Issue signs a server certificate for IP
// addresses and DNS names. Certificates are valid from an hour ago for a day,
// so a fake clock offset on either side of a test does not break TLS. PEM and
// Pool give clients what they need to trust the root; WriteFile and
// WriteKeyPair put the PEM files on disk for servers and configs that read
// files (mosquitto's cafile/certfile/keyfile, the agent's ca_file).
//
// Concurrency: a CA is immutable after New; all its methods are safe for
// concurrent use.
package testca

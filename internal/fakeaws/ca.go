package fakeaws

import "github.com/edge-agent/edge-agent/internal/testca"

// CA is a throw-away certificate authority for one test: an ECDSA P-256 root
// whose certificates are valid from an hour ago for a day (so a fake clock
// offset on the other side does not break TLS). It is internal/testca's CA.
type CA = testca.CA

// NewCA generates a root certificate named name.
func NewCA(name string) (*CA, error) { return testca.New(name) }

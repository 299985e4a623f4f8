package fakeaws

import (
	"sync"
	"time"
)

// Cred is one set of credentials a fake accepts.
type Cred struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string    // "" for long-term keys; otherwise must be presented
	Expires         time.Time // zero = never; compared with the fake's clock
}

// CredStore is a registry of accepted credentials, keyed by access key id.
// One store can be shared by several fakes (IoTOptions.Creds). Safe for
// concurrent use; the zero value is not usable, call NewCredStore.
type CredStore struct {
	mu sync.Mutex
	m  map[string]Cred
}

// NewCredStore returns an empty store.
func NewCredStore() *CredStore { return &CredStore{m: map[string]Cred{}} }

// Allow registers c, replacing credentials with the same access key id.
func (s *CredStore) Allow(c Cred) {
	s.mu.Lock()
	s.m[c.AccessKeyID] = c
	s.mu.Unlock()
}

// Revoke forgets the credentials with access key id akid.
func (s *CredStore) Revoke(akid string) {
	s.mu.Lock()
	delete(s.m, akid)
	s.mu.Unlock()
}

// Lookup returns the credentials registered for akid.
func (s *CredStore) Lookup(akid string) (Cred, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[akid]
	return c, ok
}

// Len is the number of registered credentials.
func (s *CredStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

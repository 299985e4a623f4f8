package mosquitto

import (
	"path/filepath"

	"github.com/edge-agent/edge-agent/internal/testca"
)

// tlsMaterial is a throw-away CA and a server certificate for 127.0.0.1 and
// localhost, written as PEM files into the broker's temp dir.
type tlsMaterial struct {
	caPEM                     []byte
	caFile, certFile, keyFile string
}

func newTLSMaterial(dir string) (*tlsMaterial, error) {
	ca, err := testca.New("edge-agent test CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue("127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	m := &tlsMaterial{
		caPEM:    ca.PEM(),
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server.key"),
	}
	if err := ca.WriteFile(m.caFile); err != nil {
		return nil, err
	}
	if err := testca.WriteKeyPair(cert, m.certFile, m.keyFile); err != nil {
		return nil, err
	}
	return m, nil
}

package testca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIssueVerifiesOnlyForItsHostsAndRoot(t *testing.T) {
	ca, err := New("testca test root")
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("another root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1", "::1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		roots *x509.CertPool
		host  string
		ok    bool
	}{
		{"ipv4", ca.Pool(), "127.0.0.1", true},
		{"ipv6", ca.Pool(), "::1", true},
		{"dns", ca.Pool(), "localhost", true},
		{"other host", ca.Pool(), "example.com", false},
		{"other ip", ca.Pool(), "127.0.0.2", false},
		{"other root", other.Pool(), "127.0.0.1", false},
	} {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: c.roots, DNSName: c.host, CurrentTime: time.Now().Add(23 * time.Hour)})
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify(%s) = %v, want ok=%v", c.name, c.host, err, c.ok)
		}
	}
	if _, err := ca.Issue(); err == nil {
		t.Error("Issue() without hosts succeeded")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM()) || !pool.Equal(ca.Pool()) {
		t.Error("PEM does not hold the root of Pool")
	}
}

// A real TLS handshake on a loopback socket, with the server loading the files
// WriteKeyPair wrote and the client trusting the file WriteFile wrote.
func TestFilesServeTLS(t *testing.T) {
	ca, err := New("testca files root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := ca.WriteFile(caFile); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(cert, certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v, want 0600", fi, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil || !bytes.Equal(caPEM, ca.PEM()) {
		t.Fatalf("CA file does not hold PEM (err %v)", err)
	}
	loaded, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{loaded}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 2)
	go func() {
		for range 2 {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			served <- c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake with the written files: %v", err)
	}
	_ = c.Close()
	if err := <-served; err != nil {
		t.Fatalf("server side: %v", err)
	}

	// Without the root the same server is refused: the check above is real.
	c, err = tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: x509.NewCertPool()})
	if err == nil {
		_ = c.Close()
		t.Fatal("handshake succeeded without trusting the root")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error without the root = %v, want a certificate error", err)
	}
	if err := <-served; err == nil {
		t.Fatal("server side: handshake without the root succeeded")
	}
}

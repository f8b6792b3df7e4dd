package test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/test/smtptest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, pool := smtptest.SelfSigned(t)
	kb, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// With --tls-cert and --tls-key the HTTP API speaks HTTPS only.
func TestHTTPTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { c.HTTP.TLSCert, c.HTTP.TLSKey = certFile, keyFile }, nil)
	url := n.d.HTTPURL()
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("HTTPURL = %s", url)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequest("GET", url+"/v1/backups", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP gets no answer from the API.
	plain, err := http.Get("http://" + n.d.HTTPAddr() + "/healthz")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200")
		}
	}
	// A client that does not trust the certificate is refused.
	if r, err := http.Get(url + "/healthz"); err == nil {
		r.Body.Close()
		t.Fatal("an untrusted certificate was accepted")
	}
	// Both files are needed.
	cfg := daemon.DefaultConfig()
	cfg.HTTP.TLSCert = certFile
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tls cert and tls key go together") {
		t.Errorf("Validate with a cert and no key: %v", err)
	}
}

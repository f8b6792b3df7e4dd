package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// backupOnExternal runs one backup on a node that uses an external
// cluster and checks that the ledger lives there.
func backupOnExternal(t *testing.T, n *node) {
	t.Helper()
	if n.d.Server() != nil {
		t.Fatal("with --nats-url the daemon must not start its own server")
	}
	n.putConfig("crm", "app.json", `{"name":"CRM"}`)
	b := n.createBackup("crm", map[string]any{})
	if got := n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady, domain.StatusFailed); got.Status != "ready" {
		t.Fatalf("backup on an external server: %+v", got)
	}
	if n.lastSeq() < 3 {
		t.Errorf("LEDGER on the external server has last seq %d, want at least 3", n.lastSeq())
	}
}

// withoutAccounts runs backupd on a cluster whose only account is the
// ledger's: no staging bucket, no audit mirror (the tests of logins and
// TLS; docs/security.md).
func withoutAccounts(c *daemon.Config) {
	c.NATS.StagingAPI, c.NATS.AuditAPI = daemon.APINone, daemon.APINone
}

// startFails checks that a daemon with cfg's changes does not start.
func startFails(t *testing.T, tune func(*daemon.Config)) {
	t.Helper()
	cfg := daemon.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.AdminToken = token
	tune(&cfg)
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Start(ctx); err == nil {
		d.Kill()
		t.Fatal("the daemon started")
	}
}

// pki is a test certificate authority with a server certificate for
// 127.0.0.1 and a client certificate, as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backupledger test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(name+".pem", "CERTIFICATE", der), writePEM(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p := pki{caFile: writePEM("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

func TestExternalNATSWithTLSAndPassword(t *testing.T) {
	p := newPKI(t)
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AppendCertsFromPEM(caPEM)
	s := natstest.ServerWithOptions(t, &server.Options{
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: clients,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		},
		TLSVerify:  true,
		TLSTimeout: 5,
		Users:      []*server.User{{Username: "ledger", Password: "s3cret"}},
	})
	external := func(c *daemon.Config) {
		withoutAccounts(c)
		c.NATS.URL = s.ClientURL() // tls://127.0.0.1:<port>
		c.NATS.User, c.NATS.Password = "ledger", "s3cret"
		c.NATS.TLSCA = p.caFile
		c.NATS.TLSCert, c.NATS.TLSKey = p.clientCert, p.clientKey
	}
	n := startNode(t, t.TempDir(), external, nil)
	backupOnExternal(t, n)

	t.Run("without the client certificate", func(t *testing.T) {
		startFails(t, func(c *daemon.Config) { external(c); c.NATS.TLSCert, c.NATS.TLSKey = "", "" })
	})
	t.Run("without the CA", func(t *testing.T) {
		startFails(t, func(c *daemon.Config) { external(c); c.NATS.TLSCA = "" })
	})
	t.Run("wrong password", func(t *testing.T) {
		startFails(t, func(c *daemon.Config) { external(c); c.NATS.Password = "guess" })
	})
}

// operatorServer starts a server in operator (JWT) mode with one account
// that may use JetStream, and returns it with a credentials file of a user
// of that account.
func operatorServer(t *testing.T) (*server.Server, string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	operatorPub, err := operator.PublicKey()
	must(err)
	newAccount := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewAccountClaims(pub)
		claims.Name = name
		if js {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := claims.Encode(operator)
		must(err)
		return kp, pub, token
	}
	_, sysPub, sysJWT := newAccount("SYS", false)
	account, accountPub, accountJWT := newAccount("LEDGER", true)
	oc := jwt.NewOperatorClaims(operatorPub)
	oc.Name = "test"
	oc.SystemAccount = sysPub
	_, err = oc.Encode(operator)
	must(err)

	user, err := nkeys.CreateUser()
	must(err)
	userPub, err := user.PublicKey()
	must(err)
	uc := jwt.NewUserClaims(userPub)
	uc.Name = "backupd"
	userJWT, err := uc.Encode(account)
	must(err)
	seed, err := user.Seed()
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	path := filepath.Join(t.TempDir(), "backupd.creds")
	must(os.WriteFile(path, creds, 0o600))

	resolver := &server.MemAccResolver{}
	must(resolver.Store(sysPub, sysJWT))
	must(resolver.Store(accountPub, accountJWT))
	s := natstest.ServerWithOptions(t, &server.Options{
		TrustedOperators: []*jwt.OperatorClaims{oc},
		AccountResolver:  resolver,
		SystemAccount:    sysPub,
	})
	return s, path
}

func TestExternalNATSWithCredentialsFile(t *testing.T) {
	s, creds := operatorServer(t)
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { withoutAccounts(c); c.NATS.URL, c.NATS.Creds = s.ClientURL(), creds }, nil)
	backupOnExternal(t, n)

	t.Run("without credentials", func(t *testing.T) {
		startFails(t, func(c *daemon.Config) { withoutAccounts(c); c.NATS.URL = s.ClientURL() })
	})
	t.Run("missing file", func(t *testing.T) {
		startFails(t, func(c *daemon.Config) {
			withoutAccounts(c)
			c.NATS.URL, c.NATS.Creds = s.ClientURL(), filepath.Join(t.TempDir(), "none.creds")
		})
	})
}

package daemon

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
)

// NATSConfig is the embedded NATS server, or the cluster backupd connects
// to, and the durability of the streams and buckets.
type NATSConfig struct {
	// URL, when set, connects to an existing NATS cluster instead of
	// starting the embedded server.
	URL string
	// Listen is the embedded server's client address, or "none". When it
	// listens on a port, the server requires the logins of the roles in
	// <DataDir>/nats/<role>.json (docs/security.md).
	Listen string
	// Creds is a NATS credentials file (user JWT and nkey seed) to log in
	// to the cluster at URL with.
	Creds string
	// User and Password log in to the cluster at URL with a user and
	// password.
	User     string
	Password string
	// TLSCA is a PEM file of the certificate authorities that the
	// cluster's TLS certificates are checked against (default: the
	// system's).
	TLSCA string
	// TLSCert and TLSKey are the PEM files of the client certificate and
	// its key, for clusters that verify clients (mutual TLS). Both or
	// neither.
	TLSCert string
	TLSKey  string
	// StagingAPI is the JetStream API prefix under which the cluster at
	// URL lets backupd reach the account of the staging bucket, or "none":
	// archives do not travel over NATS. The embedded server always uses
	// DefaultStagingAPI.
	StagingAPI string
	// AuditAPI is the JetStream API prefix under which the cluster at URL
	// lets backupd keep the audit mirror of LEDGER, or "none": no mirror
	// for audit consumers. The embedded server always uses
	// DefaultAuditAPI.
	AuditAPI string
	// Replicas is the replica count of streams and buckets.
	Replicas int
	// Sync is "always" (fsync every write) or "interval".
	Sync string
	// ConnectTimeout is how long backupd keeps trying to reach the cluster
	// at URL at start (with a growing pause, each failure logged) before it
	// gives up.
	ConnectTimeout time.Duration
}

// Validate reports every invalid field of c, joined; the replica count is
// checked by the stream's own configuration (jetstream.Config).
func (c NATSConfig) Validate() error {
	var errs []error
	if c.URL == "" && c.Listen == "" {
		errs = append(errs, errors.New("nats listen address must be set (or \"none\")"))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("nats connect timeout must not be negative, got %s", c.ConnectTimeout))
	}
	errs = append(errs, c.validateLogin()...)
	errs = append(errs, c.validateAPIs()...)
	js := jetstream.DefaultConfig()
	js.Replicas = c.Replicas
	if err := js.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Sync != SyncAlways && c.Sync != SyncInterval {
		errs = append(errs, fmt.Errorf("sync must be %q or %q, got %q", SyncAlways, SyncInterval, c.Sync))
	}
	return errors.Join(errs...)
}

// validateLogin returns the errors of the login to an external cluster.
func (c NATSConfig) validateLogin() []error {
	var errs []error
	if c.URL == "" {
		for _, f := range []struct{ name, value string }{
			{"nats creds", c.Creds}, {"nats user", c.User}, {"nats password", c.Password},
			{"nats tls ca", c.TLSCA}, {"nats tls cert", c.TLSCert}, {"nats tls key", c.TLSKey},
		} {
			if f.value != "" {
				errs = append(errs, fmt.Errorf("%s applies only to an external cluster: set the nats url too", f.name))
			}
		}
	}
	if c.Creds != "" && c.User != "" {
		errs = append(errs, errors.New("nats creds and nats user are two ways to log in: set one"))
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("nats user and nats password go together"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("nats tls cert and nats tls key go together"))
	}
	return errs
}

// validateAPIs returns the errors of the API prefixes of the other accounts.
func (c NATSConfig) validateAPIs() []error {
	var errs []error
	for _, f := range []struct{ name, value, def string }{
		{"nats staging api", c.StagingAPI, DefaultStagingAPI}, {"nats audit api", c.AuditAPI, DefaultAuditAPI},
	} {
		switch {
		case c.URL == "" && f.value != f.def:
			errs = append(errs, fmt.Errorf("%s applies only to an external cluster (the embedded server uses %s): set the nats url too", f.name, f.def))
		case f.value != APINone && !validAPIPrefix(f.value):
			errs = append(errs, fmt.Errorf("%s must be a subject prefix such as %s, or %q; got %q", f.name, f.def, APINone, f.value))
		case f.value == "$JS.API":
			errs = append(errs, fmt.Errorf("%s must not be $JS.API, the ledger's own account: the account of the staging bucket and of the audit mirror must be another (docs/nats/accounts.conf)", f.name))
		}
	}
	return errs
}

// validAPIPrefix reports whether p is a JetStream API prefix: dot-separated
// tokens without wildcards or spaces, not ending in a dot.
func validAPIPrefix(p string) bool {
	if p == "" {
		return false
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}

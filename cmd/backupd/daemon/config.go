// Package daemon is backupd: it starts (or connects to) NATS, sets up the
// streams, buckets and consumers, folds the ledger into memory, and serves the
// HTTP and NATS APIs and the backup workers. cmd/backupd parses flags into a
// Config and runs it; end-to-end tests run the same Daemon in-process.
package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/domain"
)

// Durability settings of the embedded server (DESIGN §3).
const (
	SyncAlways   = "always"
	SyncInterval = "interval"
)

// Source kinds.
const (
	SourceKV  = "kv"
	SourceDir = "dir"
)

// ListenNone keeps the embedded NATS server in-process only, and serves
// no metrics as MetricsAddr.
const ListenNone = "none"

// Defaults of the HTTP listeners (docs/security.md, "Bounded resources").
const (
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = time.Minute
	DefaultHTTPIdleTimeout       = time.Minute
	DefaultHTTPMaxConns          = 1024
	// DefaultMetricsAddr is loopback: the metrics name every
	// organisation's apps.
	DefaultMetricsAddr = "127.0.0.1:9464"
)

// The JetStream API prefixes under which backupd reaches the accounts of
// the staging bucket and of the audit mirror (docs/nats/accounts.conf),
// and the value that leaves either out.
const (
	DefaultStagingAPI = "$JS.staging.API"
	DefaultAuditAPI   = "$JS.audit.API"
	APINone           = "none"
)

// Config is everything backupd can be told.
type Config struct {
	// DataDir holds the embedded server's store (with its NATS logins in
	// nats/<role>.json) and admin.token.
	DataDir string
	// HTTPAddr is where the HTTP API listens; port 0 picks a free port.
	HTTPAddr string
	// HTTPReadHeaderTimeout bounds the arrival of a request's headers,
	// HTTPReadTimeout of its headers and body (archive uploads instead
	// must move bytes at least every minute), HTTPIdleTimeout how long a
	// kept-alive connection waits for its next request. They apply to the
	// metrics listener too.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPIdleTimeout       time.Duration
	// HTTPMaxConns bounds the HTTP API's open connections; once they are
	// all open, new ones wait in the kernel's listen queue until one
	// closes.
	HTTPMaxConns int
	// MetricsAddr is where GET /metrics is served (not on HTTPAddr), or
	// "none"; port 0 picks a free port. With TLSCert it serves HTTPS.
	MetricsAddr string
	// MetricsToken, when set, is the bearer token a scrape must bring;
	// MetricsTokenFile names a file holding it instead (read at start).
	// At most one of them.
	MetricsToken     string
	MetricsTokenFile string
	// NATSURL, when set, connects to an existing NATS cluster instead of
	// starting the embedded server.
	NATSURL string
	// NATSListen is the embedded server's client address, or "none". When
	// it listens on a port, the server requires the logins of the roles in
	// <DataDir>/nats/<role>.json (docs/security.md).
	NATSListen string
	// NATSCreds is a NATS credentials file (user JWT and nkey seed) to log
	// in to the cluster at NATSURL with.
	NATSCreds string
	// NATSUser and NATSPassword log in to the cluster at NATSURL with a
	// user and password.
	NATSUser     string
	NATSPassword string
	// NATSTLSCA is a PEM file of the certificate authorities that the
	// cluster's TLS certificates are checked against (default: the
	// system's).
	NATSTLSCA string
	// NATSTLSCert and NATSTLSKey are the PEM files of the client
	// certificate and its key, for clusters that verify clients (mutual
	// TLS). Both or neither.
	NATSTLSCert string
	NATSTLSKey  string
	// NATSStagingAPI is the JetStream API prefix under which the cluster
	// at NATSURL lets backupd reach the account of the staging bucket, or
	// "none": archives do not travel over NATS. The embedded server always
	// uses DefaultStagingAPI.
	NATSStagingAPI string
	// NATSAuditAPI is the JetStream API prefix under which the cluster at
	// NATSURL lets backupd keep the audit mirror of LEDGER, or "none": no
	// mirror for audit consumers. The embedded server always uses
	// DefaultAuditAPI.
	NATSAuditAPI string
	// NewLedgerGenesis starts the signed ledger with a key of the vault
	// although the unsigned ledger holds a key.created of a key the vault
	// never had (written by someone else before backupd signed the ledger;
	// domain.SigningConfig.NewGenesis). Never for a vault that lost its
	// keys.
	NewLedgerGenesis bool
	// Replicas is the replica count of streams and buckets.
	Replicas int
	// Sync is "always" (fsync every write) or "interval".
	Sync string
	// AdminToken is the server administrator's bearer token; empty means
	// read or create <DataDir>/admin.token.
	AdminToken string
	// Rules are the per-app rules of DESIGN §8.
	Rules domain.Rules
	// Source is the kind of source apps use by default: "kv" or "dir".
	Source string
	// AppSources maps apps to a source kind other than the default.
	AppSources map[string]string
	// PprofAddr, when set, is where cmd/backupd serves net/http/pprof.
	PprofAddr string
	// MemoryLimit is the soft limit of the Go heap set by cmd/backupd
	// (0: none); the daemon itself does not apply it.
	MemoryLimit int64
	// MaxUploadBytes bounds an uploaded archive.
	MaxUploadBytes int64
	// MaxUploadRatio bounds the compression ratio of an uploaded archive's
	// larger entries (zip bombs); 0 means the archive store's default.
	MaxUploadRatio int
	// DirRoot is the folder under which the dir source keeps each app's
	// files in <DirRoot>/<app>; empty means <DataDir>/files.
	DirRoot string
	// Workers is how many backup jobs this process runs at once.
	Workers int
	// JobAckWait is how long a job may go without a heartbeat before it is
	// delivered again.
	JobAckWait time.Duration
	// JobMaxDeliver is how often a job is delivered; the last delivery fails
	// the backup.
	JobMaxDeliver int
	// JobTimeout bounds one attempt at a backup; an attempt out of time
	// fails the backup.
	JobTimeout time.Duration
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// TLSCert and TLSKey are PEM files: with both, the HTTP API serves
	// HTTPS only (TLS 1.2 or later). The files are read at start.
	TLSCert string
	TLSKey  string
	// PricePerGiBMonth and Currency price stored archives in quotes; a
	// price of 0 quotes sizes only.
	PricePerGiBMonth float64
	Currency         string
	// VerifyInterval is how old a ready backup's last integrity check may
	// get before the periodic check reads its archive again.
	VerifyInterval time.Duration
	// ExpiryInterval is how often expired backups are swept.
	ExpiryInterval time.Duration
	// NightlyInterval is how often the nightly planner looks for nights
	// that are due (and failed tries to retry); the default schedule
	// itself is Rules.Nightly.
	NightlyInterval time.Duration
	// OrphanInterval is how often the archive store is reconciled with
	// the ledger; OrphanGrace is how old an archive without a live backup
	// must be before it is removed.
	OrphanInterval time.Duration
	OrphanGrace    time.Duration
	// Webhook deliveries: each POST's timeout, the first retry delay
	// (doubled each time, at most 10 min) and how long a delivery is
	// retried before it is given up.
	WebhookTimeout  time.Duration
	WebhookBackoff  time.Duration
	WebhookRetryFor time.Duration
	// WebhookAllowPrivate lets webhooks target loopback, private,
	// link-local and other non-public addresses and local names, refused
	// by default at registration and at every connection
	// (docs/notifications.md).
	WebhookAllowPrivate bool
	// SMTP is the relay e-mail notifications go through; an empty host
	// turns e-mail off.
	SMTP SMTPConfig
	// MetricsMaxApps bounds the apps of the per-app metrics.
	MetricsMaxApps int
	// PublicURL is where people reach the HTTP API, for links in e-mails
	// (empty: no links).
	PublicURL string
	// PreRestoreBackupTimeout bounds a restore's wait for its pre-restore
	// backup; past it the restore fails.
	PreRestoreBackupTimeout time.Duration
	// SessionTTL is how long a login's session token lasts.
	SessionTTL time.Duration
	// PasswordParams are the Argon2id parameters of new password hashes
	// (docs/passwords.md); zero means password.DefaultParams. Tests use
	// password.TestParams, which protects nothing.
	PasswordParams password.Params
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
}

// SMTPConfig is the relay of e-mail notifications.
type SMTPConfig struct {
	Host string
	Port int
	// StartTLS is "auto" (when offered), "always" or "never".
	StartTLS string
	User     string
	Password string
	// From is the sender address.
	From string
}

// DefaultConfig returns the defaults of DESIGN §8 and §9.
func DefaultConfig() Config {
	return Config{
		DataDir:         "./data",
		HTTPAddr:        "127.0.0.1:8080",
		MetricsAddr:     DefaultMetricsAddr,
		NATSListen:      "127.0.0.1:4222",
		NATSStagingAPI:  DefaultStagingAPI,
		NATSAuditAPI:    DefaultAuditAPI,
		Replicas:        1,
		Sync:            SyncAlways,
		Rules:           domain.DefaultRules(),
		Source:          SourceKV,
		MaxUploadBytes:  2 << 30,
		Workers:         2,
		JobAckWait:      30 * time.Second,
		JobMaxDeliver:   5,
		JobTimeout:      time.Hour,
		ShutdownTimeout: 30 * time.Second,
		SessionTTL:      12 * time.Hour,

		PreRestoreBackupTimeout: 30 * time.Minute,
		ExpiryInterval:          time.Hour,
		VerifyInterval:          7 * 24 * time.Hour,
		Currency:                "EUR",
		NightlyInterval:         5 * time.Minute,
		MetricsMaxApps:          500,
		OrphanInterval:          time.Hour,
		OrphanGrace:             time.Hour,
		WebhookTimeout:          10 * time.Second,
		WebhookBackoff:          5 * time.Second,
		WebhookRetryFor:         24 * time.Hour,
		SMTP:                    SMTPConfig{Port: 587, StartTLS: "auto"},
		HTTPReadHeaderTimeout:   DefaultHTTPReadHeaderTimeout,
		HTTPReadTimeout:         DefaultHTTPReadTimeout,
		HTTPIdleTimeout:         DefaultHTTPIdleTimeout,
		HTTPMaxConns:            DefaultHTTPMaxConns,
	}
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must be set"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http address must be set"))
	}
	if c.HTTPReadHeaderTimeout <= 0 || c.HTTPReadTimeout <= 0 || c.HTTPIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("http read header, read and idle timeouts must be positive, got %s, %s, %s",
			c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPIdleTimeout))
	}
	if c.HTTPReadHeaderTimeout > c.HTTPReadTimeout {
		errs = append(errs, fmt.Errorf("http read header timeout (%s) must not exceed the http read timeout (%s), which includes the headers",
			c.HTTPReadHeaderTimeout, c.HTTPReadTimeout))
	}
	if c.HTTPMaxConns < 1 {
		errs = append(errs, fmt.Errorf("http max conns must be at least 1, got %d", c.HTTPMaxConns))
	}
	switch {
	case c.MetricsAddr == "":
		errs = append(errs, fmt.Errorf("metrics address must be set (or %q)", ListenNone))
	case c.MetricsAddr == ListenNone && (c.MetricsToken != "" || c.MetricsTokenFile != ""):
		errs = append(errs, fmt.Errorf("a metrics token applies only to a metrics address: set one, or no token with metrics address %q", ListenNone))
	}
	if c.MetricsToken != "" && c.MetricsTokenFile != "" {
		errs = append(errs, errors.New("metrics token and metrics token file are two ways to give the scrape token: set one"))
	}
	if c.NATSURL == "" && c.NATSListen == "" {
		errs = append(errs, errors.New("nats listen address must be set (or \"none\")"))
	}
	if c.NATSURL == "" {
		for _, f := range []struct{ name, value string }{
			{"nats creds", c.NATSCreds}, {"nats user", c.NATSUser}, {"nats password", c.NATSPassword},
			{"nats tls ca", c.NATSTLSCA}, {"nats tls cert", c.NATSTLSCert}, {"nats tls key", c.NATSTLSKey},
		} {
			if f.value != "" {
				errs = append(errs, fmt.Errorf("%s applies only to an external cluster: set the nats url too", f.name))
			}
		}
	}
	for _, f := range []struct{ name, value, def string }{
		{"nats staging api", c.NATSStagingAPI, DefaultStagingAPI}, {"nats audit api", c.NATSAuditAPI, DefaultAuditAPI},
	} {
		switch {
		case c.NATSURL == "" && f.value != f.def:
			errs = append(errs, fmt.Errorf("%s applies only to an external cluster (the embedded server uses %s): set the nats url too", f.name, f.def))
		case f.value != APINone && !validAPIPrefix(f.value):
			errs = append(errs, fmt.Errorf("%s must be a subject prefix such as %s, or %q; got %q", f.name, f.def, APINone, f.value))
		case f.value == "$JS.API":
			errs = append(errs, fmt.Errorf("%s must not be $JS.API, the ledger's own account: the account of the staging bucket and of the audit mirror must be another (docs/nats/accounts.conf)", f.name))
		}
	}
	if c.NATSCreds != "" && c.NATSUser != "" {
		errs = append(errs, errors.New("nats creds and nats user are two ways to log in: set one"))
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		errs = append(errs, errors.New("nats user and nats password go together"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls cert and tls key go together"))
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		errs = append(errs, errors.New("nats tls cert and nats tls key go together"))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1 to 5, got %d", c.Replicas))
	}
	if c.Sync != SyncAlways && c.Sync != SyncInterval {
		errs = append(errs, fmt.Errorf("sync must be %q or %q, got %q", SyncAlways, SyncInterval, c.Sync))
	}
	validSource := func(k string) bool { return k == SourceKV || k == SourceDir }
	if !validSource(c.Source) {
		errs = append(errs, fmt.Errorf("source must be %q or %q, got %q", SourceKV, SourceDir, c.Source))
	}
	for app, k := range c.AppSources {
		if err := domain.ValidateAppID(app); err != nil {
			errs = append(errs, fmt.Errorf("app source %s=%s: %w", app, k, err))
		}
		if !validSource(k) {
			errs = append(errs, fmt.Errorf("app source %s=%s: source must be %q or %q", app, k, SourceKV, SourceDir))
		}
	}
	if c.MaxUploadRatio < 0 {
		errs = append(errs, fmt.Errorf("max upload ratio must not be negative, got %d", c.MaxUploadRatio))
	}
	if c.MaxUploadBytes < 1 {
		errs = append(errs, fmt.Errorf("max upload bytes must be positive, got %d", c.MaxUploadBytes))
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers must be at least 1, got %d", c.Workers))
	}
	if c.JobAckWait < time.Second {
		errs = append(errs, fmt.Errorf("job ack wait must be at least 1s, got %s", c.JobAckWait))
	}
	if c.JobMaxDeliver < 2 {
		errs = append(errs, fmt.Errorf("job max deliver must be at least 2, got %d", c.JobMaxDeliver))
	}
	if c.JobTimeout <= 0 {
		errs = append(errs, fmt.Errorf("job timeout must be positive, got %s", c.JobTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout must be positive, got %s", c.ShutdownTimeout))
	}
	if c.PricePerGiBMonth < 0 {
		errs = append(errs, fmt.Errorf("price per GiB-month must not be negative, got %g", c.PricePerGiBMonth))
	}
	if c.VerifyInterval < time.Minute {
		errs = append(errs, fmt.Errorf("verify interval must be at least 1m, got %s", c.VerifyInterval))
	}
	if c.ExpiryInterval < time.Second {
		errs = append(errs, fmt.Errorf("expiry interval must be at least 1s, got %s", c.ExpiryInterval))
	}
	if c.MetricsMaxApps < 1 {
		errs = append(errs, fmt.Errorf("metrics max apps must be at least 1, got %d", c.MetricsMaxApps))
	}
	if c.NightlyInterval < time.Second {
		errs = append(errs, fmt.Errorf("nightly interval must be at least 1s, got %s", c.NightlyInterval))
	}
	if c.OrphanInterval < time.Second {
		errs = append(errs, fmt.Errorf("orphan interval must be at least 1s, got %s", c.OrphanInterval))
	}
	if c.OrphanGrace < time.Minute {
		errs = append(errs, fmt.Errorf("orphan grace must be at least 1m, got %s", c.OrphanGrace))
	}
	if c.WebhookTimeout <= 0 || c.WebhookBackoff <= 0 || c.WebhookRetryFor <= 0 {
		errs = append(errs, fmt.Errorf("webhook timeout, backoff and retry-for must be positive, got %s, %s, %s", c.WebhookTimeout, c.WebhookBackoff, c.WebhookRetryFor))
	}
	if c.SMTP.Host != "" && c.SMTP.From == "" {
		errs = append(errs, errors.New("smtp from (the sender address) must be set with an smtp host"))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public url must be an absolute http(s) URL, got %q", c.PublicURL))
		}
	}
	if c.PreRestoreBackupTimeout <= 0 {
		errs = append(errs, fmt.Errorf("pre-restore backup timeout must be positive, got %s", c.PreRestoreBackupTimeout))
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("session ttl must be at least 1m, got %s", c.SessionTTL))
	}
	return errors.Join(errs...)
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

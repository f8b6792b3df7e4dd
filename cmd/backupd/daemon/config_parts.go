package daemon

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/domain"
)

// HTTPConfig is the HTTP API's listener.
type HTTPConfig struct {
	// Addr is where the HTTP API listens; port 0 picks a free port.
	Addr string
	// ReadHeaderTimeout bounds the arrival of a request's headers,
	// ReadTimeout of its headers and body (archive uploads instead must
	// move bytes at least every minute), IdleTimeout how long a
	// kept-alive connection waits for its next request. They apply to the
	// metrics listener too.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// MaxConns bounds the HTTP API's open connections; once they are all
	// open, new ones wait in the kernel's listen queue until one closes.
	MaxConns int
	// TLSCert and TLSKey are PEM files: with both, the HTTP API (and the
	// metrics listener) serves HTTPS only (TLS 1.2 or later). The files are
	// read at start.
	TLSCert string
	TLSKey  string
	// PublicURL is where people reach the HTTP API, for links in e-mails
	// (empty: no links).
	PublicURL string
}

// Validate reports every invalid field of c, joined.
func (c HTTPConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("http address must be set"))
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("http read header, read and idle timeouts must be positive, got %s, %s, %s",
			c.ReadHeaderTimeout, c.ReadTimeout, c.IdleTimeout))
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		errs = append(errs, fmt.Errorf("http read header timeout (%s) must not exceed the http read timeout (%s), which includes the headers",
			c.ReadHeaderTimeout, c.ReadTimeout))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("http max conns must be at least 1, got %d", c.MaxConns))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls cert and tls key go together"))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public url must be an absolute http(s) URL, got %q", c.PublicURL))
		}
	}
	return errors.Join(errs...)
}

// MetricsConfig is the listener of GET /metrics and the per-app metrics.
type MetricsConfig struct {
	// Addr is where GET /metrics is served (not on HTTPConfig.Addr), or
	// "none"; port 0 picks a free port. With HTTPConfig.TLSCert it serves
	// HTTPS.
	Addr string
	// Token, when set, is the bearer token a scrape must bring; TokenFile
	// names a file holding it instead (read at start). At most one of them.
	Token     string
	TokenFile string
	// MaxApps bounds the apps of the per-app metrics.
	MaxApps int
}

// Validate reports every invalid field of c, joined.
func (c MetricsConfig) Validate() error {
	var errs []error
	switch {
	case c.Addr == "":
		errs = append(errs, fmt.Errorf("metrics address must be set (or %q)", ListenNone))
	case c.Addr == ListenNone && (c.Token != "" || c.TokenFile != ""):
		errs = append(errs, fmt.Errorf("a metrics token applies only to a metrics address: set one, or no token with metrics address %q", ListenNone))
	}
	if c.Token != "" && c.TokenFile != "" {
		errs = append(errs, errors.New("metrics token and metrics token file are two ways to give the scrape token: set one"))
	}
	if c.MaxApps < 1 {
		errs = append(errs, fmt.Errorf("metrics max apps must be at least 1, got %d", c.MaxApps))
	}
	return errors.Join(errs...)
}

// ArchiveConfig bounds uploaded archives; the archive store checks them.
type ArchiveConfig struct {
	// MaxUploadBytes bounds an uploaded archive.
	MaxUploadBytes int64
	// MaxUploadRatio bounds the compression ratio of an uploaded archive's
	// larger entries (zip bombs); 0 means the archive store's default.
	MaxUploadRatio int
}

// objectstore is the archive store's configuration of c.
func (c ArchiveConfig) objectstore() objectstore.Config {
	return objectstore.Config{MaxUploadBytes: c.MaxUploadBytes, MaxRatio: c.MaxUploadRatio}
}

// Validate reports every invalid field of c, joined: the archive store's
// own checks, and a MaxUploadBytes of 0, which has no default here.
func (c ArchiveConfig) Validate() error {
	var errs []error
	if c.MaxUploadBytes == 0 {
		errs = append(errs, errors.New("max upload bytes must be positive, got 0"))
	}
	if err := c.objectstore().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("archives: %w", err))
	}
	return errors.Join(errs...)
}

// SourceConfig are the configuration sources of apps.
type SourceConfig struct {
	// Default is the kind of source apps use by default: "kv" or "dir".
	Default string
	// ByApp maps apps to a source kind other than the default.
	ByApp map[string]string
	// DirRoot is the folder under which the dir source keeps each app's
	// files in <DirRoot>/<app>; empty means <DataDir>/files.
	DirRoot string
}

// Validate reports every invalid field of c, joined.
func (c SourceConfig) Validate() error {
	var errs []error
	validSource := func(k string) bool { return k == SourceKV || k == SourceDir }
	if !validSource(c.Default) {
		errs = append(errs, fmt.Errorf("source must be %q or %q, got %q", SourceKV, SourceDir, c.Default))
	}
	for app, k := range c.ByApp {
		if err := domain.ValidateAppID(app); err != nil {
			errs = append(errs, fmt.Errorf("app source %s=%s: %w", app, k, err))
		}
		if !validSource(k) {
			errs = append(errs, fmt.Errorf("app source %s=%s: source must be %q or %q", app, k, SourceKV, SourceDir))
		}
	}
	return errors.Join(errs...)
}

// JobConfig are the backup workers of this process.
type JobConfig struct {
	// Workers is how many backup jobs this process runs at once.
	Workers int
	// AckWait is how long a job may go without a heartbeat before it is
	// delivered again.
	AckWait time.Duration
	// MaxDeliver is how often a job is delivered; the last delivery fails
	// the backup.
	MaxDeliver int
	// Timeout bounds one attempt at a backup; an attempt out of time fails
	// the backup.
	Timeout time.Duration
	// RetryFor is how long a delivery of a job whose store or source is
	// unavailable keeps trying (service.WorkerConfig.RetryFor); then it
	// frees its worker and the job is delivered again.
	RetryFor time.Duration
}

// Validate reports every invalid field of c, joined: the job queue's own
// checks (jetstream.Config), the timeout and the retry bound.
func (c JobConfig) Validate() error {
	var errs []error
	q := jetstream.DefaultConfig()
	q.Workers, q.AckWait, q.MaxDeliver = c.Workers, c.AckWait, c.MaxDeliver
	if err := q.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("jobs: %w", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("job timeout must be positive, got %s", c.Timeout))
	}
	if c.RetryFor <= 0 {
		errs = append(errs, fmt.Errorf("job retry-for must be positive, got %s", c.RetryFor))
	}
	return errors.Join(errs...)
}

// LedgerConfig are the settings of the ledger's services beyond its rules.
type LedgerConfig struct {
	// NewGenesis starts the signed ledger with a key of the vault although
	// the unsigned ledger holds a key.created of a key the vault never had
	// (written by someone else before backupd signed the ledger;
	// service.SigningConfig.NewGenesis). Never for a vault that lost its
	// keys.
	NewGenesis bool
	// PreRestoreBackupTimeout bounds a restore's wait for its pre-restore
	// backup; past it the restore fails.
	PreRestoreBackupTimeout time.Duration
	// CommandTimeout bounds a command from its start to its answer, also
	// when NATS cannot take writes: then it answers 503 unavailable.
	CommandTimeout time.Duration
	// ReadyMaxLag is how far behind the ledger stream the projection may
	// fall before /readyz answers not ready.
	ReadyMaxLag time.Duration
	// PricePerGiBMonth and Currency price stored archives in quotes; a
	// price of 0 quotes sizes only.
	PricePerGiBMonth float64
	Currency         string
}

// Validate reports every invalid field of c, joined.
func (c LedgerConfig) Validate() error {
	var errs []error
	if c.PreRestoreBackupTimeout <= 0 {
		errs = append(errs, fmt.Errorf("pre-restore backup timeout must be positive, got %s", c.PreRestoreBackupTimeout))
	}
	if c.CommandTimeout < 100*time.Millisecond || c.CommandTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("command timeout must be between 100ms and 10m, got %s", c.CommandTimeout))
	}
	if c.ReadyMaxLag < time.Second {
		errs = append(errs, fmt.Errorf("ready max lag must be at least 1s, got %s", c.ReadyMaxLag))
	}
	if c.PricePerGiBMonth < 0 {
		errs = append(errs, fmt.Errorf("price per GiB-month must not be negative, got %g", c.PricePerGiBMonth))
	}
	return errors.Join(errs...)
}

// SweepConfig are the periodic sweeps.
type SweepConfig struct {
	// VerifyInterval is how old a ready backup's last integrity check may
	// get before the periodic check reads its archive again.
	VerifyInterval time.Duration
	// ExpiryInterval is how often expired backups are swept.
	ExpiryInterval time.Duration
	// NightlyInterval is how often the nightly planner looks for nights
	// that are due (and failed tries to retry); the default schedule
	// itself is Config.Rules.Nightly.
	NightlyInterval time.Duration
	// OrphanInterval is how often the archive store is reconciled with
	// the ledger; OrphanGrace is how old an archive without a live backup
	// must be before it is removed.
	OrphanInterval time.Duration
	OrphanGrace    time.Duration
	// SnapshotEvery is how many events the projection folds between two
	// of its snapshots (0: none but the one at a graceful stop); the
	// snapshot is made at the first check every SnapshotInterval after
	// that many events.
	SnapshotEvery    int
	SnapshotInterval time.Duration
}

// DefaultSweepConfig returns the default sweeps.
func DefaultSweepConfig() SweepConfig {
	return SweepConfig{VerifyInterval: 7 * 24 * time.Hour, ExpiryInterval: time.Hour, NightlyInterval: 5 * time.Minute,
		OrphanInterval: time.Hour, OrphanGrace: time.Hour, SnapshotEvery: 100_000, SnapshotInterval: time.Minute}
}

// Validate reports every invalid field of c, joined.
func (c SweepConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name     string
		got, min time.Duration
	}{
		{"verify interval", c.VerifyInterval, time.Minute}, {"expiry interval", c.ExpiryInterval, time.Second},
		{"nightly interval", c.NightlyInterval, time.Second}, {"orphan interval", c.OrphanInterval, time.Second},
		{"orphan grace", c.OrphanGrace, time.Minute}, {"snapshot interval", c.SnapshotInterval, time.Second},
	} {
		if f.got < f.min {
			errs = append(errs, fmt.Errorf("%s must be at least %s, got %s", f.name, shortDuration(f.min), f.got))
		}
	}
	if c.SnapshotEvery < 0 {
		errs = append(errs, fmt.Errorf("snapshot every must not be negative, got %d", c.SnapshotEvery))
	}
	return errors.Join(errs...)
}

// shortDuration formats d as 1s or 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// IdentityConfig are the settings of logins and their passwords.
type IdentityConfig struct {
	// SessionTTL is how long a login's session token lasts.
	SessionTTL time.Duration
	// PasswordParams are the Argon2id parameters of new password hashes
	// (docs/passwords.md); zero means password.DefaultParams. Tests use
	// password.TestParams, which protects nothing.
	PasswordParams password.Params
}

// Validate reports every invalid field of c, joined; the password
// parameters are checked by package password.
func (c IdentityConfig) Validate() error {
	var errs []error
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("session ttl must be at least 1m, got %s", c.SessionTTL))
	}
	if c.PasswordParams != (password.Params{}) {
		if err := c.PasswordParams.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("password params: %w", err))
		}
	}
	return errors.Join(errs...)
}

// WebhookConfig are the deliveries of webhooks.
type WebhookConfig struct {
	// Timeout bounds each POST, Backoff is the first retry delay (doubled
	// each time, at most 10 min) and RetryFor how long a delivery is
	// retried before it is given up.
	Timeout  time.Duration
	Backoff  time.Duration
	RetryFor time.Duration
	// AllowPrivate lets webhooks target loopback, private, link-local and
	// other non-public addresses and local names, refused by default at
	// registration and at every connection (docs/notifications.md).
	AllowPrivate bool
}

// Validate reports every invalid field of c, joined. The notifier takes a
// zero value for its default; here every duration must be set.
func (c WebhookConfig) Validate() error {
	if c.Timeout <= 0 || c.Backoff <= 0 || c.RetryFor <= 0 {
		return fmt.Errorf("webhook timeout, backoff and retry-for must be positive, got %s, %s, %s", c.Timeout, c.Backoff, c.RetryFor)
	}
	return nil
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

// notify is the notifier's configuration of c.
func (c SMTPConfig) notify() notify.SMTPConfig {
	return notify.SMTPConfig{Host: c.Host, Port: c.Port, StartTLS: c.StartTLS, User: c.User, Password: c.Password, From: c.From}
}

// Validate reports every invalid field of c, joined. The rest of the
// relay's settings are checked by the notifier when the daemon starts
// (notify.Config.Validate).
func (c SMTPConfig) Validate() error {
	if c.Host != "" && c.From == "" {
		return errors.New("smtp from (the sender address) must be set with an smtp host")
	}
	return nil
}

// ProcessConfig are settings cmd/backupd applies to its process; the
// daemon itself does not apply them.
type ProcessConfig struct {
	// PprofAddr, when set, is where cmd/backupd serves net/http/pprof.
	PprofAddr string
	// MemoryLimit is the soft limit of the Go heap (0: none).
	MemoryLimit int64
}

// Package daemon is backupd: it starts (or connects to) NATS, sets up the
// streams, buckets and consumers, folds the ledger into memory, and serves the
// HTTP and NATS APIs and the backup workers. cmd/backupd parses flags into a
// Config and runs it; end-to-end tests run the same Daemon in-process.
package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
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
// no metrics as MetricsConfig.Addr.
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

// Config is everything backupd can be told, one part per concern; each
// part validates itself and Validate joins their errors.
type Config struct {
	// DataDir holds the embedded server's store (with its NATS logins in
	// nats/<role>.json) and admin.token.
	DataDir string
	// AdminToken is the server administrator's bearer token; empty means
	// read or create <DataDir>/admin.token.
	AdminToken string
	// HTTP is the HTTP API's listener.
	HTTP HTTPConfig
	// Metrics is the listener of GET /metrics and the per-app metrics.
	Metrics MetricsConfig
	// NATS is the embedded server, or the cluster to connect to, and the
	// durability of streams and buckets.
	NATS NATSConfig
	// Archives bounds uploaded archives.
	Archives ArchiveConfig
	// Sources are the configuration sources of apps.
	Sources SourceConfig
	// Jobs are the backup workers of this process.
	Jobs JobConfig
	// Rules are the per-app rules of DESIGN §8.
	Rules domain.Rules
	// Ledger are the settings of the ledger's services beyond Rules.
	Ledger LedgerConfig
	// Sweeps are the periodic sweeps: expiry, integrity, nightly, orphans.
	Sweeps SweepConfig
	// Identity are the settings of logins and their passwords.
	Identity IdentityConfig
	// Webhooks are the deliveries of webhooks.
	Webhooks WebhookConfig
	// SMTP is the relay e-mail notifications go through; an empty host
	// turns e-mail off.
	SMTP SMTPConfig
	// Process are settings cmd/backupd applies to the process itself.
	Process ProcessConfig
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Hooks are set by tests only.
	Hooks TestHooks
}

// DefaultConfig returns the defaults of DESIGN §8 and §9.
func DefaultConfig() Config {
	return Config{
		DataDir: "./data",
		HTTP: HTTPConfig{
			Addr:              "127.0.0.1:8080",
			ReadHeaderTimeout: DefaultHTTPReadHeaderTimeout,
			ReadTimeout:       DefaultHTTPReadTimeout,
			IdleTimeout:       DefaultHTTPIdleTimeout,
			MaxConns:          DefaultHTTPMaxConns,
		},
		Metrics: MetricsConfig{Addr: DefaultMetricsAddr, MaxApps: 500},
		NATS: NATSConfig{Listen: "127.0.0.1:4222", StagingAPI: DefaultStagingAPI, AuditAPI: DefaultAuditAPI,
			Replicas: 1, Sync: SyncAlways, ConnectTimeout: 2 * time.Minute},
		Archives: ArchiveConfig{MaxUploadBytes: 2 << 30},
		Sources:  SourceConfig{Default: SourceKV},
		Jobs:     JobConfig{Workers: 2, AckWait: 30 * time.Second, MaxDeliver: 5, Timeout: time.Hour, RetryFor: 2 * time.Minute},
		Rules:    domain.DefaultRules(),
		Ledger: LedgerConfig{PreRestoreBackupTimeout: 30 * time.Minute, CommandTimeout: service.DefaultCommandTimeout,
			ReadyMaxLag: 10 * time.Second, Currency: "EUR"},
		Sweeps:          DefaultSweepConfig(),
		Identity:        IdentityConfig{SessionTTL: 12 * time.Hour},
		Webhooks:        WebhookConfig{Timeout: 10 * time.Second, Backoff: 5 * time.Second, RetryFor: 24 * time.Hour},
		SMTP:            SMTPConfig{Port: 587, StartTLS: "auto"},
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate reports every invalid setting at once: the errors of every part,
// joined.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must be set"))
	}
	errs = append(errs, c.HTTP.Validate(), c.Metrics.Validate(), c.NATS.Validate(), c.Archives.Validate(),
		c.Sources.Validate(), c.Jobs.Validate(), c.Rules.Validate(), c.Ledger.Validate(), c.Sweeps.Validate(),
		c.Identity.Validate(), c.Webhooks.Validate(), c.SMTP.Validate())
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

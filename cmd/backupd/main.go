// Command backupd runs the backup ledger: an embedded NATS server with
// JetStream (or a connection to a cluster with --nats-url), the HTTP API, the
// NATS API and the backup workers. Every flag can also be set by an
// environment variable BACKUPD_<NAME>, e.g. BACKUPD_HTTP_ADDR.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // time zones without the system database

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // the usage has been printed
		}
		fmt.Fprintln(os.Stderr, "backupd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, os.LookupEnv, stderr)
	pprofAddr := &cfg.Process.PprofAddr
	if err != nil {
		return err
	}
	if cfg.Process.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.Process.MemoryLimit)
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("pprof listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// parseFlags reads flags, falling back to BACKUPD_<NAME> environment
// variables for flags not given on the command line.
func parseFlags(args []string, env func(string) (string, bool), stderr io.Writer) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("backupd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (embedded NATS store and its logins in nats/<role>.json, admin.token)")
	fs.StringVar(&cfg.HTTP.Addr, "http-addr", cfg.HTTP.Addr, "HTTP API listen address")
	fs.DurationVar(&cfg.HTTP.ReadHeaderTimeout, "http-read-header-timeout", cfg.HTTP.ReadHeaderTimeout, "bound on the arrival of an HTTP request's headers")
	fs.DurationVar(&cfg.HTTP.ReadTimeout, "http-read-timeout", cfg.HTTP.ReadTimeout, "bound on the arrival of an HTTP request's headers and body (archive uploads instead must move bytes at least every minute; a login's body 10s at most)")
	fs.DurationVar(&cfg.HTTP.IdleTimeout, "http-idle-timeout", cfg.HTTP.IdleTimeout, "how long a kept-alive HTTP connection may wait for its next request")
	fs.IntVar(&cfg.HTTP.MaxConns, "http-max-conns", cfg.HTTP.MaxConns, "most open connections of the HTTP API; beyond, new connections wait in the kernel's listen queue until one closes")
	fs.StringVar(&cfg.Metrics.Addr, "metrics-addr", cfg.Metrics.Addr, `where GET /metrics is served (not on --http-addr), or "none"`)
	fs.StringVar(&cfg.Metrics.Token, "metrics-token", "", "bearer token a scrape of --metrics-addr must bring (prefer BACKUPD_METRICS_TOKEN or --metrics-token-file: flags show in ps)")
	fs.StringVar(&cfg.Metrics.TokenFile, "metrics-token-file", "", "file holding the scrape token of --metrics-addr (instead of --metrics-token)")
	fs.StringVar(&cfg.NATS.URL, "nats-url", "", "connect to this NATS cluster instead of starting the embedded server")
	fs.DurationVar(&cfg.NATS.ConnectTimeout, "nats-connect-timeout", cfg.NATS.ConnectTimeout, "with --nats-url: how long to keep trying to reach the cluster at start")
	fs.StringVar(&cfg.NATS.Listen, "nats-listen", cfg.NATS.Listen, `embedded NATS client address, or "none" for in-process only; on a port it requires the logins in <data-dir>/nats/<role>.json`)
	fs.StringVar(&cfg.NATS.Creds, "nats-creds", "", "NATS credentials file (user JWT and seed) to log in to the --nats-url cluster")
	fs.StringVar(&cfg.NATS.User, "nats-user", "", "user to log in to the --nats-url cluster (with --nats-password)")
	fs.StringVar(&cfg.NATS.Password, "nats-password", "", "password of --nats-user (prefer BACKUPD_NATS_PASSWORD: flags show in ps)")
	fs.StringVar(&cfg.NATS.TLSCA, "nats-tls-ca", "", "PEM file of the CAs that the --nats-url cluster's TLS certificates are checked against (default: the system's)")
	fs.StringVar(&cfg.NATS.TLSCert, "nats-tls-cert", "", "PEM file of the client certificate for a --nats-url cluster that verifies clients (with --nats-tls-key)")
	fs.StringVar(&cfg.NATS.TLSKey, "nats-tls-key", "", "PEM file of the key of --nats-tls-cert")
	fs.StringVar(&cfg.NATS.StagingAPI, "nats-staging-api", cfg.NATS.StagingAPI, `with --nats-url: JetStream API prefix of the producers' account, which holds the staging bucket (docs/nats/accounts.conf), or "none": no archives over NATS`)
	fs.StringVar(&cfg.NATS.AuditAPI, "nats-audit-api", cfg.NATS.AuditAPI, `with --nats-url: JetStream API prefix of the account of the audit mirror of LEDGER (docs/nats/accounts.conf), or "none": no mirror for audit consumers`)
	fs.BoolVar(&cfg.Ledger.NewGenesis, "new-ledger-genesis", false, "start the signed ledger with a new key although the unsigned ledger holds a key.created that backupd did not write (backupd refuses to start and says so); never when the key vault ledger_keys was lost: restore it (docs/security.md)")
	fs.IntVar(&cfg.NATS.Replicas, "replicas", cfg.NATS.Replicas, "replicas of streams and buckets (3 on a cluster)")
	fs.StringVar(&cfg.NATS.Sync, "sync", cfg.NATS.Sync, `embedded server durability: "always" (fsync every write) or "interval"`)
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "server admin bearer token (default: read or create <data-dir>/admin.token)")
	fs.IntVar(&cfg.Rules.MaxBackups, "max-backups", cfg.Rules.MaxBackups, "most backups per app (queued, running and ready count)")
	fs.DurationVar(&cfg.Rules.MinInterval, "min-interval", cfg.Rules.MinInterval, "least time between two backups people start")
	fs.DurationVar(&cfg.Rules.Retention, "retention", cfg.Rules.Retention, "how long a backup is kept after its creation")
	tz := fs.String("timezone", "UTC", "time zone of default backup names and download file names (IANA name)")
	fs.StringVar(&cfg.Sources.Default, "source", cfg.Sources.Default, `source of apps' configuration by default: "kv" (documents in a JetStream bucket) or "dir" (files under --dir-root)`)
	fs.Func("app-source", `apps whose source differs from --source, as app=kind[,app=kind...], e.g. "wiki=dir"`, func(v string) error {
		m, err := parseAppSources(v)
		if err != nil {
			return err
		}
		cfg.Sources.ByApp = m
		return nil
	})
	fs.Int64Var(&cfg.Archives.MaxUploadBytes, "max-upload-bytes", cfg.Archives.MaxUploadBytes, "largest archive an upload may bring, in bytes")
	fs.IntVar(&cfg.Archives.MaxUploadRatio, "max-upload-ratio", 0, "largest compression ratio of an uploaded archive's entries over 1 MiB (zip bombs); 0 = 200")
	fs.StringVar(&cfg.Sources.DirRoot, "dir-root", "", "folder of the dir source: each app's files in <dir-root>/<app> (default <data-dir>/files)")
	fs.IntVar(&cfg.Rules.CommandMemory, "command-memory", cfg.Rules.CommandMemory, "recent command ids remembered per app for idempotent retries")
	fs.IntVar(&cfg.Jobs.Workers, "workers", cfg.Jobs.Workers, "backup jobs run at once by this process")
	fs.DurationVar(&cfg.Jobs.AckWait, "job-ack-wait", cfg.Jobs.AckWait, "a job silent this long is delivered again")
	fs.IntVar(&cfg.Jobs.MaxDeliver, "job-max-deliver", cfg.Jobs.MaxDeliver, "deliveries of a job; the last one fails the backup")
	fs.DurationVar(&cfg.Jobs.Timeout, "job-timeout", cfg.Jobs.Timeout, "bound on one attempt at a backup; past it the backup fails")
	fs.DurationVar(&cfg.Jobs.RetryFor, "job-retry-for", cfg.Jobs.RetryFor, "how long a job whose store or source is unavailable keeps its worker and tries again; then it is delivered again")
	fs.StringVar(&cfg.HTTP.TLSCert, "tls-cert", "", "PEM certificate (chain) of the HTTP API: with --tls-key it serves HTTPS only")
	fs.StringVar(&cfg.HTTP.TLSKey, "tls-key", "", "PEM key of --tls-cert")
	fs.Float64Var(&cfg.Ledger.PricePerGiBMonth, "price-per-gib-month", cfg.Ledger.PricePerGiBMonth, "what a GiB of archive costs to keep a month, for quotes (0: sizes only)")
	fs.StringVar(&cfg.Ledger.Currency, "currency", cfg.Ledger.Currency, "the currency of --price-per-gib-month")
	fs.DurationVar(&cfg.Sweeps.VerifyInterval, "verify-interval", cfg.Sweeps.VerifyInterval, "how often each ready backup's archive is read and checked (backup.verified, or marked corrupt)")
	fs.DurationVar(&cfg.Sweeps.ExpiryInterval, "expiry-interval", cfg.Sweeps.ExpiryInterval, "how often backups past their expiry are swept (deleted with their archives; their log stays)")
	fs.BoolVar(&cfg.Rules.Nightly.Enabled, "nightly", false, "nightly backups for apps that set no schedule of their own (PUT /v1/apps/{app}/schedule)")
	fs.StringVar(&cfg.Rules.Nightly.Time, "nightly-time", cfg.Rules.Nightly.Time, "time of day (HH:MM) of nightly backups for apps without a schedule")
	nightlyTZ := fs.String("nightly-time-zone", "", "time zone of --nightly-time (IANA name; default --timezone)")
	fs.DurationVar(&cfg.Sweeps.NightlyInterval, "nightly-interval", cfg.Sweeps.NightlyInterval, "how often the nightly backups that are due, and the retries of failed ones, are looked for: a safety net, since each app's timer (a JetStream message schedule) fires at its slot")
	fs.DurationVar(&cfg.Sweeps.OrphanInterval, "orphan-interval", cfg.Sweeps.OrphanInterval, "how often stored archives are reconciled with the ledger")
	fs.DurationVar(&cfg.Sweeps.OrphanGrace, "orphan-grace", cfg.Sweeps.OrphanGrace, "how old an archive without a live backup must be before it is removed")
	fs.IntVar(&cfg.Sweeps.SnapshotEvery, "snapshot-every", cfg.Sweeps.SnapshotEvery, "events between two snapshots of the projection, so that a restart folds only the ledger's tail (0: only at a graceful stop)")
	fs.DurationVar(&cfg.Sweeps.SnapshotInterval, "snapshot-interval", cfg.Sweeps.SnapshotInterval, "how often --snapshot-every is checked")
	fs.DurationVar(&cfg.Webhooks.Timeout, "webhook-timeout", cfg.Webhooks.Timeout, "bound on one webhook POST")
	fs.DurationVar(&cfg.Webhooks.Backoff, "webhook-backoff", cfg.Webhooks.Backoff, "first retry delay of a failed webhook delivery (doubled each time, at most 10m)")
	fs.DurationVar(&cfg.Webhooks.RetryFor, "webhook-retry-for", cfg.Webhooks.RetryFor, "how long a failed webhook delivery is retried before it is given up")
	fs.BoolVar(&cfg.Webhooks.AllowPrivate, "webhook-allow-private", cfg.Webhooks.AllowPrivate, "let webhooks target loopback, private, link-local and other non-public addresses and local names (refused by default, at registration and at every connection after DNS resolution)")
	fs.StringVar(&cfg.SMTP.Host, "smtp-host", "", "SMTP relay for e-mail notifications (default: no e-mail)")
	fs.IntVar(&cfg.SMTP.Port, "smtp-port", cfg.SMTP.Port, "port of --smtp-host")
	fs.StringVar(&cfg.SMTP.StartTLS, "smtp-starttls", cfg.SMTP.StartTLS, `STARTTLS with the relay: "auto" (when offered), "always" or "never"`)
	fs.StringVar(&cfg.SMTP.User, "smtp-user", "", "user to log in to the relay (AUTH PLAIN, over TLS only)")
	fs.StringVar(&cfg.SMTP.Password, "smtp-password", "", "password of --smtp-user (prefer BACKUPD_SMTP_PASSWORD: flags show in ps)")
	fs.StringVar(&cfg.SMTP.From, "smtp-from", "", "sender address of e-mail notifications, e.g. \"Backups <backups@example.com>\"")
	fs.IntVar(&cfg.Metrics.MaxApps, "metrics-max-apps", cfg.Metrics.MaxApps, "most apps in the per-app metrics (last successful backup); the most recent are kept")
	fs.StringVar(&cfg.HTTP.PublicURL, "public-url", "", "where people reach the HTTP API, for links in e-mails, e.g. https://backups.example.com")
	fs.DurationVar(&cfg.Ledger.CommandTimeout, "command-timeout", cfg.Ledger.CommandTimeout, "how long a command may wait for the ledger (NATS) at most; past it, 503 unavailable with Retry-After")
	fs.DurationVar(&cfg.Ledger.ReadyMaxLag, "ready-max-lag", cfg.Ledger.ReadyMaxLag, "how far behind the ledger the projection may fall before /readyz answers not ready")
	fs.DurationVar(&cfg.Ledger.PreRestoreBackupTimeout, "pre-restore-backup-timeout", cfg.Ledger.PreRestoreBackupTimeout, "how long a restore waits for its pre-restore backup before it fails")
	fs.DurationVar(&cfg.Identity.SessionTTL, "session-ttl", cfg.Identity.SessionTTL, "how long a login (POST /v1/sessions, backupctl login) lasts")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "bound on a graceful stop")
	fs.Func("memory-limit", "soft limit of the Go heap, e.g. 96MiB (as GOMEMLIMIT; default none): the garbage collector works harder near it", func(v string) error {
		n, err := parseBytes(v)
		cfg.Process.MemoryLimit = n
		return err
	})
	fs.StringVar(&cfg.Process.PprofAddr, "pprof-addr", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (default off)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", `"json" (one object a line) or "text" (key=value)`)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := "BACKUPD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := env(name); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, name, serr)
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return cfg, fmt.Errorf("invalid time zone %q (--timezone or BACKUPD_TIMEZONE): %w", *tz, err)
	}
	cfg.Rules.Location = loc
	cfg.Rules.Nightly.TimeZone = cmp.Or(*nightlyTZ, loc.String())
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch *format {
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, opts))
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, opts))
	default:
		return cfg, fmt.Errorf("log format must be \"json\" or \"text\", got %q", *format)
	}
	return cfg, cfg.Validate()
}

// parseAppSources parses "app=kind,app=kind".
func parseAppSources(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		app, kind, ok := strings.Cut(part, "=")
		if !ok || app == "" || kind == "" {
			return nil, fmt.Errorf("%q is not app=kind", part)
		}
		m[strings.TrimSpace(app)] = strings.TrimSpace(kind)
	}
	return m, nil
}

// parseBytes parses a size such as 96MiB, 1GiB, 512KiB or a plain number of
// bytes.
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(v, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a size like 96MiB", v)
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("%q is not a size like 96MiB", v)
}

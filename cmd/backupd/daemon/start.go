package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/backupledger/backupledger/adapters/httpapi"
	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/adapters/prom"
	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/adapters/source/kv"
	"github.com/backupledger/backupledger/docs"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
	"github.com/backupledger/backupledger/usecase"
)

// startup is what the steps of Start hand on to the later ones.
type startup struct {
	runCtx       context.Context // of the long-running parts, until stop
	metricsToken string
	adminToken   string
	jobs         jetstream.Config
	ids          *ulids
	clock        domain.Clock
	mac          []byte
	store        *jetstream.EventStore
	registry     *prometheus.Registry
	metrics      *prom.Metrics
	sources      service.SourceSet
	restoreFrom  service.SourceSet // the sources restores import into
	identity     *service.Identity
	restores     *service.Restores
	quoter       *service.Quoter
}

// Start starts every part and returns once the HTTP API listens. Streams,
// buckets and consumers are created or updated at every start. It first
// takes the data dir's lock: while another process holds it, Start fails
// with ErrDataDirInUse. On an error, what was started is stopped (Kill).
func (d *Daemon) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			d.Kill()
		}
	}()
	var s startup
	for _, step := range []func(context.Context, *startup) error{
		d.openNATS, d.openStores, d.openSigning, d.startProjections, d.startMetrics,
		d.openArchives, d.startLedger, d.startIdentity, d.startLoops, d.startNotifier,
		d.startTransports,
	} {
		if err := step(ctx, &s); err != nil {
			return err
		}
	}
	return nil
}

// openNATS takes the data dir's lock, reads the tokens, starts the
// embedded server (without NATSConfig.URL) and connects to NATS.
func (d *Daemon) openNATS(ctx context.Context, s *startup) (err error) {
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if d.lock, err = lockDataDir(d.cfg.DataDir); err != nil {
		return err
	}
	if s.metricsToken, err = d.cfg.Metrics.token(); err != nil {
		return err
	}
	if s.adminToken, err = adminToken(d.cfg.AdminToken, d.cfg.DataDir, d.log); err != nil {
		return err
	}
	if d.cfg.NATS.URL == "" {
		if d.srv, d.login, err = startEmbedded(d.cfg, d.log); err != nil {
			return err
		}
	}
	if d.nc, d.closed, err = connectRetrying(ctx, d.srv, d.login, d.cfg, d.log); err != nil {
		return err
	}
	if d.js, err = njs.New(d.nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.runCtx, d.cancel = runCtx, cancel
	return nil
}

// openStores creates or updates the ledger's stream and consumers, the
// config bucket and the audit mirror, and drops the consumers of the
// ledger that are not backupd's.
func (d *Daemon) openStores(ctx context.Context, s *startup) (err error) {
	s.jobs = jetstream.Config{
		Replicas:   d.cfg.NATS.Replicas,
		AckWait:    d.cfg.Jobs.AckWait,
		MaxDeliver: d.cfg.Jobs.MaxDeliver,
		Workers:    d.cfg.Jobs.Workers,
		WorkerName: workerName(),
		Grace:      d.cfg.ShutdownTimeout / 3,
	}
	if err := jetstream.Setup(ctx, d.js, s.jobs); err != nil {
		return err
	}
	if d.config, err = kv.New(ctx, d.js, kv.Config{Replicas: d.cfg.NATS.Replicas, CallTimeout: d.cfg.Ledger.CommandTimeout}); err != nil {
		return err
	}
	if _, auditAPI := d.otherAccounts(); auditAPI != "" {
		if err := d.setupAuditMirror(ctx, auditAPI); err != nil {
			return err
		}
	}
	return d.dropForeignConsumers(ctx)
}

// openArchives opens the archive store, which counts its bytes in the
// metrics, with its staging bucket in the producers' account (if any).
func (d *Daemon) openArchives(ctx context.Context, s *startup) (err error) {
	stagingAPI, _ := d.otherAccounts()
	stagingJS, err := d.stagingJetStream(ctx, stagingAPI)
	if err != nil {
		return err
	}
	cfg := d.cfg.Archives.objectstore()
	cfg.Replicas, cfg.Staging, cfg.NoStaging = d.cfg.NATS.Replicas, stagingJS, stagingJS == nil
	cfg.Written, cfg.Read = s.metrics.ArchiveWritten, s.metrics.ArchiveRead
	cfg.CallTimeout = d.cfg.Ledger.CommandTimeout // as the configuration bucket's calls
	if d.archives, err = objectstore.New(ctx, d.js, cfg); err != nil {
		if stagingJS != nil {
			err = fmt.Errorf("%w (the staging bucket lives in the producers' account, reached under %s: see docs/nats/accounts.conf, or --nats-staging-api none)", err, stagingAPI)
		}
		return err
	}
	if stagingJS != nil {
		// The staging bucket must not be the ledger's own account's.
		if _, err := d.js.Stream(ctx, "OBJ_"+objectstore.DefaultStagingBucket); !errors.Is(err, njs.ErrStreamNotFound) {
			return fmt.Errorf("the staging bucket is in the ledger's own account (--nats-staging-api %s reaches it): producers would write there; see docs/nats/accounts.conf", stagingAPI)
		}
	}
	return nil
}

// openSigning opens the ledger's keys: the signing key (made, with the
// genesis, on a ledger that has none) and the secrets' MAC key.
func (d *Daemon) openSigning(ctx context.Context, s *startup) error {
	s.ids, s.clock = newULIDs(), d.cfg.Hooks.clock()
	keys, err := jetstream.NewKeys(ctx, d.js, d.cfg.NATS.Replicas)
	if err != nil {
		return err
	}
	keyEvents, err := jetstream.NewEventStore(ctx, d.js, nil) // key events come signed
	if err != nil {
		return err
	}
	d.signing = service.NewSigning(service.SigningConfig{NewGenesis: d.cfg.Ledger.NewGenesis}, keys, keyEvents, keyEvents, s.clock, s.ids, d.log)
	// Setup is safe to run again (each claim is a create that the first
	// writer wins): on a cluster just started or just healed it is tried
	// again while NATS cannot answer.
	err = jetstream.Retry(ctx, func(ctx context.Context) (err error) {
		s.mac, err = d.signing.Setup(ctx, func(ctx context.Context, mac []byte) error {
			secrets, err := jetstream.NewSecrets(ctx, d.js, d.cfg.NATS.Replicas, mac, d.log)
			if err == nil {
				_, err = secrets.AuthenticateLegacy(ctx)
			}
			return err
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger keys: %w", err)
	}
	return nil
}

// startProjections starts the projections, fed by the follower, with the
// signing event store the ledger will write through.
func (d *Daemon) startProjections(ctx context.Context, s *startup) (err error) {
	if s.store, err = jetstream.NewEventStore(ctx, d.js, d.signing); err != nil {
		return err
	}
	d.proj = projections.New(d.cfg.Rules, projections.Options{Logger: d.log, MACKey: d.signing.MACKeyOf,
		Genesis: d.signing.GenesisKey(), OnKeys: d.signing.Learn, History: s.store})
	d.follower = jetstream.NewPreparingFollower(d.js, d.proj.Prepare, d.log)
	if d.snapshots, err = jetstream.NewSnapshots(ctx, d.js, d.cfg.NATS.Replicas); err != nil {
		return err
	}
	d.loadSnapshot(ctx, s.store)
	d.goRun(s.runCtx, "follower", d.follower.Run)
	d.goRun(s.runCtx, "snapshots", d.snapshotLoop)
	d.goRun(s.runCtx, "caught-up", func(ctx context.Context) error {
		// Folding the ledger leaves garbage several times the state it
		// made: give it back to the system once, rather than keep it
		// until the heap grows into it.
		if d.follower.WaitCaughtUp(ctx) == nil {
			debug.FreeOSMemory()
		}
		return nil
	})
	d.goRun(s.runCtx, "health", d.watchHealth)
	return nil
}

// startMetrics makes the metrics.
func (d *Daemon) startMetrics(_ context.Context, s *startup) (err error) {
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics, err = prom.New(s.registry, d.proj, prom.Config{
		MaxApps:      d.cfg.Metrics.MaxApps,
		Nightly:      d.cfg.Rules.Nightly,
		LastSeq:      d.lastSeq,
		JetStream:    d.jetStreamUsage(),
		JobsInFlight: func() int { return d.jobs.InFlight() }, // the jobs exist before any scrape
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// startLedger makes the ledger, which counts its commands in the metrics.
func (d *Daemon) startLedger(_ context.Context, s *startup) (err error) {
	d.ledger, err = service.NewLedger(service.LedgerConfig{Rules: d.cfg.Rules, Observer: s.metrics, CommandTimeout: d.cfg.Ledger.CommandTimeout}, s.store, d.proj, s.clock, s.ids, d.archives, d.log)
	return err
}

// startIdentity makes the sources and the identity service with its
// secrets and password hasher.
func (d *Daemon) startIdentity(ctx context.Context, s *startup) (err error) {
	if s.sources, err = d.sources(d.cfg.Hooks.SourceWrapper); err != nil {
		return err
	}
	// Restores import through the sources themselves: SourceWrapper is a
	// hook for backups (RestoreSourceWrapper for restores).
	if s.restoreFrom, err = d.sources(d.cfg.Hooks.RestoreSourceWrapper); err != nil {
		return err
	}
	secrets, err := jetstream.NewSecrets(ctx, d.js, d.cfg.NATS.Replicas, s.mac, d.log)
	if err != nil {
		return err
	}
	hasher, err := password.NewArgon2id(d.cfg.Identity.PasswordParams)
	if err != nil {
		return err
	}
	s.identity, err = service.NewIdentity(s.store, d.proj, secrets, hasher, s.clock, s.ids, service.IdentityConfig{
		SessionTTL: d.cfg.Identity.SessionTTL, AllowPrivateWebhookTargets: d.cfg.Webhooks.AllowPrivate, CommandTimeout: d.cfg.Ledger.CommandTimeout,
		Apps: service.LedgerAppUsage{States: d.proj, Sources: s.sources}}, d.log)
	return err
}

// startLoops starts the jobs with the restores, and the periodic sweeps:
// expiry, integrity, nightly (with its timers) and orphans.
func (d *Daemon) startLoops(ctx context.Context, s *startup) (err error) {
	s.restores = service.NewRestores(service.RestoreConfig{PreBackupTimeout: d.cfg.Ledger.PreRestoreBackupTimeout, BeforeAction: d.cfg.Hooks.RestoreHook},
		d.ledger, d.proj, s.identity, s.restoreFrom, d.archives, dir.Migrations(), s.clock, d.log)
	if err := d.startJobs(s); err != nil {
		return err
	}

	d.sweeper = service.NewSweeper(d.ledger, d.proj, d.proj, s.clock, d.log)
	d.goRun(s.runCtx, "expiry", d.every(d.cfg.Sweeps.ExpiryInterval, "expiry", d.sweeper.Sweep))
	s.quoter = service.NewQuoter(s.sources, d.proj, service.QuoteConfig{PricePerGiBMonth: d.cfg.Ledger.PricePerGiBMonth, Currency: d.cfg.Ledger.Currency})
	d.verifier = service.NewVerifier(d.ledger, d.proj, d.proj, d.archives, s.clock, d.cfg.Sweeps.VerifyInterval, d.log)
	// Hourly: each check itself waits until the backup's VerifyInterval.
	d.goRun(s.runCtx, "integrity", d.every(time.Hour, "integrity", d.verifier.Sweep))

	d.nightly = service.NewNightly(d.ledger, d.proj, d.proj, s.clock, d.log)
	if err := jetstream.SetupTimers(ctx, d.js, d.cfg.NATS.Replicas); err != nil {
		return err
	}
	if d.timers, err = jetstream.NewTimers(ctx, d.js, d.log); err != nil {
		return err
	}
	d.goRun(s.runCtx, "nightly", d.every(d.cfg.Sweeps.NightlyInterval, "nightly", d.nightlySweep))
	d.goRun(s.runCtx, "nightly-timer", func(ctx context.Context) error { return d.timers.Run(ctx, d.nightlyTick) })
	d.orphans = service.NewOrphans(d.ledger, d.proj, d.proj, d.archives, d.archives, s.clock, d.cfg.Sweeps.OrphanGrace, d.log)
	d.goRun(s.runCtx, "orphans", d.every(d.cfg.Sweeps.OrphanInterval, "orphans", func(ctx context.Context) (int, error) {
		rep, err := d.orphans.Sweep(ctx)
		return rep.Removed + rep.Missing + rep.Unfinished, err
	}))
	return nil
}

// startJobs makes the backup jobs, with the restores, and runs them.
func (d *Daemon) startJobs(s *startup) (err error) {
	worker := service.NewWorker(service.WorkerConfig{Name: s.jobs.WorkerName, Timeout: d.cfg.Jobs.Timeout, RetryFor: d.cfg.Jobs.RetryFor},
		d.ledger, d.proj, s.sources, d.archives, d.log)
	run := worker.Run
	if d.cfg.Hooks.JobWrapper != nil {
		run = d.cfg.Hooks.JobWrapper(run)
	}
	d.jobs, err = jetstream.NewJobs(d.js, s.jobs, run, worker.Forget, jetstream.JobsOptions{Restores: s.restores,
		Hooks: jetstream.JobHooks{Redelivered: s.metrics.JobRedelivered, FailedFinal: s.metrics.JobFailed}}, d.log)
	if err != nil {
		return err
	}
	d.goRun(s.runCtx, "jobs", d.jobs.Run)
	return nil
}

// startNotifier starts the notifier and the reactor that dispatches the
// ledger's events to it and to the nightly timers.
func (d *Daemon) startNotifier(ctx context.Context, s *startup) (err error) {
	ncfg := d.notifyConfig()
	ncfg.OnAttempt = s.metrics.WebhookAttempt
	if err := notify.Setup(ctx, d.js, ncfg); err != nil {
		return err
	}
	if d.notifier, err = notify.New(d.js, ncfg, webhooks{identity: s.identity}, d.log); err != nil {
		return err
	}
	// Deliveries look webhooks up in the projection: deliver once it has
	// caught up, so that a webhook is not taken for removed meanwhile.
	d.goRun(s.runCtx, "notifier", func(ctx context.Context) error {
		if err := d.follower.WaitCaughtUp(ctx); err != nil {
			return nil // stopping
		}
		return d.notifier.Run(ctx)
	})
	d.reactor = jetstream.NewReactor(d.js, jetstream.ReactorConsumerName, 0,
		dispatcher{proj: d.proj, notifier: d.notifier, publicURL: d.cfg.HTTP.PublicURL, scheduled: d.syncTimer, log: d.log}.handle, d.log)
	// The dispatcher acts on notifiable events and schedules only: the
	// rest (renames, most of a busy ledger) is not decoded.
	d.reactor.Wants(func(typ string) bool { return domain.Notifiable(typ) || typ == domain.TypeScheduleSet })
	if err := d.reactor.Setup(ctx); err != nil {
		return err
	}
	d.goRun(s.runCtx, "dispatch", d.reactor.Run)
	return nil
}

// startTransports makes the one application of use cases and serves it
// on NATS and HTTP, and the metrics on their own listener.
func (d *Daemon) startTransports(_ context.Context, s *startup) (err error) {
	app, err := d.application(s)
	if err != nil {
		return err
	}
	auth := usecase.ChainAuth{usecase.NewAdminToken(s.adminToken), s.identity}
	newID := func() string { return s.ids.NewID(time.Now()) }
	ready := d.follower.CaughtUp
	d.api, err = natsapi.New(d.nc, natsapi.Config{}, natsapi.Deps{App: app, Auth: auth, Ready: ready, NewID: newID, Logger: d.log})
	if err != nil {
		return err
	}
	h, err := httpapi.New(httpapi.Config{MaxUploadBytes: d.cfg.Archives.MaxUploadBytes, MetricsToken: s.metricsToken,
		UnauthenticatedReadTimeout: min(httpapi.DefaultUnauthenticatedReadTimeout, d.cfg.HTTP.ReadTimeout)}, httpapi.Deps{
		App: app, Auth: auth, Ready: ready, Readiness: d.Readiness, OpenAPI: docs.OpenAPI, NewID: newID, Logger: d.log,
		Metrics: promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}),
	})
	if err != nil {
		return err
	}
	tlsConfig, err := d.cfg.HTTP.tlsConfig()
	if err != nil {
		return err
	}
	if err := d.serveMetrics(h.MetricsHandler(), tlsConfig, s.metricsToken); err != nil {
		return err
	}
	if d.httpLn, err = d.listen("http", d.cfg.HTTP.Addr, d.cfg.HTTP.MaxConns, tlsConfig); err != nil {
		return err
	}
	d.http = d.httpServer(s.metrics.InstrumentHTTP(h.Handler()), tlsConfig)
	d.serve("http", d.http, d.httpLn)
	return nil
}

// application is the one application of use cases: both transports call
// the same ones.
func (d *Daemon) application(s *startup) (*usecase.Application, error) {
	sched := schedules{proj: d.proj, def: d.cfg.Rules.Nightly, clock: s.clock}
	dlog := deliveries{n: d.notifier}
	lkeys := ledgerKeys{proj: d.proj, signing: d.signing}
	transfers := service.NewTransfers(d.ledger, d.proj, d.archives, s.ids, s.clock, d.log)
	return usecase.New(usecase.Config{Location: d.cfg.Rules.Location}, usecase.Deps{
		Commands: d.ledger, Queries: d.proj, Config: d.config, Identity: s.identity, Restores: s.restores,
		Quoter: s.quoter, Verifier: d.verifier, Schedules: sched, Deliveries: dlog, Keys: lkeys, Transfers: transfers,
	})
}

// tlsConfig returns the HTTPS configuration of TLSCert and TLSKey, or nil
// without them.
func (c HTTPConfig) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("http tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
